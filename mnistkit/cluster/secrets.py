"""Store S3 credentials in the cluster as the ``aws-creds`` Secret: what the notebook's S3 panel calls.

Importing this module is free (``kubernetes`` loads on the call), so a panel can test for it cheaply.
The keys go only into the API request body; the return value and every error name the Secret, never
its contents.
"""

from __future__ import annotations

from typing import Any

from mnistkit.config import S3Config

__all__ = ["create_aws_secret", "DEFAULT_SECRET_NAME"]

DEFAULT_SECRET_NAME = "aws-creds"


def create_aws_secret(
    cfg: S3Config, namespace: str | None = None, name: str = DEFAULT_SECRET_NAME, **connect_kwargs: Any
) -> str:
    """Create or replace Secret ``name`` (keys ``awsAccessKeyID``/``awsSecretAccessKey``) from ``cfg``.

    ``namespace`` defaults to the connection's (kubeconfig context, or the notebook pod's own);
    ``connect_kwargs`` go to ``mnistkit.cluster.connect.connect`` (``kubeconfig``, ``context``,
    ``configuration``). Returns the Secret's name.
    """
    from mnistkit.cluster.client import ClusterClient

    ClusterClient.connect(namespace, **connect_kwargs).ensure_secret(cfg, name=name)
    return name
