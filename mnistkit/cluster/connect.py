"""Reach the cluster: a kubeconfig on a laptop, the pod's service account in a Kubeflow notebook.

A ``$KUBECONFIG`` set in a notebook wins over the pod's service account. The namespace is, in order: the
one asked for, the kubeconfig context's, the pod's own (a Kubeflow profile namespace, from
``/var/run/secrets/kubernetes.io/serviceaccount/namespace``), ``default``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnistkit.cluster.identity import pod_namespace
from mnistkit.errors import ClusterError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration

__all__ = ["Connection", "connect", "in_cluster", "kubeconfig_paths", "pod_namespace", "cluster_status"]

_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@dataclass
class Connection:
    api_client: ApiClient
    namespace: str
    source: str  # "kubeconfig:<context>", "in-cluster" or "configuration"


def in_cluster(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and Path(_TOKEN_FILE).exists()


def kubeconfig_paths(env: dict[str, str] | None = None) -> list[Path]:
    """The kubeconfig files that exist (``$KUBECONFIG``'s list, else ``~/.kube/config``).

    Cheap on purpose: panels ask "is a cluster configured?" when they open, and importing the
    ``kubernetes`` client to find out costs seconds.
    """
    env = dict(os.environ) if env is None else env
    raw = env.get("KUBECONFIG", "")
    candidates = (
        [Path(p).expanduser() for p in raw.split(os.pathsep) if p] if raw else [Path("~/.kube/config").expanduser()]
    )
    return [p for p in candidates if p.is_file()]


def connect(
    namespace: str | None = None,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    configuration: Configuration | None = None,
) -> Connection:
    """An ``ApiClient`` and the namespace to work in. ``configuration`` (a ``kubernetes.client.Configuration``)
    skips discovery; tests use it to point the client at the API double."""
    from kubernetes import client, config

    if configuration is not None:
        return Connection(client.ApiClient(configuration), namespace or "default", "configuration")
    # Read $KUBECONFIG now (the kubernetes package fixes its default path when first imported); a
    # KUBECONFIG set in a notebook wins over the pod's own service account.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    if kubeconfig is None and context is None and in_cluster():
        config.load_incluster_config()
        return Connection(client.ApiClient(), namespace or pod_namespace() or "default", "in-cluster")
    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    except (config.ConfigException, OSError, TypeError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ClusterError(
            f"no usable Kubernetes config ({where}: {exc}); run inside a Kubeflow notebook, "
            "or point KUBECONFIG at a cluster",
            field="kubeconfig",
            value=where,
        ) from None
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    ns = namespace or (chosen or {}).get("context", {}).get("namespace") or pod_namespace() or "default"
    return Connection(client.ApiClient(cfg), ns, f"kubeconfig:{(chosen or {}).get('name', '?')}")


def cluster_status() -> tuple[bool, str]:
    """``(configured, sentence)``: whether a cluster configuration loads (kubeconfig or the pod's service account).

    The API server is not called, so a panel or notebook cell answers instantly even when a configured
    cluster is down; without any configuration the kubernetes client is not even imported.
    """
    if not in_cluster() and not kubeconfig_paths():
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        return False, f"no cluster configured: no kubeconfig ({where}) and not running inside a cluster"
    from mnistkit.errors import MnistkitError

    try:
        conn = connect()
    except MnistkitError as exc:
        return False, f"no cluster configured: {exc}"
    except Exception as exc:  # noqa: BLE001 - a broken kubeconfig: say so in words, as panels do
        return False, f"no cluster configured: {type(exc).__name__}: {exc}"
    return True, f"cluster configured ({conn.source}, namespace {conn.namespace})"
