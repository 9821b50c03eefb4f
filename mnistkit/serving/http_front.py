"""The HTTP plumbing every REST front end shares: Tornado's HTTP/1.1 server on its own event loop thread.

Tornado (a dependency of Jupyter, so already in every environment mnistkit runs in) does the framing,
keep-alive and the idle and body timeouts; ``JsonHandler`` adds what a model server needs on top, before
a byte of the body is read: a ``Content-Length`` that is one ASCII decimal number within the limit, no
``Transfer-Encoding``, no body on a GET. A refused request is answered and its connection closed, so an
attacker's body is never read. Handlers run the model on ``Backend.pool``, never on the event loop.
Why Tornado rather than aiohttp or uvicorn: docs/serving.md.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.http1connection
import tornado.httpserver
import tornado.netutil
import tornado.web

from mnistkit.serving.backend import Backend
from mnistkit.serving.status import RequestError

__all__ = ["JsonHandler", "NotFoundHandler", "HttpFrontEnd", "IDLE_SECONDS", "BODY_SECONDS", "log_request"]

log = logging.getLogger("mnistkit.serving.rest")

T = TypeVar("T")
IDLE_SECONDS = 120.0  # a kept-alive connection with no request for this long is closed
BODY_SECONDS = 60.0  # a body that takes longer than this to arrive is dropped
_DECIMAL = re.compile(r"[0-9]{1,15}", re.ASCII)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return {499: "Client Closed Request"}.get(status, "Error")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, at debug level and without bodies (Tornado logs 4xx as warnings)."""
    log.debug("%s %s -> %d", handler.request.method, handler.request.path[:200], handler.get_status())


def framing_problem(request: Any, max_bytes: int) -> tuple[int, str] | None:
    """Why a request's framing is refused (HTTP status, message), from its headers alone; None if it is fine."""
    headers = request.headers
    if "Transfer-Encoding" in headers:
        return 411, "Transfer-Encoding is not supported; send the body with a Content-Length"
    lengths = headers.get_list("Content-Length")
    if len(lengths) > 1 or any("," in v for v in lengths):
        return 400, "more than one Content-Length"
    if lengths and _DECIMAL.fullmatch(lengths[0].strip()) is None:
        return 400, f"Content-Length must be a decimal number of bytes, got {lengths[0][:30]!r}"
    length = int(lengths[0]) if lengths else 0
    if request.method in ("GET", "HEAD") and length:
        return 400, f"a {request.method} request has no body"
    if request.method == "POST" and not lengths:
        return 411, "send the request body with a Content-Length"
    if length > max_bytes:
        return 413, f"request body of {length} bytes exceeds the limit of {max_bytes}"
    return None


@tornado.web.stream_request_body
class JsonHandler(tornado.web.RequestHandler):
    """JSON answers, ``{"error": ...}`` errors, framing checks before the body, and the model off the loop."""

    SUPPORTED_METHODS = ("GET", "POST")
    backend: Backend
    max_bytes: int

    def initialize(self, backend: Backend, max_bytes: int) -> None:
        self.backend = backend
        self.max_bytes = max_bytes
        self._chunks: list[bytes] = []
        self._size = 0

    def set_default_headers(self) -> None:
        self.set_header("Server", "mnistkit-serving")
        self.set_header("Content-Type", "application/json")

    def compute_etag(self) -> str | None:
        return None  # predictions are not cached: skip hashing every answer

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return  # answered with its status; no traceback for a client's mistake
        log.error("internal error answering %s %s", self.request.method, self.request.path[:200],
                  exc_info=(typ, value, tb))

    async def prepare(self) -> None:
        problem = framing_problem(self.request, self.max_bytes)
        if problem is not None:
            status, message = problem
            self.set_header("Connection", "close")
            await self.answer(status, {"error": message})
            # The body (if any) stays unread: drop the connection rather than read it.
            if isinstance(self.request.connection, tornado.http1connection.HTTP1Connection):
                self.request.connection.close()

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.max_bytes:  # the Content-Length said otherwise; Tornado's own limit stops it too
            raise tornado.web.HTTPError(413)
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)

    def answer(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> Any:
        """Send ``payload`` (a dict, or JSON already encoded) with ``status``; returns Tornado's finish future."""
        self.set_status(status, _reason(status))
        for k, v in (headers or {}).items():
            self.set_header(k, v)
        body = payload if isinstance(payload, bytes) else json.dumps(payload, allow_nan=True).encode()
        return self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = "internal server error; see the server log" if status_code >= 500 else _reason(status_code)
        self.finish(json.dumps({"error": message}))

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the backend's prediction pool (not on the event loop) and wait for it."""
        return await asyncio.wrap_future(self.backend.submit(fn, *args))

    async def guarded(self, coro: Any) -> None:
        """Await a handler body: a ``RequestError`` is answered with its status; anything else is a 500."""
        try:
            await coro
        except RequestError as exc:
            if not self._finished:
                await self.answer(exc.http_status, {"error": str(exc)})
        except Exception:
            log.exception("internal error answering %s %s", self.request.method, self.request.path[:200])
            if not self._finished:
                self.set_header("Connection", "close")
                await self.answer(500, {"error": "internal server error; see the server log"})


class NotFoundHandler(JsonHandler):
    """Every path no front end claims: TF Serving's "Malformed request" 404, as JSON."""

    async def get(self, *_args: str) -> None:
        await self.answer(404, {"error": f"Malformed request: {self.request.method} {self.request.path[:200]}"})

    post = get


class HttpFrontEnd:
    """A Tornado ``HTTPServer`` for ``app`` on ``host:port``, its event loop in a daemon thread.

    The socket is bound in the constructor, so a port in use is an ``OSError`` there.
    """

    def __init__(self, app: tornado.web.Application, host: str, port: int, max_bytes: int) -> None:
        self._sockets = tornado.netutil.bind_sockets(port, address=host or None, backlog=128,
                                                     family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.port = int(self._sockets[0].getsockname()[1])
        self._app = app
        self._max_bytes = max_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mnistkit-rest", daemon=True)

    def start(self) -> HttpFrontEnd:
        self._thread.start()
        self._ready.wait(30)
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._server = tornado.httpserver.HTTPServer(
            self._app,
            idle_connection_timeout=IDLE_SECONDS,
            body_timeout=BODY_SECONDS,
            max_body_size=self._max_bytes,
            max_header_size=64 * 1024,
        )
        self._server.add_sockets(self._sockets)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop listening, drop every connection (kept-alive ones too), end the loop thread."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            for s in self._sockets:
                s.close()
            return

        async def shutdown() -> None:
            server.stop()
            try:
                await asyncio.wait_for(server.close_all_connections(), 5)
            except asyncio.TimeoutError:
                log.warning("REST connections did not close within 5 s")

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        except Exception:  # noqa: BLE001 - stopping anyway: logged, and the loop is ended below
            log.exception("stopping the REST server")
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = self._server = None
