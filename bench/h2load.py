"""Concurrent clients in C: nghttp2's ``h2load`` (Debian ``nghttp2-client``) as the load generator.

16 Python client threads on the serving machine spend 0.3–0.5 ms of CPU per request, as much as a third
of what the server spends, and on 2 cores they take that CPU from the server: the throughput they measure
is partly theirs. ``h2load`` sends the same requests from C (HTTP/2 for gRPC, HTTP/1.1 keep-alive for
REST) for a few microseconds each, so side-by-side ratios measure the servers, as Triton's
``perf_analyzer`` does. The request bodies are fixed bytes (a framed ``PredictRequest``, a JSON
``instances`` body); ``bodies`` checks each against the server with the stock Python stack first, and a
run counts an answer as good only if it carries the full response: gRPC answers errors with HTTP 200 and
no message, so a gRPC run compares the response bytes received with what that many good answers hold.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Bodies", "Run", "available", "bodies", "run"]

_PREDICT = "/tensorflow.serving.PredictionService/Predict"


def available() -> str | None:
    """The ``h2load`` executable, or None (``apt-get install nghttp2-client``)."""
    return shutil.which("h2load")


@dataclass(frozen=True)
class Bodies:
    """The fixed request bodies, and the size of one good gRPC answer's data (frame prefix included)."""

    grpc: bytes
    rest: bytes
    grpc_answer_bytes: int


def bodies(image: Any, grpc_port: int, rest_port: int) -> Bodies:
    """Batch-1 ``Predict`` bodies for ``image``, each answered once by the server at these ports (a wrong
    body raises here rather than measuring errors)."""
    import urllib.request

    import grpc
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    from mnistkit.serving.tensors import fill_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    fill_proto(request.inputs["x"], np.asarray(image, dtype=np.float32), content=True)  # as ModelClient sends it
    message = request.SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        raw = channel.unary_unary(_PREDICT)(message, timeout=30)  # bytes in, bytes out: no (de)serializers
    answer = predict_pb2.PredictResponse.FromString(raw)
    if "predictions" not in answer.outputs:
        raise RuntimeError(f"the gRPC body got no predictions: {answer}")
    rest = json.dumps({"instances": image.tolist()}).encode()
    post = urllib.request.Request(
        f"http://127.0.0.1:{rest_port}/v1/models/mnist:predict", rest, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=30) as reply:
        if "predictions" not in json.loads(reply.read()):
            raise RuntimeError("the REST body got no predictions")
    return Bodies(b"\0" + struct.pack(">I", len(message)) + message, rest, 5 + len(raw))


@dataclass(frozen=True)
class Run:
    """One ``h2load`` run: requests/s, latencies (ms) of the good answers, and the failed ones."""

    rps: float
    latencies_ms: list[float]
    errors: int


def run(port: int, protocol: str, clients: int, requests: int, body: Bodies) -> Run:
    """``requests`` batch-1 predictions from ``clients`` connections, one request in flight on each."""
    exe = available()
    if exe is None:
        raise RuntimeError("h2load is not installed (apt-get install nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "log.tsv"
        if protocol == "grpc":
            data.write_bytes(body.grpc)
            url = f"http://127.0.0.1:{port}{_PREDICT}"
            extra = ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        else:
            data.write_bytes(body.rest)
            url = f"http://127.0.0.1:{port}/v1/models/mnist:predict"
            extra = ["--h1", "-H", "content-type: application/json"]
        out = subprocess.run(
            [
                exe,
                "-c",
                str(clients),
                "-m",
                "1",
                "-n",
                str(requests),
                "-d",
                str(data),
                f"--log-file={log}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    rps = float(_field(out, r"finished in [0-9.]+m?s, ([0-9.]+) req/s"))
    good = [r for r in rows if r[1].startswith("2")]
    errors = requests - len(good)
    if protocol == "grpc":  # an error is HTTP 200 without the response message: count the missing answers
        received = int(_field(out, r"\(([0-9]+)\) data"))
        errors = max(errors, round((requests * body.grpc_answer_bytes - received) / body.grpc_answer_bytes))
    return Run(rps, [int(r[2]) / 1000 for r in good], errors)


def _field(text: str, pattern: str) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"h2load printed no {pattern!r}:\n{text[-2000:]}")
    return next(g for g in m.groups() if g is not None)
