"""The Open Inference Protocol's REST API (``/v2/...``) over a ``Backend``, beside TF Serving's ``/v1``.

* ``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``
* ``GET /v2/models/<name>[/versions/<v>]`` (model metadata), ``GET .../ready``
* ``POST /v2/models/<name>[/versions/<v>]/infer`` with JSON ``data``, or with the binary tensor data
  extension that Triton's clients use by default (``Inference-Header-Content-Length``: the JSON first,
  then each input's bytes; outputs asked for with ``binary_data`` come back the same way).

Errors are ``{"error": "..."}`` with the status table's HTTP codes.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from mnistkit.serving import oip
from mnistkit.serving.backend import Backend, Steps
from mnistkit.serving.http_front import HttpRequest, Reply, Route, json_reply
from mnistkit.serving.rest import parse_json
from mnistkit.serving.status import RequestError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mnistkit._types import JsonValue

__all__ = ["routes"]

_HEADER_LENGTH = "Inference-Header-Content-Length"
_MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"


def _get_only(request: HttpRequest) -> None:
    if request.method != "GET":
        raise RequestError(f"Malformed request: {request.method} {request.path[:200]}", "NOT_FOUND")


def _server(request: HttpRequest, m: re.Match[str], backend: Backend) -> Reply:
    _get_only(request)
    return json_reply(200, oip.server_metadata())


def _live(request: HttpRequest, m: re.Match[str], backend: Backend) -> Reply:
    _get_only(request)
    return json_reply(200, {"live": True})


def _ready(request: HttpRequest, m: re.Match[str], backend: Backend) -> Reply:
    _get_only(request)
    ready = backend.manager.current is not None
    return json_reply(200 if ready else 503, {"ready": ready})


def _metadata(request: HttpRequest, m: re.Match[str], backend: Backend) -> Reply:
    _get_only(request)
    return json_reply(200, oip.model_metadata(backend, m["name"], m["version"]))


def _model_ready(request: HttpRequest, m: re.Match[str], backend: Backend) -> Reply:
    _get_only(request)
    ready = oip.model_ready(backend, m["name"], m["version"])
    return json_reply(200 if ready else 503, {"name": m["name"], "ready": ready})


def _split(request: HttpRequest) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a request body."""
    header = request.headers.get(_HEADER_LENGTH)
    if header is None:
        return request.body, b""
    if not (header.isascii() and header.isdigit()) or int(header) > len(request.body):
        raise RequestError(
            f"{_HEADER_LENGTH} must be a number of bytes within the body, got {header[:30]!r}", field=_HEADER_LENGTH
        )
    n = int(header)
    return request.body[:n], request.body[n:]


def _shape(name: str, value: JsonValue) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 32 or not all(type(d) is int and d >= 0 for d in value):
        raise RequestError(f"input {name!r}: shape must be a list of non-negative integers", field=name)
    return tuple(value)


def _inputs(body: dict[str, Any], binary: bytes) -> list[oip.V2Input]:
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list):
        raise RequestError('"inputs" must be a list of tensors', field="inputs")
    out: list[oip.V2Input] = []
    offset = 0
    for t in raw_inputs:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("datatype"), str):
            raise RequestError('each input needs a "name", a "datatype" and a "shape"', field="inputs")
        name = t["name"][:100]
        shape = _shape(name, t.get("shape"))
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise RequestError(
                    f"input {name!r}: binary_data_size {size!r} exceeds the binary data sent", field=name
                )
            chunk = binary[offset : offset + size]
            offset += size
            out.append(oip.V2Input(name, t["datatype"], shape, functools.partial(oip.raw_values, name, chunk)))
        elif "data" in t:
            out.append(oip.V2Input(name, t["datatype"], shape, functools.partial(oip.flat_values, name, t["data"])))
        else:
            raise RequestError(f'input {name!r} has neither "data" nor binary data', field=name)
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} bytes of binary data belong to no input", field="inputs")
    return out


def _wanted(body: dict[str, Any]) -> tuple[list[str] | None, dict[str, bool]]:
    """Requested output names (None: all) and which of them go back as binary data."""
    params = body.get("parameters") or {}
    all_binary = bool(isinstance(params, dict) and params.get("binary_data_output"))
    outputs = body.get("outputs")
    if outputs is None:
        return None, {"*": all_binary}
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError('"outputs" must be a list of objects with a "name"', field="outputs")
    binary = {o["name"]: bool((o.get("parameters") or {}).get("binary_data", all_binary)) for o in outputs}
    return [o["name"] for o in outputs], binary


def _infer(request: HttpRequest, m: re.Match[str], backend: Backend) -> Steps[Reply]:
    if request.method != "POST":
        raise RequestError(f"Malformed request: {request.method} {request.path[:200]}", "NOT_FOUND")
    head, binary = _split(request)
    body = parse_json(head)
    names, binary_out = _wanted(body)
    model, outputs = yield from oip.infer(backend, m["name"], m["version"], _inputs(body, binary), names)
    answer: dict[str, Any] = {"model_name": m["name"], "model_version": str(model.version), "outputs": []}
    if isinstance(body.get("id"), str):
        answer["id"] = body["id"]
    blobs: list[bytes] = []
    for key, value in outputs.items():
        arr = np.asarray(value)
        entry: dict[str, Any] = {"name": key, "datatype": oip.datatype_of(arr.dtype), "shape": list(arr.shape)}
        if binary_out.get(key, binary_out.get("*", False)):
            blob = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = arr.reshape(-1).tolist()
        answer["outputs"].append(entry)
    text = orjson.dumps(answer)
    if not blobs:
        return Reply(200, text)
    return Reply(
        200, text + b"".join(blobs), ((_HEADER_LENGTH, str(len(text))), ("Content-Type", "application/octet-stream"))
    )


def routes(backend: Backend) -> list[Route]:
    """The Open Inference Protocol's REST routes over ``backend``."""

    def route(
        pattern: str, fn: Callable[..., Reply | Steps[Reply]], in_pool: bool = False, steps: bool = False
    ) -> Route:
        return Route(re.compile(pattern), functools.partial(fn, backend=backend), in_pool, steps)

    return [
        route(r"/v2/?", _server),
        route(r"/v2/health/live", _live),
        route(r"/v2/health/ready", _ready),
        route(_MODEL + r"/?", _metadata, in_pool=True),
        route(_MODEL + r"/ready", _model_ready),
        route(_MODEL + r"/infer", _infer, in_pool=True, steps=True),
    ]
