"""The Open Inference Protocol's gRPC API (``inference.GRPCInferenceService``) over a ``Backend``.

Served on the gRPC port beside TF Serving's ``PredictionService``, with the service definition Triton's
client library ships (``tritonclient.grpc.service_pb2``), so the protocol's stock clients work unchanged:
``ServerLive``, ``ServerReady``, ``ModelReady``, ``ServerMetadata``, ``ModelMetadata`` and ``ModelInfer``
(typed ``contents`` or ``raw_input_contents`` in; ``raw_output_contents`` out, as Triton answers). The
other methods (model repository, shared memory, statistics, streaming) answer ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from mnistkit.serving import oip
from mnistkit.serving.backend import Backend
from mnistkit.serving.status import RequestError, grpc_abort

if TYPE_CHECKING:
    from mnistkit._types import Proto

__all__ = ["InferenceServicer", "add_service"]

# v2 datatype -> the InferTensorContents field that holds it.
_CONTENTS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def _typed(name: str, datatype: str, contents: Proto, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise RequestError(f"input {name!r}: {datatype} must be sent in raw_input_contents", field=name)
    return oip.flat_values(name, np.asarray(getattr(contents, field)), dtype, shape)


def _inputs(request: Proto) -> list[oip.V2Input]:
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs", field="raw_input_contents"
        )
    out = []
    for n, t in enumerate(request.inputs):
        name = t.name[:100]
        if len(t.shape) > 32 or any(d < 0 for d in t.shape):
            raise RequestError(f"input {name!r}: shape must be non-negative integers", field=name)
        shape = tuple(int(d) for d in t.shape)
        if raw:
            decode = functools.partial(oip.raw_values, name, raw[n])
        else:
            decode = functools.partial(_typed, name, t.datatype, t.contents)
        out.append(oip.V2Input(t.name, t.datatype, shape, decode))
    return out


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The health, metadata and inference methods of ``inference.GRPCInferenceService``."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def ServerLive(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        return service_pb2.ServerReadyResponse(ready=self._backend.manager.current is not None)

    def ModelReady(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        try:
            return service_pb2.ModelReadyResponse(ready=oip.model_ready(self._backend, request.name, request.version))
        except RequestError as exc:
            grpc_abort(context, exc)

    def ServerMetadata(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        meta = oip.server_metadata()
        return service_pb2.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=meta["extensions"]
        )

    def ModelMetadata(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        try:
            meta = oip.model_metadata(self._backend, request.name, request.version)
        except RequestError as exc:
            grpc_abort(context, exc)
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    def ModelInfer(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        try:
            names = [o.name for o in request.outputs] or None
            model, outputs = self._backend.complete(
                oip.infer(self._backend, request.model_name, request.model_version, _inputs(request), names)
            )
        except RequestError as exc:
            grpc_abort(context, exc)
        response = service_pb2.ModelInferResponse(
            model_name=request.model_name, model_version=str(model.version), id=request.id
        )
        for key, value in outputs.items():
            arr = np.asarray(value)
            response.outputs.add(name=key, datatype=oip.datatype_of(arr.dtype), shape=list(arr.shape))
            response.raw_output_contents.append(
                np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            )
        return response


def add_service(grpc_server: grpc.Server, backend: Backend) -> None:
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(backend), grpc_server)
