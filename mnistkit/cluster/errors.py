"""What the Kubernetes client raises, said as one sentence that names the server or object and what to do.

The ``kubernetes`` client raises ``ApiException`` for an answer it did not like and urllib3's
``MaxRetryError`` (or a plain ``OSError``) when the API server cannot be reached; printed raw, either is
a page of traceback. ``explain`` turns both into a ``ClusterError``; ``explained`` does it for a block.
Neither imports ``kubernetes`` until an error is being explained.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mnistkit.errors import ClusterError

if TYPE_CHECKING:
    from kubernetes.client.exceptions import ApiException

__all__ = ["explain", "explained", "is_unreachable", "unknown_resource"]

_HOW_TO_REACH = (
    "check that the cluster is up and that your kubeconfig (KUBECONFIG, --kubeconfig, --context) "
    "points at it, e.g. with `kubectl cluster-info`"
)


def is_unreachable(exc: BaseException) -> bool:
    """A connection that failed (refused, reset, timed out, DNS), as opposed to an answer from the server."""
    import urllib3

    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, OSError))


def unknown_resource(exc: BaseException) -> bool:
    """A 404 about the resource type (its CRD is not installed), not about one object."""
    return "could not find the requested resource" in str(getattr(exc, "body", "") or "")


# A refused WebSocket upgrade (port-forward): the client raises ApiException(status=0, reason=<this text>).
_HANDSHAKE = re.compile(r"^Handshake status (\d+) (.*?) -\+-\+- .*? -\+-\+- b?'?(.*?)'?$", re.DOTALL)


def _answer(exc: ApiException) -> tuple[int, str, str]:
    """``(status, reason, body)`` of an ``ApiException``, also when it wraps a refused WebSocket handshake."""
    status, reason, body = exc.status, str(exc.reason or ""), str(exc.body or "")
    m = _HANDSHAKE.match(reason) if not status else None
    if m:
        status, reason, body = int(m.group(1)), m.group(2), m.group(3)
    return status, reason, body


def _server_says(status: int, reason: str, body: str) -> str:
    """``403 Forbidden: <the Status message the API server sent>``."""
    try:
        message = json.loads(body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    head = f"{status} {reason}".strip()
    return f"{head}: {message}" if message and message != reason else head


def _unreachable(server: str, action: str) -> ClusterError:
    return ClusterError(
        f"cannot reach the Kubernetes API server {server} while {action}: {_HOW_TO_REACH}", field="server", value=server
    )


def explain(
    exc: BaseException,
    *,
    server: str,
    namespace: str,
    action: str,
    target: str = "",
    field: str = "job_name",
    value: object = None,
) -> ClusterError | None:
    """A ``ClusterError`` for an API failure while ``action`` (e.g. ``"reading workflow 'x'"``); None if ``exc``
    is not one (a bug, which should surface as one).

    ``target`` names the object a 404 means is missing (``"workflow 'x'"``); without it a 404 means the
    resource type or the namespace is missing.
    """
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ClusterError):
        return exc
    if isinstance(exc, ApiException):
        status, reason, body = _answer(exc)
        if not status:
            # no answer at all: kubernetes.stream turns a failed WebSocket connection (refused, reset, DNS) into
            # ApiException(status=0); a refused handshake, which did answer, has its status from _answer
            return _unreachable(server, action)
        says = _server_says(status, reason, body)
        if status == 401:
            text = (
                f"the Kubernetes API server {server} refused your credentials while {action} ({says}): "
                "log in again or refresh the token in your kubeconfig"
            )
        elif status == 403:
            text = (
                f"you are not allowed to do this in namespace {namespace!r} on {server}: {action} was refused "
                f"({says}); ask your admin for the permission, and run `mnistkit doctor` to see what is missing"
            )
        elif status == 404 and target and not unknown_resource(exc):
            text = (
                f"{target} not found in namespace {namespace!r} on {server} ({says}): check the name with "
                "`mnistkit list` and the namespace (-n)"
            )
        elif status == 404:
            text = (
                f"{action} failed: not found in namespace {namespace!r} on {server} ({says}); check that the "
                "namespace exists (-n) and run `mnistkit doctor` to see whether Argo and the training operator "
                "are installed"
            )
        else:
            text = (
                f"the Kubernetes API server {server} answered while {action} ({says}); "
                "try again, and run `mnistkit doctor` if it persists"
            )
        return ClusterError(text, field=field, value=value)
    if is_unreachable(exc):
        return _unreachable(server, action)
    return None


@contextlib.contextmanager
def explained(
    *, server: str, namespace: str, action: str, target: str = "", field: str = "job_name", value: object = None
) -> Iterator[None]:
    """Re-raise an API failure inside the block as ``explain``'s ``ClusterError`` (without the traceback)."""
    try:
        yield
    except ClusterError:
        raise
    except Exception as exc:
        err = explain(exc, server=server, namespace=namespace, action=action, target=target, field=field, value=value)
        if err is None:
            raise
        raise err from None
