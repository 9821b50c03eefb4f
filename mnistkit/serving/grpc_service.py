"""TF Serving's gRPC API (``PredictionService`` and ``ModelService``) over a ``Backend``.

Uses the protos of ``tensorflow-serving-api``, so every TF Serving client (the 2018 example's
``mnist_client.py`` included) works unchanged. Errors are the canonical status codes TF Serving uses.
Classify, Regress, MultiInference and model-config reloads are not offered (``UNIMPLEMENTED``): the
MNIST model has only a predict signature. A request is judged from what it declares (names, dtypes,
shapes) before any tensor is decoded, so a few bytes declaring 16M floats cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mnistkit.serving.backend import Backend, signature_def_map
from mnistkit.serving.signature import DEFAULT_SIGNATURE, check_declared, check_outputs, feed
from mnistkit.serving.status import RequestError, grpc_abort
from mnistkit.serving.tensors import declared, fill_proto, proto_to_ndarray

if TYPE_CHECKING:
    from mnistkit._types import Proto

__all__ = ["PredictionServicer", "ModelServicer", "add_services"]

# ModelVersionStatus.State values by name.
_STATE = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def _version(spec: Proto) -> int | None:
    if spec.HasField("version"):
        return int(spec.version.value)
    if spec.version_label:
        raise RequestError(
            f"version labels are not supported (got {spec.version_label[:100]!r}); ask for a version number",
            field="version_label",
            value=spec.version_label[:100],
        )
    return None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata``."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def Predict(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        b = self._backend
        try:
            model = b.resolve(request.model_spec.name, _version(request.model_spec))
            sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            sig = model.signature(sig_name)
            wanted = check_outputs(sig, list(request.output_filter) or None)
            check_declared(
                sig,
                {k: declared(v, k) for k, v in request.inputs.items()},
                max_batch=b.max_batch,
                max_bytes=b.max_decoded_bytes,
            )
            inputs = {k: proto_to_ndarray(v, k) for k, v in request.inputs.items()}
            outputs = b.run(model, sig, feed(sig, inputs, strict_dtype=True, max_batch=b.max_batch), wanted)
        except RequestError as exc:
            grpc_abort(context, exc)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = sig_name
        for key, value in outputs.items():
            fill_proto(response.outputs[key], value)
        return response

    def GetModelMetadata(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        try:
            fields = list(request.metadata_field)
            if not fields:
                raise RequestError(
                    "GetModelMetadataRequest must specify at least one metadata_field", field="metadata_field"
                )
            unsupported = [f for f in fields if f != "signature_def"]
            if unsupported:
                raise RequestError(
                    f"Metadata field {unsupported[0][:100]} is not supported",
                    field="metadata_field",
                    value=unsupported[0][:100],
                )
            model = self._backend.resolve(request.model_spec.name, _version(request.model_spec))
        except RequestError as exc:
            grpc_abort(context, exc)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_def_map(model))
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``GetModelStatus``."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def GetModelStatus(self, request: Proto, context: grpc.ServicerContext) -> Proto:
        try:
            statuses = self._backend.status(request.model_spec.name, _version(request.model_spec))
        except RequestError as exc:
            grpc_abort(context, exc)
        from tensorflow.core.protobuf import error_codes_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        for st in statuses:
            entry = response.model_version_status.add()
            entry.version = st.version
            entry.state = _STATE[st.state]
            entry.status.error_code = error_codes_pb2.Code.Value(st.error_code)
            entry.status.error_message = st.error_message
        return response


def add_services(grpc_server: grpc.Server, backend: Backend) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(backend), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(backend), grpc_server)
