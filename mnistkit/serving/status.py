"""Request status codes, the one table every front end and the client use, and the error a request fails with.

TF Serving answers gRPC with canonical status codes and maps them to HTTP for REST (``http_server.cc``
``ToHTTPStatusCode``). The gRPC front ends abort with the canonical code by name, the REST front ends
(TF Serving's ``/v1`` and the Open Inference Protocol's ``/v2``) answer ``http_status(code)``, and the
client turns an HTTP status back into a code with ``code_for_http``: one table, so they all agree on what
"invalid argument" or "not found" is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from mnistkit.errors import ServingError

if TYPE_CHECKING:
    import grpc

__all__ = ["HTTP_STATUS", "RequestError", "http_status", "code_for_http", "grpc_abort"]

# TF Serving's canonical-code -> HTTP mapping.
HTTP_STATUS: dict[str, int] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 412,
    "ABORTED": 499,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
# HTTP -> code for the statuses several codes share, and for HTTP's own framing errors (411, 413).
_CODE_FOR_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    411: "INVALID_ARGUMENT",
    413: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
}


def http_status(code: str) -> int:
    """The HTTP status TF Serving's REST API answers for canonical ``code`` (500 for unknown codes)."""
    return HTTP_STATUS.get(code, 500)


def code_for_http(status: int) -> str:
    """The canonical code for an HTTP error status (what a REST client reports)."""
    if status in _CODE_FOR_HTTP:
        return _CODE_FOR_HTTP[status]
    for code, http in HTTP_STATUS.items():
        if http == status:
            return code
    return "UNKNOWN" if status >= 500 else "INVALID_ARGUMENT"


def grpc_abort(context: grpc.ServicerContext, exc: RequestError) -> NoReturn:
    """End a gRPC call with ``exc``'s canonical code and message (``context.abort`` raises)."""
    import grpc

    context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), str(exc))
    raise AssertionError("unreachable: abort raises")


class RequestError(ServingError):
    """A request that cannot be answered; ``code`` is the canonical status name (``INVALID_ARGUMENT``...).

    Raised by the server core (and turned into a gRPC status or an HTTP error there) and by the client
    when the server answers with an error.
    """

    def __init__(
        self, message: str, code: str = "INVALID_ARGUMENT", *, field: str | None = None, value: object = None
    ) -> None:
        super().__init__(message, field=field, value=value)
        self.code = code

    @property
    def http_status(self) -> int:
        return http_status(self.code)
