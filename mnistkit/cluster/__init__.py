"""Talking to a Kubeflow cluster: submit/list/watch/logs/delete the ``model-train`` workflow, doctor, port-forward.

Everything here imports ``kubernetes`` lazily (``import mnistkit.cluster`` stays light); the classes are
``mnistkit.cluster.client.ClusterClient``, ``mnistkit.cluster.doctor.doctor`` and
``mnistkit.cluster.portforward.forward``, and ``mnistkit.cluster.secrets.create_aws_secret`` (the S3 panel's).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClusterClient", "connect", "doctor"]


def __getattr__(name: str) -> Any:
    if name == "ClusterClient":
        from mnistkit.cluster.client import ClusterClient

        return ClusterClient
    if name == "connect":
        from mnistkit.cluster.connect import connect

        return connect
    if name == "doctor":
        from mnistkit.cluster.doctor import doctor

        return doctor
    raise AttributeError(name)
