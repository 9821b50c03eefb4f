"""``TensorProto`` <-> numpy without TensorFlow's eager machinery.

``tf.make_tensor_proto``/``tf.make_ndarray`` work, but cost tens of microseconds of Python per call and
need TensorFlow imported; this is plain numpy over the proto's fields. Requests may use either
``tensor_content`` (what ``tf.make_tensor_proto`` writes) or the typed ``*_val`` fields (what
hand-written clients use); responses are written with the typed fields, as TF Serving does, because
clients written against it (the 2018 example included) read ``outputs["classes"].int_val[0]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.serving.status import RequestError

if TYPE_CHECKING:
    from mnistkit._types import Proto

__all__ = [
    "DTYPES",
    "DTYPE_NAMES",
    "MAX_TENSOR_BYTES",
    "declared",
    "proto_to_ndarray",
    "ndarray_to_proto",
    "fill_proto",
]

MAX_TENSOR_BYTES = 64 * 1024 * 1024

# TensorFlow DataType enum value -> (numpy dtype, typed value field).
DTYPES: dict[int, tuple[np.dtype[np.generic], str]] = {
    1: (np.dtype(np.float32), "float_val"),
    2: (np.dtype(np.float64), "double_val"),
    3: (np.dtype(np.int32), "int_val"),
    4: (np.dtype(np.uint8), "int_val"),
    5: (np.dtype(np.int16), "int_val"),
    6: (np.dtype(np.int8), "int_val"),
    9: (np.dtype(np.int64), "int64_val"),
    10: (np.dtype(np.bool_), "bool_val"),
    17: (np.dtype(np.uint16), "int_val"),
    22: (np.dtype(np.uint32), "uint32_val"),
    23: (np.dtype(np.uint64), "uint64_val"),
}
DTYPE_NAMES: dict[int, str] = {
    1: "DT_FLOAT",
    2: "DT_DOUBLE",
    3: "DT_INT32",
    4: "DT_UINT8",
    5: "DT_INT16",
    6: "DT_INT8",
    7: "DT_STRING",
    9: "DT_INT64",
    10: "DT_BOOL",
    17: "DT_UINT16",
    19: "DT_HALF",
    22: "DT_UINT32",
    23: "DT_UINT64",
}
_ENUM_OF: dict[np.dtype[np.generic], int] = {dt: enum for enum, (dt, _field) in DTYPES.items()}


def declared(proto: Proto, name: str = "input") -> tuple[np.dtype[np.generic], tuple[int, ...]]:
    """The dtype and shape a ``TensorProto`` declares, read without decoding a value."""
    if proto.dtype not in DTYPES:
        label = DTYPE_NAMES.get(proto.dtype, f"dtype {proto.dtype}")
        raise RequestError(f"input {name!r}: unsupported dtype {label}", field=name, value=label)
    if len(proto.tensor_shape.dim) > 32:
        raise RequestError(f"input {name!r}: rank {len(proto.tensor_shape.dim)} is too high", field=name)
    return DTYPES[proto.dtype][0], tuple(int(d.size) for d in proto.tensor_shape.dim)


def proto_to_ndarray(proto: Proto, name: str = "input") -> np.ndarray:
    """Decode a ``TensorProto``; a malformed one is an ``INVALID_ARGUMENT`` naming ``name``."""
    dtype, shape = declared(proto, name)
    field = DTYPES[proto.dtype][1]
    if any(d < 0 for d in shape):
        raise RequestError(f"input {name!r}: negative dimension in shape {list(shape)}", field=name, value=list(shape))
    size = math.prod(shape)
    if size * dtype.itemsize > MAX_TENSOR_BYTES:
        # A short value list is padded to the shape, so a tiny message could ask for any amount of memory.
        raise RequestError(
            f"input {name!r}: shape {list(shape)} is too large (limit {MAX_TENSOR_BYTES >> 20} MiB)",
            field=name,
            value=list(shape),
        )
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != size * dtype.itemsize:
            raise RequestError(
                f"input {name!r}: tensor_content has {len(content)} bytes, shape {list(shape)} needs "
                f"{size * dtype.itemsize}",
                field=name,
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    values = getattr(proto, field)
    n = len(values)
    if n == size:
        return np.asarray(values, dtype=dtype).reshape(shape)
    if n == 0:
        return np.zeros(shape, dtype=dtype)
    if n < size:
        # TensorFlow's rule: a short value list is padded with its last value.
        arr = np.empty(size, dtype=dtype)
        arr[:n] = values
        arr[n:] = values[-1]
        return arr.reshape(shape)
    raise RequestError(f"input {name!r}: {n} values do not fit shape {list(shape)}", field=name, value=list(shape))


def fill_proto(proto: Proto, array: np.ndarray, *, content: bool = False) -> Proto:
    """Write ``array`` into the (empty) ``TensorProto`` ``proto``; typed fields unless ``content``."""
    array = np.asarray(array)
    enum = _ENUM_OF.get(array.dtype)
    if enum is None:
        raise RequestError(f"cannot encode dtype {array.dtype}", "INTERNAL", field="dtype", value=str(array.dtype))
    proto.dtype = enum
    for d in array.shape:
        proto.tensor_shape.dim.add().size = int(d)
    if content:
        proto.tensor_content = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    else:
        getattr(proto, DTYPES[enum][1]).extend(array.ravel().tolist())
    return proto


def ndarray_to_proto(array: np.ndarray, *, content: bool = True) -> Proto:
    """A new ``TensorProto`` holding ``array`` (``tensor_content`` by default: compact and fast)."""
    from tensorflow.core.framework import tensor_pb2

    return fill_proto(tensor_pb2.TensorProto(), array, content=content)
