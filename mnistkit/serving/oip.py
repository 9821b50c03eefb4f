"""The Open Inference Protocol (KServe's "v2", spoken by Triton and MLServer): what its REST and gRPC front
ends share.

Datatype names, model and server metadata, readiness, and one ``infer`` that takes the inputs as each
front end declares them (name, datatype, shape and a way to decode the values), judges them against the
signature before decoding (``signature.check_declared``), runs the model through the ``Backend`` and
returns the outputs. The REST routes are ``rest_v2.py``'s, the gRPC ``inference.GRPCInferenceService`` is
``grpc_v2.py``'s. The served signature is ``serving_default`` (a v2 model has one set of inputs and
outputs); the datatype a client declares must be the signature's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistkit.serving.backend import Backend, ModelCall, Steps, parse_version
from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.signature import DEFAULT_SIGNATURE, Signature, TensorInfo, check_declared, check_outputs, feed
from mnistkit.serving.status import RequestError

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["DATATYPES", "V2Input", "datatype_of", "infer", "model_metadata", "model_ready", "server_metadata"]

PLATFORM = "tensorflow_savedmodel"
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAME_OF = {dt: name for name, dt in DATATYPES.items()}


def datatype_of(dtype: np.dtype) -> str:
    """The v2 datatype name of a numpy dtype (``BYTES`` for anything else)."""
    return _NAME_OF.get(np.dtype(dtype), "BYTES")


def _dims(info: TensorInfo) -> list[int]:
    return [-1] if info.shape is None else [-1 if d is None else d for d in info.shape]


@dataclass(frozen=True)
class V2Input:
    """One input as a request declares it; ``decode(dtype, shape)`` reads its values (after the checks)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    decode: Callable[[np.dtype, tuple[int, ...]], np.ndarray]


def _signature(model: LoadedModel) -> Signature:
    return model.signature(DEFAULT_SIGNATURE)


def model_metadata(backend: Backend, name: str, version: str | None) -> dict[str, Any]:
    """``GET /v2/models/{name}[/versions/{v}]``: name, versions, platform, inputs and outputs."""
    model = backend.resolve(name, parse_version(version))
    sig = _signature(model)
    return {
        "name": name,
        "versions": [str(model.version)],
        "platform": PLATFORM,
        "inputs": [{"name": k, "datatype": datatype_of(i.dtype), "shape": _dims(i)} for k, i in sig.inputs.items()],
        "outputs": [{"name": k, "datatype": datatype_of(i.dtype), "shape": _dims(i)} for k, i in sig.outputs.items()],
    }


def model_ready(backend: Backend, name: str, version: str | None) -> bool:
    """Whether ``name`` (at ``version``) answers now; an unknown name is NOT_FOUND."""
    v = parse_version(version)
    try:
        backend.resolve(name, v)
    except RequestError as exc:
        if exc.code == "NOT_FOUND" and name != backend.model_name:
            raise
        return False
    return True


def server_metadata() -> dict[str, Any]:
    from mnistkit import __version__

    return {"name": "mnistkit", "version": __version__, "extensions": ["binary_tensor_data"]}


def infer(
    backend: Backend,
    name: str,
    version: str | None,
    inputs: Sequence[V2Input],
    output_names: list[str] | None,
) -> Steps[tuple[LoadedModel, dict[str, np.ndarray]]]:
    """Check and decode one inference request, yield its model call; the model and its outputs (in order).
    ``Backend.complete`` runs it in one go."""
    model = backend.resolve(name, parse_version(version))
    sig = _signature(model)
    if not inputs:
        raise RequestError("the request has no inputs", field="inputs")
    names = [i.name for i in inputs]
    if len(set(names)) != len(names):
        raise RequestError("an input is given more than once", field="inputs")
    declared: dict[str, tuple[np.dtype | None, tuple[int, ...]]] = {}
    for i in inputs:
        dtype = DATATYPES.get(i.datatype)
        if dtype is None:
            raise RequestError(
                f"input {i.name[:100]!r}: unsupported datatype {i.datatype[:20]!r}",
                field=i.name[:100],
                value=i.datatype[:20],
            )
        declared[i.name] = (dtype, i.shape)
    check_declared(sig, declared, max_batch=backend.max_batch, max_bytes=backend.max_decoded_bytes)
    wanted = check_outputs(sig, output_names)
    values = {}
    for i in inputs:
        dtype, shape = declared[i.name]
        assert dtype is not None
        values[i.name] = i.decode(dtype, shape)
    outputs = yield ModelCall(model, sig, feed(sig, values, strict_dtype=True, max_batch=backend.max_batch), wanted)
    return model, outputs


def flat_values(name: str, data: JsonValue, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """JSON ``data`` (flat or nested, as the protocol allows) -> an array of ``shape``."""
    try:
        arr = np.asarray(data)
    except ValueError:
        raise RequestError(f"input {name!r}: data is ragged", field=name) from None
    if arr.dtype.kind not in "fiub":
        raise RequestError(f"input {name!r}: data must be numbers", field=name, value=arr.dtype.name)
    if arr.size != math.prod(shape):
        raise RequestError(
            f"input {name!r}: {arr.size} values do not fit shape {list(shape)}", field=name, value=list(shape)
        )
    if dtype.kind in "iu" and arr.dtype.kind == "f":
        raise RequestError(f"input {name!r} must hold integers", field=name)
    return arr.reshape(shape).astype(dtype, copy=False)


def raw_values(name: str, raw: bytes, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Binary tensor data (little-endian, row-major) -> an array of ``shape``."""
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise RequestError(f"input {name!r}: {len(raw)} bytes of data, shape {list(shape)} needs {need}", field=name)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)
