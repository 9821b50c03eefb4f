"""The HTTP plumbing every REST front end shares: Tornado's HTTP/1.1 server on its own event loop thread.

Tornado (a dependency of Jupyter, so already in every environment mnistkit runs in) parses requests and
does the framing, keep-alive and the idle and body timeouts. On top of its ``HTTPServer`` sits one small
message delegate rather than ``tornado.web`` (whose per-request machinery cost +0.5 ms at batch 1): it
refuses, from the headers alone and before a byte of the body is read, a ``Content-Length`` that is not
one ASCII decimal within the limit, any ``Transfer-Encoding``, and a body on a GET, answering and closing
the connection so an attacker's body is never read. Then it routes the request to a front end's handler;
a handler that runs the model (``Route.in_pool``) runs on ``Backend.pool``, never on the event loop. With
batching on, a small POST to a handler written as steps (``Route.steps``: it yields its ``ModelCall``)
is parsed and checked on the loop and queued for a batch; its answer is built where the batch ran and
handed back to the loop, so no pool thread waits for the batch. Why Tornado rather than aiohttp or
uvicorn: docs/serving.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import tornado.http1connection
import tornado.httpserver
import tornado.httputil
import tornado.netutil

from mnistkit.serving.backend import Backend, ModelCall, Outputs, Steps, resume
from mnistkit.serving.status import RequestError

if TYPE_CHECKING:
    from asyncio import Future
    from collections.abc import Awaitable

    from mnistkit._types import JsonValue

__all__ = [
    "BODY_SECONDS",
    "IDLE_SECONDS",
    "HttpFrontEnd",
    "HttpRequest",
    "Reply",
    "Route",
    "framing_problem",
    "json_reply",
]

log = logging.getLogger("mnistkit.serving.rest")
T = TypeVar("T")

IDLE_SECONDS = 120.0  # a kept-alive connection with no request for this long is closed
BODY_SECONDS = 60.0  # a body that takes longer than this to arrive is dropped
INLINE_BYTES = 64 * 1024  # with batching, POST bodies up to this size are parsed on the loop (tens of us)
_DECIMAL = re.compile(r"[0-9]{1,15}", re.ASCII)
_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class HttpRequest:
    """What a handler sees: method, path (no query), headers and the whole body."""

    method: str
    path: str
    headers: tornado.httputil.HTTPHeaders
    body: bytes


@dataclass(frozen=True)
class Reply:
    """A handler's answer: status, JSON body (already encoded) and extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


def json_reply(
    status: int, payload: JsonValue, headers: tuple[tuple[str, str], ...] = (), close: bool = False
) -> Reply:
    return Reply(status, json.dumps(payload, allow_nan=True).encode(), headers, close)


def error_reply(exc: RequestError) -> Reply:
    return json_reply(exc.http_status, {"error": str(exc)})


Handler = Callable[[HttpRequest, "re.Match[str]"], "Reply | Steps[Reply]"]


@dataclass(frozen=True)
class Route:
    """A path pattern (matched in full) and its handler; ``in_pool``: the handler runs on the prediction pool;
    ``steps``: its POSTs are steps (``Backend.complete``) that may run around a batch (module docstring)."""

    pattern: re.Pattern[str]
    handler: Handler
    in_pool: bool = False
    steps: bool = False


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return {499: "Client Closed Request"}.get(status, "Error")


def framing_problem(method: str, headers: tornado.httputil.HTTPHeaders, max_bytes: int) -> tuple[int, str] | None:
    """Why a request's framing is refused (HTTP status, message), from its headers alone; None if it is fine."""
    if method not in _METHODS:
        return 405, f"method {method[:20]} is not allowed; use GET or POST"
    if "Transfer-Encoding" in headers:
        return 411, "Transfer-Encoding is not supported; send the body with a Content-Length"
    lengths = headers.get_list("Content-Length")
    if len(lengths) > 1 or any("," in v for v in lengths):
        return 400, "more than one Content-Length"
    if lengths and _DECIMAL.fullmatch(lengths[0].strip()) is None:
        return 400, f"Content-Length must be a decimal number of bytes, got {lengths[0][:30]!r}"
    length = int(lengths[0]) if lengths else 0
    if method == "GET" and length:
        return 400, "a GET request has no body"
    if method == "POST" and not lengths:
        return 411, "send the request body with a Content-Length"
    if length > max_bytes:
        return 413, f"request body of {length} bytes exceeds the limit of {max_bytes}"
    return None


class _Exchange(tornado.httputil.HTTPMessageDelegate):
    """One request and its answer on a connection."""

    def __init__(self, app: _App, conn: tornado.httputil.HTTPConnection) -> None:
        self._app = app
        self._conn = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._method = ""
        self._path = ""
        self._headers = tornado.httputil.HTTPHeaders()
        self._closed = False
        self._answered = False

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, tornado.httputil.RequestStartLine)
        self._method, self._path, self._headers = start_line.method, start_line.path.split("?", 1)[0], headers
        problem = framing_problem(self._method, headers, self._app.max_bytes)
        if problem is None:
            return None
        status, message = problem
        # Answer, then drop the connection: its body (if any) is never read. Tornado awaits this before the body.
        return self._refuse(json_reply(status, {"error": message}, close=True))

    async def _refuse(self, reply: Reply) -> None:
        done = self._send(reply)
        if done is not None:
            try:
                await done
            except Exception:  # noqa: BLE001 - the client went away: nothing to answer
                pass
        if isinstance(self._conn, tornado.http1connection.HTTP1Connection):
            self._conn.close()

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self._app.max_bytes:  # the Content-Length was checked; Tornado reads no more than it says
            self._chunks.append(chunk)

    def finish(self) -> None:
        if self._answered:
            return
        request = HttpRequest(self._method, self._path, self._headers, b"".join(self._chunks))
        self._chunks = []
        route, match = self._app.route(request.path)
        if route is None or match is None:
            self._send(json_reply(404, {"error": f"Malformed request: {request.method} {request.path[:200]}"}))
        elif (
            route.steps
            and request.method == "POST"
            and self._app.backend.enqueue is not None
            and len(request.body) <= INLINE_BYTES
        ):
            self._run_steps(route, request, match)
        elif route.in_pool:
            future = self._app.backend.submit(self._call_and_send, route, request, match)
            future.add_done_callback(self._if_cancelled)
        else:
            self._send(self._app.call(route, request, match))

    def _run_steps(self, route: Route, request: HttpRequest, match: re.Match[str]) -> None:
        """On the loop: the handler's checks, then its model call queued; the rest runs where the batch ran."""
        app = self._app

        def begin() -> tuple[Steps[Reply], ModelCall] | Reply:
            steps = route.handler(request, match)
            if isinstance(steps, Reply):
                return steps
            try:
                return steps, next(steps)
            except StopIteration as stop:  # answered without the model
                return stop.value

        started = app.guard(request, begin)
        if isinstance(started, Reply):
            self._send(started)
            return
        steps, call = started

        def done(outputs: Outputs | None, error: BaseException | None) -> None:
            answer = app.guard(request, lambda: app.resume(steps, outputs, error))
            try:
                app.loop.call_soon_threadsafe(self._send, answer)
            except RuntimeError:  # the loop is closed: the server stopped
                pass

        try:
            app.backend.run_later(call, done)
        except RequestError as exc:  # the batch queue is full, or the server is stopping
            self._send(error_reply(exc))

    def _call_and_send(self, route: Route, request: HttpRequest, match: re.Match[str]) -> None:
        """On the pool: run the handler, and hand its reply to the event loop to send."""
        reply = self._app.call(route, request, match)
        self._app.loop.call_soon_threadsafe(self._send, reply)

    def _if_cancelled(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():  # the server is stopping: the pool dropped the request
            self._app.loop.call_soon_threadsafe(
                self._send, json_reply(503, {"error": "the server is stopping"}, close=True)
            )

    def _send(self, reply: Reply) -> Future[None] | None:
        if self._closed or self._answered:
            return None
        self._answered = True
        headers = tornado.httputil.HTTPHeaders(
            {"Content-Type": "application/json", "Content-Length": str(len(reply.body)), "Server": "mnistkit-serving"}
        )
        for k, v in reply.headers:
            headers[k] = v
        if reply.close:
            headers["Connection"] = "close"
        log.debug("%s %s -> %d", self._method, self._path[:200], reply.status)
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", reply.status, _reason(reply.status))
        done = self._conn.write_headers(start, headers, reply.body)
        self._conn.finish()
        return done

    def on_connection_close(self) -> None:
        self._closed = True


class _App(tornado.httputil.HTTPServerConnectionDelegate):
    def __init__(
        self, routes: Sequence[Route], backend: Backend, max_bytes: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.routes = list(routes)
        self.backend = backend
        self.max_bytes = max_bytes
        self.loop = loop

    def start_request(self, server_conn: object, request_conn: tornado.httputil.HTTPConnection) -> _Exchange:
        return _Exchange(self, request_conn)

    def route(self, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match
        return None, None

    def call(self, route: Route, request: HttpRequest, match: re.Match[str]) -> Reply:
        """Run a handler (its steps too, model included) in this thread."""

        def answer() -> Reply:
            reply = route.handler(request, match)
            return reply if isinstance(reply, Reply) else self.backend.complete(reply)

        return self.guard(request, answer)

    @staticmethod
    def resume(steps: Steps[Reply], outputs: Outputs | None, error: BaseException | None) -> Reply:
        """A handler's steps after its model call: its answer from ``outputs`` (or the call's ``error``)."""
        if error is not None:
            raise error
        assert outputs is not None
        return resume(steps, outputs)

    @staticmethod
    def guard(request: HttpRequest, fn: Callable[[], T]) -> T | Reply:
        """``fn()``: a ``RequestError`` is its status; anything else a 500 (logged, never with the body)."""
        try:
            return fn()
        except RequestError as exc:
            return error_reply(exc)
        except Exception:
            log.exception("internal error answering %s %s", request.method, request.path[:200])
            return json_reply(500, {"error": "internal server error; see the server log"}, close=True)


class HttpFrontEnd:
    """Tornado's ``HTTPServer`` for ``routes`` on ``host:port``, its event loop in a daemon thread.

    The socket is bound in the constructor, so a port in use is an ``OSError`` there.
    """

    def __init__(self, routes: Sequence[Route], backend: Backend, host: str, port: int, max_bytes: int) -> None:
        self._sockets = tornado.netutil.bind_sockets(
            port, address=host or None, backlog=128, family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
        self.port = int(self._sockets[0].getsockname()[1])
        self._routes = list(routes)
        self._backend = backend
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
            _App(self._routes, self._backend, self._max_bytes, loop),
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
        except Exception:
            log.exception("stopping the REST server")
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = self._server = None
