"""What mnistkit reads of the kubernetes client's model objects (V1Pod, V1Service, V1Deployment...).

The client types ``metadata`` and everything in it as optional; the API server always sets them on the
objects it returns, so these read them with a plain default instead of a ``None`` check at every use.
A call with ``_preload_content=False`` returns the raw urllib3 response, whatever its signature says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from kubernetes.client import V1ObjectMeta
    from urllib3 import BaseHTTPResponse

__all__ = ["Named", "name_of", "labels_of", "annotations_of", "raw", "drain"]


class Named(Protocol):
    """A kubernetes model object: it has ``metadata``."""

    @property
    def metadata(self) -> V1ObjectMeta | None: ...


def name_of(obj: Named) -> str:
    return str(obj.metadata.name or "") if obj.metadata is not None else ""


def labels_of(obj: Named) -> dict[str, str]:
    return dict(obj.metadata.labels or {}) if obj.metadata is not None else {}


def annotations_of(obj: Named) -> dict[str, str]:
    return dict(obj.metadata.annotations or {}) if obj.metadata is not None else {}


def raw(resp: object) -> BaseHTTPResponse:
    """What a ``_preload_content=False`` call returns: the urllib3 response (the client's signatures name the
    model it would have parsed)."""
    return cast("BaseHTTPResponse", resp)


def drain(resp: object) -> None:
    """Read and drop a raw response (a Secret's body included): a half-read one would poison the pool."""
    _ = raw(resp).data
    raw(resp).release_conn()
