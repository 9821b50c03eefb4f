"""Talking to a Kubeflow cluster: submit/list/watch/logs/delete the ``model-train`` workflow, doctor, port-forward.

Everything here imports ``kubernetes`` lazily (``import mnistkit.cluster`` stays light); the classes are
``mnistkit.cluster.client.ClusterClient``, ``mnistkit.cluster.doctor.doctor`` and
``mnistkit.cluster.portforward.forward``, and ``mnistkit.cluster.secrets.create_aws_secret`` (the S3 panel's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ClusterClient", "connect", "doctor", "cluster_status", "pod_namespace", "current_user", "default_job_name"]


if TYPE_CHECKING:  # what __getattr__ imports on first use, for type checkers
    from mnistkit.cluster.client import ClusterClient
    from mnistkit.cluster.connect import cluster_status, connect
    from mnistkit.cluster.doctor import doctor
    from mnistkit.cluster.identity import current_user, default_job_name, pod_namespace


def __getattr__(name: str) -> object:
    if name == "ClusterClient":
        from mnistkit.cluster.client import ClusterClient

        return ClusterClient
    if name in ("pod_namespace", "current_user", "default_job_name"):
        from mnistkit.cluster import identity

        return getattr(identity, name)
    if name in ("connect", "cluster_status"):
        from importlib import import_module

        # the submodule by its full name: `from mnistkit.cluster import connect` would ask this hook again
        return getattr(import_module("mnistkit.cluster.connect"), name)
    if name == "doctor":
        from mnistkit.cluster.doctor import doctor

        return doctor
    raise AttributeError(name)
