"""TF Serving's gRPC API (``PredictionService`` and ``ModelService``) over a ``ModelServer``'s models.

Uses the protos of ``tensorflow-serving-api``, so every TF Serving client (the 2018 example's
``mnist_client.py`` included) works unchanged. Errors are the canonical status codes TF Serving uses.
Classify, Regress, MultiInference and model-config reloads are not offered (``UNIMPLEMENTED``): the
MNIST model has only a predict signature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from mnistkit.serving.models import DEFAULT_SIGNATURE, UnknownSignature
from mnistkit.serving.status import RequestError
from mnistkit.serving.tensors import fill_proto, proto_to_ndarray

if TYPE_CHECKING:
    from mnistkit.serving.server import ModelServer

__all__ = ["PredictionServicer", "ModelServicer", "add_services"]

# ModelVersionStatus.State values and tensorflow.error.Code values by name.
_STATE = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def _abort(context: grpc.ServicerContext, exc: RequestError) -> None:
    code = "FAILED_PRECONDITION" if isinstance(exc, UnknownSignature) else exc.code
    context.abort(getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN), str(exc))


def _version(spec: Any) -> int | None:
    if spec.HasField("version"):
        return int(spec.version.value)
    if spec.version_label:
        raise RequestError(
            f"version labels are not supported (got {spec.version_label!r}); ask for a version number",
            field="version_label",
            value=spec.version_label,
        )
    return None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata``."""

    def __init__(self, server: ModelServer) -> None:
        self._server = server

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC's name
        try:
            model = self._server.resolve(request.model_spec.name, _version(request.model_spec))
            inputs = {k: proto_to_ndarray(v, k) for k, v in request.inputs.items()}
            sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            outputs = model.predict(
                sig_name,
                inputs,
                strict_dtype=True,
                max_batch=self._server.max_batch,
                output_filter=list(request.output_filter) or None,
            )
        except RequestError as exc:
            _abort(context, exc)
            raise  # unreachable: abort raises
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.model_spec.signature_name = sig_name
        for key, value in outputs.items():
            fill_proto(response.outputs[key], value)
        return response

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            fields = list(request.metadata_field)
            if not fields:
                raise RequestError(
                    "GetModelMetadataRequest must specify at least one metadata_field", field="metadata_field"
                )
            unsupported = [f for f in fields if f != "signature_def"]
            if unsupported:
                raise RequestError(
                    f"Metadata field {unsupported[0]} is not supported", field="metadata_field", value=unsupported[0]
                )
            model = self._server.resolve(request.model_spec.name, _version(request.model_spec))
        except RequestError as exc:
            _abort(context, exc)
            raise
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_def_map(model))
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``GetModelStatus``."""

    def __init__(self, server: ModelServer) -> None:
        self._server = server

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            statuses = self._server.status(request.model_spec.name, _version(request.model_spec))
        except RequestError as exc:
            _abort(context, exc)
            raise
        from tensorflow.core.protobuf import error_codes_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        for st in statuses:
            entry = response.model_version_status.add()
            entry.version = st.version
            entry.state = _STATE[st.state]
            entry.status.error_code = error_codes_pb2.Code.Value(st.error_code)
            entry.status.error_message = st.error_message
        return response


def signature_def_map(model: Any) -> Any:
    """The model's ``SignatureDefMap`` proto (what ``GetModelMetadata`` returns under ``signature_def``)."""
    sdm = get_model_metadata_pb2.SignatureDefMap()
    for name, sdef in model.signature_defs.items():
        sdm.signature_def[name].CopyFrom(sdef)
    return sdm


def add_services(grpc_server: grpc.Server, server: ModelServer) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(server), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(server), grpc_server)
