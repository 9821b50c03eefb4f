"""Signatures and the checks of a request against one, shared by every front end.

Two steps, so a hostile request costs no memory: ``check_declared`` judges what a request *declares*
(input names, dtypes, shapes: a few bytes of a gRPC message, before any tensor is decoded or padded) and
caps the bytes decoding would take; ``feed`` then validates and converts the decoded values (REST's JSON
lists, decoded tensors) into what the model is called with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistkit.serving.status import RequestError
from mnistkit.serving.tensors import DTYPE_NAMES, DTYPES

if TYPE_CHECKING:
    from mnistkit._types import Proto, TFObject

__all__ = [
    "DEFAULT_SIGNATURE",
    "MAX_BATCH",
    "MAX_DECODED_BYTES",
    "TensorInfo",
    "Signature",
    "UnknownSignature",
    "tensor_info",
    "check_declared",
    "check_outputs",
    "feed",
]

DEFAULT_SIGNATURE = "serving_default"
MAX_BATCH = 1024
MAX_DECODED_BYTES = 64 * 1024 * 1024  # per request, all inputs together, once decoded


class UnknownSignature(RequestError):
    """The request names a signature the model does not have (gRPC answers FAILED_PRECONDITION, as TF Serving)."""

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message, "FAILED_PRECONDITION", field=field, value=value)

    @property
    def http_status(self) -> int:
        return 400  # TF Serving's REST API answers 400 for an unknown signature


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature: its key, dtype and shape (``None`` for unknown dimensions)."""

    key: str
    dtype: np.dtype
    dtype_name: str
    shape: tuple[int | None, ...] | None

    @property
    def shape_text(self) -> str:
        if self.shape is None:
            return "any shape"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class Signature:
    """A callable signature with its declared inputs and outputs."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    fn: TFObject  # the SavedModel's concrete function


def tensor_info(key: str, proto: Proto) -> TensorInfo:
    """A ``TensorInfo`` from a SignatureDef's ``TensorInfo`` proto."""
    dtype = DTYPES.get(proto.dtype, (np.dtype(object), ""))[0]
    shape = (
        None
        if proto.tensor_shape.unknown_rank
        else tuple(None if d.size < 0 else int(d.size) for d in proto.tensor_shape.dim)
    )
    return TensorInfo(key, dtype, DTYPE_NAMES.get(proto.dtype, f"dtype {proto.dtype}"), shape)


def _check_keys(sig: Signature, keys: Iterable[str]) -> None:
    extra = sorted(set(keys) - set(sig.inputs))
    if extra:
        raise RequestError(
            f"input tensor alias not found in signature: {', '.join(extra)[:200]}. "
            f"Inputs expected to be in the set {{{', '.join(sorted(sig.inputs))}}}.",
            field="inputs",
            value=extra[:5],
        )
    missing = sorted(set(sig.inputs) - set(keys))
    if missing:
        raise RequestError(
            f"missing input(s) {', '.join(missing)}; signature {sig.name!r} expects "
            f"{{{', '.join(sorted(sig.inputs))}}}",
            field="inputs",
            value=missing,
        )


def _check_shape(info: TensorInfo, shape: tuple[int, ...], max_batch: int, batch: int | None) -> int | None:
    """Rank, fixed dimensions, batch bound and batch agreement; returns the batch size (None for scalars)."""
    key = info.key
    if any(d < 0 for d in shape):
        raise RequestError(
            f"input {key!r}: negative dimension in shape {list(shape)[:8]}", field=key, value=list(shape)[:8]
        )
    if info.shape is not None and (
        len(shape) != len(info.shape) or any(w is not None and w != g for w, g in zip(info.shape, shape))
    ):
        raise RequestError(
            f"input {key!r} must have shape {info.shape_text}, got {list(shape)[:8]}", field=key, value=list(shape)[:8]
        )
    if not shape:
        return batch
    if shape[0] == 0:
        raise RequestError(f"input {key!r} is an empty batch", field=key, value=0)
    if shape[0] > max_batch:
        raise RequestError(
            f"input {key!r} has a batch of {shape[0]}; the limit is {max_batch}", field=key, value=shape[0]
        )
    if batch is not None and shape[0] != batch:
        raise RequestError("all inputs must have the same batch size", field=key, value=shape[0])
    return shape[0]


def check_declared(
    sig: Signature,
    declared: Mapping[str, tuple[np.dtype | None, tuple[int, ...]]],
    *,
    max_batch: int = MAX_BATCH,
    max_bytes: int = MAX_DECODED_BYTES,
) -> None:
    """Judge a request from what it declares, before anything is decoded.

    ``declared`` maps each input key to its dtype (``None``: converted later, as REST's JSON) and shape.
    Checks the keys, the dtype, the rank, every fixed dimension, the batch bound, and that decoding all
    inputs takes at most ``max_bytes``.
    """
    _check_keys(sig, declared)
    batch: int | None = None
    total = 0
    for key, (dtype, shape) in declared.items():
        info = sig.inputs[key]
        if dtype is not None and dtype != info.dtype:
            raise RequestError(
                f"input {key!r} must be {info.dtype_name} ({info.dtype}), got {dtype}", field=key, value=str(dtype)
            )
        batch = _check_shape(info, shape, max_batch, batch)
        total += math.prod(shape) * (dtype or info.dtype).itemsize
        if total > max_bytes:
            raise RequestError(
                f"input {key!r}: shape {list(shape)[:8]} is too large (the limit is {max_bytes >> 20} MiB per request)",
                "RESOURCE_EXHAUSTED" if info.shape is None else "INVALID_ARGUMENT",
                field=key,
                value=list(shape)[:8],
            )


def check_outputs(sig: Signature, output_filter: list[str] | None) -> list[str]:
    """The output keys to answer with (all, or ``output_filter`` if every name in it exists)."""
    if not output_filter:
        return list(sig.outputs)
    unknown = sorted(set(output_filter) - set(sig.outputs))
    if unknown:
        raise RequestError(
            f"output tensor alias not found in signature: {', '.join(unknown)[:200]}",
            field="output_filter",
            value=unknown[:5],
        )
    return list(output_filter)


def feed(
    sig: Signature, inputs: Mapping[str, Any], *, strict_dtype: bool = True, max_batch: int = MAX_BATCH
) -> dict[str, np.ndarray]:
    """Validate ``inputs`` against the signature and convert them to what the model is called with.

    ``strict_dtype`` (gRPC): a tensor of another dtype is an error, as in TF Serving; otherwise (REST,
    where JSON numbers have no dtype) values are converted to the declared dtype. Every problem is a
    ``RequestError`` whose message names the input and what is wrong.
    """
    _check_keys(sig, inputs)
    out: dict[str, np.ndarray] = {}
    batch: int | None = None
    for key, info in sig.inputs.items():
        arr = _coerce(info, inputs[key], strict_dtype)
        batch = _check_shape(info, arr.shape, max_batch, batch)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise RequestError(f"input {key!r} contains NaN or Inf", field=key)
        out[key] = arr
    return out


def _coerce(info: TensorInfo, value: object, strict: bool) -> np.ndarray:
    key = info.key
    if isinstance(value, np.ndarray):
        if strict and value.dtype != info.dtype:
            raise RequestError(
                f"input {key!r} must be {info.dtype_name} ({info.dtype}), got {value.dtype}",
                field=key,
                value=str(value.dtype),
            )
        if value.dtype == info.dtype:
            return value
    if info.dtype.kind not in "fiu":
        raise RequestError(f"input {key!r}: dtype {info.dtype_name} is not supported", field=key)
    try:
        arr = np.asarray(value)
    except ValueError:
        raise RequestError(f"input {key!r} is a ragged list, not a tensor", field=key) from None
    if arr.dtype.kind not in "fiub" or arr.dtype == np.bool_:
        raise RequestError(
            f"input {key!r} must hold numbers ({info.dtype_name}), got {arr.dtype.name} values",
            field=key,
            value=arr.dtype.name,
        )
    if info.dtype.kind in "iu" and arr.dtype.kind == "f":
        raise RequestError(f"input {key!r} must hold integers ({info.dtype_name})", field=key)
    if (
        info.dtype.kind in "iu"
        and arr.size
        and (arr.min() < np.iinfo(info.dtype).min or arr.max() > np.iinfo(info.dtype).max)
    ):
        raise RequestError(f"input {key!r} has values outside {info.dtype}", field=key)
    if info.dtype.kind == "f" and arr.dtype.kind == "f" and arr.size and np.isfinite(arr).all():
        if np.abs(arr).max() > np.finfo(info.dtype).max:
            raise RequestError(f"input {key!r} has values outside {info.dtype}", field=key)
    return arr.astype(info.dtype, copy=False)
