"""TF Serving's REST API (``/v1/models/...``) on a threaded stdlib HTTP server.

Routes and JSON shapes follow TF Serving's REST documentation:

* ``GET /v1/models/<name>[/versions/<v>]`` -> ``{"model_version_status": [...]}``
* ``GET /v1/models/<name>[/versions/<v>]/metadata`` -> ``{"model_spec": ..., "metadata": {"signature_def": ...}}``
* ``POST /v1/models/<name>[/versions/<v>]:predict`` with ``instances`` (row format, answered as
  ``predictions``) or ``inputs`` (columnar, answered as ``outputs``).

Errors are ``{"error": "..."}`` with TF Serving's code -> HTTP status mapping. HTTP/1.1 keep-alive, and each
response goes out in one write with Nagle off, so a request costs a round trip and no delayed-ACK stall.
Request bodies are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistkit.serving.models import DEFAULT_SIGNATURE
from mnistkit.serving.status import RequestError

if TYPE_CHECKING:
    from mnistkit.serving.server import ModelServer

__all__ = ["RestServer", "make_rest_server", "status_json", "metadata_json"]

log = logging.getLogger("mnistkit.serving.rest")

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 411: "Length Required", 412: "Precondition Failed", 413: "Payload Too Large",
    429: "Too Many Requests", 499: "Client Closed Request", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def status_json(statuses: list[Any]) -> dict[str, Any]:
    """TF Serving's ``GetModelStatusResponse`` in JSON (versions as strings: proto3 JSON for int64)."""
    return {
        "model_version_status": [
            {
                "version": str(st.version),
                "state": st.state,
                "status": {"error_code": st.error_code, "error_message": st.error_message},
            }
            for st in statuses
        ]
    }


def metadata_json(name: str, model: Any) -> dict[str, Any]:
    """TF Serving's metadata response: the model spec and the SignatureDefMap as proto JSON."""
    from google.protobuf import json_format

    from mnistkit.serving.grpc_service import signature_def_map

    sdm = json_format.MessageToDict(
        signature_def_map(model), always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
        "metadata": {"signature_def": sdm},
    }


def _columns_from_instances(instances: Any, input_keys: list[str]) -> dict[str, Any]:
    """Row format -> one batched value per input."""
    if not isinstance(instances, list):
        raise RequestError('"instances" must be a list', field="instances")
    if not instances:
        raise RequestError('"instances" is an empty list: nothing to predict', field="instances", value=0)
    named = [isinstance(i, dict) for i in instances]
    if all(named):
        cols: dict[str, list[Any]] = {}
        keys = set(instances[0])
        for inst in instances:
            if set(inst) != keys:
                raise RequestError("every instance must name the same inputs", field="instances")
            for k, v in inst.items():
                cols.setdefault(k, []).append(v)
        return cols
    if any(named):
        raise RequestError("instances mix named (objects) and unnamed values", field="instances")
    if len(input_keys) != 1:
        raise RequestError(
            f"the signature has {len(input_keys)} inputs; each instance must be an object naming them",
            field="instances",
        )
    return {input_keys[0]: instances}


def _rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    """Outputs -> row format: a list of values (one output) or of objects (several)."""
    arrays = {k: v.tolist() for k, v in outputs.items()}
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    n = {len(v) if isinstance(v, list) else -1 for v in arrays.values()}
    if len(n) != 1 or -1 in n:
        raise RequestError(
            "the outputs differ in batch size; ask for the columnar format (\"inputs\")", "INVALID_ARGUMENT"
        )
    return [{k: v[i] for k, v in arrays.items()} for i in range(n.pop())]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server_version = "mnistkit-serving"
    timeout = 120  # idle keep-alive connections are dropped after this
    server: RestServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's signature
        # The stdlib logs every request line to stderr; keep it at debug and never with bodies.
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, allow_nan=True).encode()
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        if self.close_connection:
            lines.append("Connection: close")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        # One write: headers and body in one segment.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        log.debug("%s %s -> %d", self.command, self.path.split("?")[0], status)

    def _error(self, exc: RequestError) -> None:
        self._send(exc.http_status, {"error": str(exc)})

    def _route(self) -> re.Match[str]:
        m = _ROUTE.match(self.path.split("?", 1)[0])
        if m is None:
            raise RequestError(f"Malformed request: {self.command} {self.path.split('?')[0][:200]}", "NOT_FOUND")
        if m["label"]:
            raise RequestError("version labels are not supported; use /versions/<number>", "INVALID_ARGUMENT")
        return m

    @staticmethod
    def _version(m: re.Match[str]) -> int | None:
        v = m["version"]
        if v is None:
            return None
        if not v.isdigit():
            raise RequestError(f"version must be a number, got {v[:50]!r}", field="version", value=v[:50])
        return int(v)

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        try:
            m = self._route()
            if m["verb"]:
                raise RequestError(f"use POST for :{m['verb']}", "UNIMPLEMENTED")
            name, version = m["name"], self._version(m)
            if m["metadata"]:
                model = self.server.backend.resolve(name, version)
                self._send(200, metadata_json(name, model))
            else:
                self._send(200, status_json(self.server.backend.status(name, version)))
        except RequestError as exc:
            self._error(exc)
        except Exception:
            self._internal_error()

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = self._read_length()
            if length is None:
                return
            raw = self.rfile.read(length)
            m = self._route()
            if m["metadata"] or m["verb"] is None:
                raise RequestError(f"Malformed request: POST {self.path.split('?')[0][:200]}", "NOT_FOUND")
            if m["verb"] != "predict":
                raise RequestError(f":{m['verb']} is not supported by this server; use :predict", "UNIMPLEMENTED")
            model = self.server.backend.resolve(m["name"], self._version(m))
            self._predict(model, raw)
        except RequestError as exc:
            self._error(exc)
        except Exception:
            self._internal_error()

    def _internal_error(self) -> None:
        # A bug, not a bad request: log the traceback (never the body) and answer 500; the server keeps serving.
        log.exception("internal error answering %s %s", self.command, self.path.split("?")[0][:200])
        self.close_connection = True
        self._send(500, {"error": "internal server error; see the server log"})

    def _read_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            self._send(411, {"error": "chunked request bodies are not supported; send Content-Length"})
            return None
        try:
            length = int(value or "0")
        except ValueError:
            self.close_connection = True
            self._send(400, {"error": "Content-Length is not a number"})
            return None
        if length > self.server.max_request_bytes:
            # Unread body: the connection can't be reused, so close it after the answer.
            self.close_connection = True
            self._send(
                413,
                {"error": f"request body of {length} bytes exceeds the limit of {self.server.max_request_bytes}"},
            )
            return None
        return length

    def _predict(self, model: Any, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise RequestError(f"JSON Parse error: {type(exc).__name__}: {exc}"[:300], field="body") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object", field="body")
        sig_name = body.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(sig_name, str):
            raise RequestError('"signature_name" must be a string', field="signature_name")
        sig = model.signature(sig_name)
        has_rows, has_cols = "instances" in body, "inputs" in body
        if has_rows == has_cols:
            raise RequestError(
                'the body must have exactly one of "instances" (row format) or "inputs" (columnar format)',
                field="body",
            )
        keys = list(sig.inputs)
        if has_rows:
            inputs = _columns_from_instances(body["instances"], keys)
        else:
            cols = body["inputs"]
            if isinstance(cols, dict):
                inputs = cols
            elif len(keys) == 1:
                inputs = {keys[0]: cols}
            else:
                raise RequestError('"inputs" must be an object naming every input', field="inputs")
            if any(v is None or v == [] for v in inputs.values()):
                raise RequestError("an input is empty: nothing to predict", field="inputs")
        outputs = model.predict(sig_name, inputs, strict_dtype=False, max_batch=self.server.max_batch)
        headers = {"X-Model-Version": str(model.version)}
        if has_rows:
            self._send(200, {"predictions": _rows(outputs)}, headers)
        else:
            out = {k: v.tolist() for k, v in outputs.items()}
            self._send(200, {"outputs": next(iter(out.values())) if len(out) == 1 else out}, headers)


class RestServer(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` that knows its backend and limits."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent clients connect at once

    def __init__(self, address: tuple[str, int], backend: ModelServer, max_request_bytes: int, max_batch: int) -> None:
        self.backend = backend
        self.max_request_bytes = max_request_bytes
        self.max_batch = max_batch
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop kept-alive connections, so that a stopped server stops answering on them too."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_rest_server(host: str, port: int, backend: ModelServer, max_request_bytes: int, max_batch: int) -> RestServer:
    return RestServer((host, port), backend, max_request_bytes, max_batch)
