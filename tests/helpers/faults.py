"""Fault-injection helpers for the reliability tests: a misbehaving S3 proxy, canary search, a tiny SavedModel.

Why a proxy rather than mocks: the retries, checksums and multipart clean-up under test live in boto3 and
urllib3, below any function we could patch. A real HTTP hop that answers ``503 SlowDown``, drops the
connection or flips a byte exercises exactly the code a flaky MinIO or a bad NIC would.
"""

from __future__ import annotations

import http.client
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mnistkit.config import S3Config

__all__ = [
    "FaultProxy",
    "ProxyStats",
    "find_canary",
    "export_small_saved_model",
    "cached_small_saved_model",
    "SLOWDOWN_XML",
]

SLOWDOWN_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>"
)
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones we recompute: never forwarded as they are.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
        "content-length", "expect"}


@dataclass
class ProxyStats:
    """What the proxy saw: every request, and which ones it broke on purpose."""

    requests: int = 0
    slowdowns: int = 0
    drops: int = 0
    corruptions: int = 0
    lost_responses: int = 0

    @property
    def faults(self) -> int:
        return self.slowdowns + self.drops + self.lost_responses

    def attempts_per_call(self) -> float:
        """Requests per logical call that got through: 1.0 means no retries were needed."""
        ok = self.requests - self.faults
        return self.requests / ok if ok else float("inf")


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of an S3 endpoint that misbehaves on purpose.

    ``fault_rate`` of requests (seeded, so a failing run repeats) get either a ``503 SlowDown`` XML answer
    or a connection closed without any answer. ``lose_response_rate`` of requests reach the store but
    their answer is dropped (the store did the work; the client retries it). ``corrupt_rate`` of successful GETs with a body get one
    byte flipped (the status and headers, ETag included, stay intact, as when a middlebox corrupts data).
    ``paused`` pauses all faults (to set up fixtures through the same endpoint). ``answer_delay(command, path)``
    holds an answer that many seconds after the store acted on the request (a window to act in, without races).
    """

    def __init__(
        self,
        upstream: str,
        *,
        fault_rate: float = 0.2,
        corrupt_rate: float = 0.0,
        seed: int = 0,
        corrupt_if: Callable[[str], bool] | None = None,
        lose_response_rate: float = 0.0,
        answer_delay: Callable[[str, str], float] | None = None,
    ) -> None:
        parsed = urlparse(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.fault_rate, self.corrupt_rate = fault_rate, corrupt_rate
        self.lose_response_rate = lose_response_rate
        self.corrupt_if = corrupt_if or (lambda path: True)
        self.answer_delay = answer_delay or (lambda command, path: 0.0)
        self.rng = random.Random(seed)
        self.stats = ProxyStats()
        self.paused = False
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def config(self, base: S3Config) -> S3Config:
        """``base`` pointed at the proxy instead of the real endpoint."""
        return replace(base, endpoint="", endpoint_url=self.url)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- decisions (under a lock: the rng and counters are shared by handler threads) ---------------------------

    def _decide(self) -> str:
        with self._lock:
            self.stats.requests += 1
            if self.paused:
                return "pass"
            r = self.rng.random()
            if r < self.fault_rate / 2:
                self.stats.slowdowns += 1
                return "slowdown"
            if r < self.fault_rate:
                self.stats.drops += 1
                return "drop"
            if r < self.fault_rate + self.lose_response_rate:
                self.stats.lost_responses += 1
                return "lose"
            return "pass"

    def _maybe_corrupt(self, method: str, path: str, status: int, body: bytes) -> bytes:
        if method != "GET" or status not in (200, 206) or not body or not self.corrupt_if(path):
            return body
        with self._lock:
            if self.paused or self.rng.random() >= self.corrupt_rate:
                return body
            self.stats.corruptions += 1
            i = self.rng.randrange(len(body))
        return body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as real S3 endpoints: a drop then hits a reused connection

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: a test prints figures, not access logs

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self) -> None:
        try:
            self._proxy()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (killed on purpose): nothing to answer

    def _hang_up(self) -> None:
        """Close the connection without an answer: what the client sees of a dropped or lost reply."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _proxy(self) -> None:
        body = self._read_body()
        action = self.owner._decide()
        if action == "drop":
            # No answer at all: the client sees the connection closed under it.
            self._hang_up()
            return
        if action == "slowdown":
            self.send_response(503, "Slow Down")
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOWDOWN_XML)))
            self.end_headers()
            self.wfile.write(SLOWDOWN_XML)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        conn = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
        finally:
            conn.close()
        time.sleep(self.owner.answer_delay(self.command, self.path))
        if action == "lose":
            # The store acted on the request, but the answer never arrives: the retry repeats a done deed.
            self._hang_up()
            return
        data = self.owner._maybe_corrupt(self.command, self.path, status, data)
        self.send_response(status, reason)
        length_sent = False
        for k, v in resp_headers:
            if k.lower() == "content-length" and self.command == "HEAD":
                length_sent = True  # HEAD announces the object's size, not this (empty) body's
            elif k.lower() in _HOP:
                continue
            self.send_header(k, v)
        if not length_sent:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - stdlib naming


def find_canary(paths_or_texts: Iterable[str | os.PathLike[str]], canary: str) -> list[str]:
    """Where ``canary`` occurs: ``"<path>"`` for each file (walking directories) or ``"text[<i>]"`` for a string.

    Files are read as bytes, so binary files (TensorBoard events, checkpoints) are searched too. The
    notebook tests reuse this on executed notebooks and papermill logs.
    """
    needle = canary.encode()
    found: list[str] = []
    for i, item in enumerate(paths_or_texts):
        # A str is a path when it names something that exists (a log text never does); else it is text.
        if isinstance(item, str) and ("\n" in item or len(item) > 4096 or not os.path.exists(item)):
            if canary in item:
                found.append(f"text[{i}]")
            continue
        p = Path(item)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for f in files:
            try:
                if needle in f.read_bytes():
                    found.append(str(f))
            except OSError:
                continue
    return found


def export_small_saved_model(path: str | os.PathLike[str]) -> Path:
    """An untrained ``small`` model exported with the serving contract (a real SavedModel, ~100 KB)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from trainer.export import export_saved_model
    from trainer.model import build_model

    return export_saved_model(build_model("small"), path)


_CACHED_MODEL: Path | None = None


def cached_small_saved_model() -> Path:
    """One exported SavedModel per test process (exporting costs seconds of TF tracing); treat it as read-only."""
    global _CACHED_MODEL
    if _CACHED_MODEL is None or not (_CACHED_MODEL / "saved_model.pb").is_file():
        import atexit
        import shutil
        import tempfile

        root = tempfile.mkdtemp(prefix="mnistkit-faults-")
        atexit.register(shutil.rmtree, root, True)
        _CACHED_MODEL = export_small_saved_model(Path(root) / "model")
    return _CACHED_MODEL
