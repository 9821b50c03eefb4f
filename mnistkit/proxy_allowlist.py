"""Which hosts the notebook image's jupyter-server-proxy may proxy to: loopback, and the user's own jobs.

A page served through the proxy runs at the notebook's origin, so its script can drive the user's Jupyter
API (run code, read files). Admitting any ``*.svc.cluster.local`` host let any in-cluster Service's page do
that. Only these are admitted: ``localhost``/``127.0.0.1`` (the local TensorBoard) and the TensorBoard
(``<job>-tb``) and serving (``<job>-serving``) Services of mnistkit jobs in the user's own namespace (read
from the pod's service account, or ``MNISTKIT_NAMESPACE``).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

__all__ = ["allowed_host", "host_allowlist", "user_namespace"]

_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


@lru_cache(maxsize=1)
def user_namespace() -> str:
    from mnistkit.cluster.identity import pod_namespace

    ns = os.environ.get("MNISTKIT_NAMESPACE", "") or pod_namespace()
    return ns if re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", ns) else ""


def allowed_host(host: str, namespace: str) -> bool:
    """Whether the proxy may reach ``host`` (a host name, with or without ``:port``) for ``namespace``."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower()
    if name in _LOOPBACK:
        return True
    if not namespace:
        return False
    pattern = rf"[a-z0-9]([-a-z0-9]*[a-z0-9])?-(tb|serving)\.{re.escape(namespace)}\.svc(\.cluster\.local)?"
    return re.fullmatch(pattern, name) is not None


def host_allowlist(handler: object, host: str) -> bool:
    """``c.ServerProxy.host_allowlist`` for the notebook image (jupyter-server-proxy calls it per request)."""
    return allowed_host(host, user_namespace())
