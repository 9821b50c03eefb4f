"""Who is working and where: the notebook's user and Kubernetes namespace, read from its surroundings.

The one place that reads them (the service account's namespace file, ``JUPYTERHUB_USER``, ``$USER``), so
the manifests stay pure functions of their parameters: the CLI, the engines, the panels and notebooks read
these here and pass the values in (``ManifestParams(namespace=..., job_name=default_job_name())``).
Light at import: no ``kubernetes``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets as _secrets
from collections.abc import Mapping
from pathlib import Path

from mnistkit.config import validate_job_name

__all__ = ["NAMESPACE_FILE", "pod_namespace", "current_user", "default_job_name"]

# A pod's own namespace (a Kubeflow profile's, in a Kubeflow notebook), written by Kubernetes.
NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def pod_namespace(namespace_file: str | os.PathLike[str] | None = None) -> str:
    """The namespace this pod runs in (``NAMESPACE_FILE``), or "" outside a cluster."""
    try:
        return Path(namespace_file or NAMESPACE_FILE).read_text().strip()
    except OSError:
        return ""


def current_user(env: Mapping[str, str] | None = None, namespace_file: str | os.PathLike[str] | None = None) -> str:
    """Who is submitting: ``JUPYTERHUB_USER`` in a hub, else the pod's namespace (a Kubeflow profile), else $USER."""
    env = os.environ if env is None else env
    user = env.get("JUPYTERHUB_USER", "") or pod_namespace(namespace_file)
    return user or env.get("USER", "") or "user"


_LABEL_RE = re.compile(r"[^a-z0-9-]+")


def _label(text: str, max_len: int) -> str:
    """``"Jane.Doe@Example.com"`` -> ``"jane-doe-example-com"``: a DNS-1123 fragment of at most ``max_len``."""
    out = _LABEL_RE.sub("-", text.lower()).strip("-")
    return out[:max_len].strip("-") or "user"


def default_job_name(user: str | None = None, now: _dt.datetime | None = None, *, prefix: str = "mnist") -> str:
    """``<prefix>-<user>-<yyyymmdd-hhmmss>-<4 random>``: unique per user and second, so two hub users never collide.

    The one job-name scheme of mnistkit: the local engine, the panels and the cluster path all use it.
    ``user`` defaults to ``current_user()``.
    """
    who = _label(user if user is not None else current_user(), 25)
    stamp = (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")
    suffix = "".join(_secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    return validate_job_name(f"{_label(prefix, 12)}-{who}-{stamp}-{suffix}")
