"""Request status codes as TF Serving uses them, and the error a request fails with.

TF Serving answers gRPC with canonical status codes and maps them to HTTP for REST (``http_server.cc``
``ToHTTPStatusCode``). Keeping one table here means the gRPC and REST front ends, and the client, agree
on what "invalid argument" or "not found" is.
"""

from __future__ import annotations

from mnistkit.errors import ServingError

__all__ = ["HTTP_STATUS", "RequestError", "http_status"]

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


def http_status(code: str) -> int:
    """The HTTP status TF Serving's REST API answers for canonical ``code`` (500 for unknown codes)."""
    return HTTP_STATUS.get(code, 500)


class RequestError(ServingError):
    """A request that cannot be answered; ``code`` is the canonical status name (``INVALID_ARGUMENT``...).

    Raised by the server core (and turned into a gRPC status or an HTTP error there) and by the client
    when the server answers with an error.
    """

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT", *, field: str | None = None, value: object = None) -> None:
        super().__init__(message, field=field, value=value)
        self.code = code

    @property
    def http_status(self) -> int:
        return http_status(self.code)
