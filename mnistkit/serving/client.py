"""``ModelClient``: ask a TF Serving (or ``mnistkit serve``) server what digits images show.

One API over both protocols: gRPC (``PredictionServiceStub``, as the 2018 example's client) and REST
(``/v1/models/<name>:predict``). Widgets, notebooks and ``mnistkit predict`` all use it::

    with ModelClient(port=8500) as client:
        print(client.predict_one(image).digit)

gRPC needs TensorFlow's protos, so its first use costs TensorFlow's import (seconds); REST needs only the
standard library. Every failure is a ``ServingError`` (``RequestError`` with the status code when the
server answered) with a message a user can act on.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mnistkit.errors import ServingError
from mnistkit.serving.status import RequestError, code_for_http

if TYPE_CHECKING:
    import grpc
    from tensorflow_serving.apis.model_service_pb2_grpc import ModelServiceStub
    from tensorflow_serving.apis.prediction_service_pb2_grpc import PredictionServiceStub

    from mnistkit._types import Proto

__all__ = ["Prediction", "ModelClient", "prepare_images", "ServingError", "RequestError"]

_PROTOCOLS = ("grpc", "rest")
_STEPS = 10_000  # REST sends pixels rounded to 4 decimals: far finer than a pixel's 1/255 step
_NUMBERS: np.ndarray | None = None  # JSON text of k / _STEPS for k = 0.._STEPS, built on first REST predict


def _json_images(batch: np.ndarray) -> str:
    """``[b, 28, 28]`` in [0, 1] as JSON text, each value rounded to 4 decimals.

    The values of ``np.round(batch, 4).tolist()`` (0 and 1 written as integers), about 8x faster than ``json.dumps``:
    formatting 784 floats one by one was most of a batch-1 REST request's client time, so each value's
    text is looked up in a table of the 10,001 possible ones instead.
    """
    global _NUMBERS
    if _NUMBERS is None:
        numbers = [repr(k / _STEPS) for k in range(_STEPS + 1)]
        # 0 and 1 as JSON integers: most pixels of a digit are 0, and an integer parses faster than a float.
        numbers[0], numbers[_STEPS] = "0", "1"
        _NUMBERS = np.array(numbers, dtype=object)
    idx = np.rint(batch.astype(np.float64) * _STEPS).astype(np.intp)
    rows = [",".join(r) for r in _NUMBERS[idx.reshape(-1, batch.shape[-1])].tolist()]
    h = batch.shape[1]
    return "[" + ",".join("[[" + "],[".join(rows[i * h : (i + 1) * h]) + "]]" for i in range(batch.shape[0])) + "]"


@dataclass(frozen=True)
class Prediction:
    """One image's answer: the digit, the ten class probabilities, and the model version that answered."""

    digit: int
    probabilities: tuple[float, ...]
    model_version: int


def prepare_images(images: ArrayLike) -> np.ndarray:
    """``[28, 28]`` or ``[b, 28, 28]``, float in [0, 1] or uint8 0-255 -> float32 ``[b, 28, 28]`` in [0, 1]."""
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise ServingError(
            f"images must be [28, 28] or [b, 28, 28], got {list(arr.shape)}", field="images", value=list(arr.shape)
        )
    if arr.shape[0] == 0:
        raise ServingError("no images given (batch of 0)", field="images", value=0)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ServingError(f"images must be numbers, got dtype {arr.dtype}", field="images", value=str(arr.dtype))
    out = arr.astype(np.float32, copy=False)  # never written to: no copy needed
    lo, hi = float(out.min()), float(out.max())
    if not (0.0 <= lo and hi <= 1.0):  # NaN fails every comparison, so NaN and Inf land here too
        if not np.isfinite(out).all():
            raise ServingError("images contain NaN or Inf", field="images")
        raise ServingError(
            f"float images must be in [0, 1] (got values from {lo:g} to {hi:g}); pass uint8 for 0-255 pixels",
            field="images",
            value=(lo, hi),
        )
    return out


def _predictions(classes: np.ndarray, probs: np.ndarray, version: int) -> list[Prediction]:
    # tolist() converts to Python ints and floats in C, not one numpy scalar at a time.
    version = int(version)
    return [
        Prediction(c, tuple(row), version)
        for c, row in zip(
            np.asarray(classes).reshape(-1).tolist(), np.asarray(probs, np.float64).reshape(-1, 10).tolist()
        )
    ]


class ModelClient:
    """A client for one model on one server, over ``protocol`` ``"grpc"`` or ``"rest"``.

    Thread-safe: gRPC channels are; REST keeps one keep-alive connection per thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8500,
        protocol: str = "grpc",
        model_name: str = "mnist",
        signature_name: str = "serving_default",
        timeout: float = 10.0,
        *,
        version: int | None = None,
    ) -> None:
        if protocol not in _PROTOCOLS:
            raise ServingError(f"protocol must be 'grpc' or 'rest', got {protocol!r}", field="protocol", value=protocol)
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ServingError(f"port must be a number, got {port!r}", field="port", value=port) from None
        if not 0 < port < 65536:
            raise ServingError(f"port must be 1-65535, got {port}", field="port", value=port)
        if not host:
            raise ServingError("host is empty", field="host", value=host)
        if timeout <= 0:
            raise ServingError(f"timeout must be positive, got {timeout}", field="timeout", value=timeout)
        self.host, self.port, self.protocol = host, port, protocol
        self.model_name, self.signature_name, self.timeout = model_name, signature_name, float(timeout)
        self.version = version
        self._channel: grpc.Channel | None = None
        self._stubs: tuple[PredictionServiceStub, ModelServiceStub] | None = None
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ModelClient:
        """From ``TF_MODEL_SERVER_HOST`` / ``TF_MODEL_SERVER_PORT`` / ``TF_MODEL_SERVER_PROTOCOL``.

        Without a protocol, port 8501 (TF Serving's REST port) means REST and anything else gRPC.
        """
        env = os.environ if env is None else env
        host = env.get("TF_MODEL_SERVER_HOST") or "127.0.0.1"
        raw_port = env.get("TF_MODEL_SERVER_PORT") or "8500"
        try:
            port = int(raw_port)
        except ValueError:
            raise ServingError(
                f"TF_MODEL_SERVER_PORT must be a number, got {raw_port!r}", field="TF_MODEL_SERVER_PORT", value=raw_port
            ) from None
        protocol = (env.get("TF_MODEL_SERVER_PROTOCOL") or ("rest" if port == 8501 else "grpc")).lower()
        kwargs: dict[str, Any] = {"host": host, "port": port, "protocol": protocol}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"ModelClient({self.protocol}://{self.address}, model={self.model_name!r})"

    def _unreachable(self, detail: str) -> ServingError:
        return ServingError(
            f"cannot reach the model server at {self.address} ({self.protocol}): {detail}. Is it running? "
            f"Start one with `mnistkit serve --model_base_path <dir or s3://...>` "
            f"(gRPC on port 8500, REST on 8501), or point TF_MODEL_SERVER_HOST/TF_MODEL_SERVER_PORT at one.",
            field="address",
            value=self.address,
        )

    # -- public API -----------------------------------------------------------------------------------

    def predict(self, images: ArrayLike) -> list[Prediction]:
        """Predict the digit of each image (``[28, 28]`` or ``[b, 28, 28]``)."""
        batch = prepare_images(images)
        if self.protocol == "grpc":
            return self._predict_grpc(batch)
        return self._predict_rest(batch)

    def predict_one(self, image: ArrayLike) -> Prediction:
        arr = np.asarray(image)
        if arr.shape != (28, 28) and arr.shape != (1, 28, 28):
            raise ServingError(
                f"predict_one takes one [28, 28] image, got {list(arr.shape)}", field="image", value=list(arr.shape)
            )
        return self.predict(arr)[0]

    def status(self) -> dict[str, Any]:
        """TF Serving's model status JSON: ``{"model_version_status": [{"version", "state", "status"}]}``."""
        if self.protocol == "rest":
            return self._rest("GET", self._path())
        stub = self._grpc_stubs()[1]
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        response = self._call(stub.GetModelStatus, request)
        out = json_format.MessageToDict(
            response, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        for entry in out.get("model_version_status", []):
            entry.setdefault("status", {}).setdefault("error_code", "OK")
        return out

    def metadata(self) -> dict[str, Any]:
        """TF Serving's metadata JSON: ``{"model_spec": ..., "metadata": {"signature_def": ...}}``."""
        if self.protocol == "rest":
            return self._rest("GET", self._path() + "/metadata")
        stub = self._grpc_stubs()[0]
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.model_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        request.metadata_field.append("signature_def")
        response = self._call(stub.GetModelMetadata, request)
        sdm = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sdm)
        return {
            "model_spec": {
                "name": response.model_spec.name,
                "signature_name": response.model_spec.signature_name,
                "version": str(response.model_spec.version.value),
            },
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    sdm, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
                )
            },
        }

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None
                self._stubs = None

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- gRPC -----------------------------------------------------------------------------------------

    def _grpc_stubs(self) -> tuple[PredictionServiceStub, ModelServiceStub]:
        stubs = self._stubs
        if stubs is not None:  # every request comes here: no lock once the stubs exist
            return stubs
        with self._lock:
            if self._stubs is None:
                # The protos import TensorFlow; keep its C++ start-up chatter out of the user's terminal.
                from mnistkit.tf_runtime import import_tensorflow

                import_tensorflow()
                import grpc
                from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

                self._channel = grpc.insecure_channel(
                    self.address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
                )
                self._stubs = (
                    prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
                    model_service_pb2_grpc.ModelServiceStub(self._channel),
                )
            return self._stubs

    def _call(self, method: Callable[..., Proto], request: Proto) -> Proto:
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            details = exc.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
                detail = "connection refused" if "refused" in details.lower() else details.splitlines()[0][:200]
                raise self._unreachable(detail) from None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise RequestError(
                    f"the model server at {self.address} did not answer within {self.timeout:g} s",
                    "DEADLINE_EXCEEDED",
                    field="timeout",
                    value=self.timeout,
                ) from None
            raise RequestError(f"{self.address} answered {code.name}: {details}", code.name, field="request") from None

    def _predict_grpc(self, batch: np.ndarray) -> list[Prediction]:
        stub = self._grpc_stubs()[0]  # first: it imports TensorFlow quietly
        from tensorflow_serving.apis import predict_pb2

        from mnistkit.serving.tensors import fill_proto, proto_to_ndarray

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = self.signature_name
        if self.version is not None:
            request.model_spec.version.value = self.version
        fill_proto(request.inputs["x"], batch, content=True)
        response = self._call(stub.Predict, request)
        try:
            classes = proto_to_ndarray(response.outputs["classes"], "classes")
            probs = proto_to_ndarray(response.outputs["predictions"], "predictions")
        except (RequestError, ValueError) as exc:
            raise ServingError(f"{self.address} answered with unreadable outputs: {exc}", field="response") from None
        return _predictions(classes, probs, response.model_spec.version.value)

    # -- REST -----------------------------------------------------------------------------------------

    def _path(self) -> str:
        path = f"/v1/models/{self.model_name}"
        return path + (f"/versions/{self.version}" if self.version is not None else "")

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _rest_raw(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (ConnectionRefusedError, socket.gaierror) as exc:
                conn.close()
                raise self._unreachable(exc.strerror or type(exc).__name__) from None
            except TimeoutError:
                conn.close()
                raise RequestError(
                    f"the model server at {self.address} did not answer within {self.timeout:g} s",
                    "DEADLINE_EXCEEDED",
                    field="timeout",
                    value=self.timeout,
                ) from None
            except (http.client.HTTPException, ConnectionError, OSError) as exc:
                # A kept-alive connection the server closed meanwhile: reconnect once.
                conn.close()
                if attempt == 1:
                    raise self._unreachable(f"{type(exc).__name__}: {exc}") from None
        try:
            payload = json.loads(data) if data else {}
        except ValueError:
            raise ServingError(
                f"{self.address} answered HTTP {resp.status} with a body that is not JSON; "
                "is it a TF Serving REST port?",
                field="response",
                value=resp.status,
            ) from None
        if resp.status != 200:
            message = payload.get("error", "") if isinstance(payload, dict) else ""
            code = code_for_http(resp.status)
            raise RequestError(
                f"{self.address} answered HTTP {resp.status} ({code}): {message}",
                code,
                field="request",
                value=resp.status,
            )
        return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}

    def _rest(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        return self._rest_raw(method, path, body)[1]

    def _predict_rest(self, batch: np.ndarray) -> list[Prediction]:
        # Four decimals: far finer than a pixel's 1/255 step, and short numbers make the JSON quick to build and parse.
        head = json.dumps({"signature_name": self.signature_name})[:-1]
        body = f'{head}, "inputs": {{"x": {_json_images(batch)}}}}}'.encode()
        _status, payload, headers = self._rest_raw("POST", self._path() + ":predict", body)
        try:
            outputs = payload["outputs"]
            classes = np.asarray(outputs["classes"])
            probs = np.asarray(outputs["predictions"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ServingError(
                f"{self.address} answered without outputs 'classes' and 'predictions'", field="response"
            ) from None
        header = headers.get("x-model-version", "")
        if header.isascii() and header.isdigit():
            version = int(header)
        else:  # Real TF Serving's REST predict does not say which version answered: ask the status.
            version = self.version if self.version is not None else self._latest_version()
        return _predictions(classes, probs, version)

    def _latest_version(self) -> int:
        entries = self._rest("GET", self._path()).get("model_version_status", [])
        available = [int(e["version"]) for e in entries if e.get("state") == "AVAILABLE"]
        return max(available) if available else 0
