"""Small conveniences for notebooks: where S3 comes from, without putting a secret in a cell.

Credentials come from the environment (a Kubeflow ``PodDefault`` or the ``aws-creds`` secret put
them there) or from the embedded server; never from papermill parameters, which papermill writes
into the output notebook.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mnistkit.config import S3Config

if TYPE_CHECKING:
    from mnistkit.embedded_s3 import EmbeddedS3

__all__ = ["start_s3", "s3_from_environment"]


def s3_from_environment() -> bool:
    """True when the seed's variables name an S3 endpoint (``S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``)."""
    return bool(os.environ.get("S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL"))


def start_s3(embedded: bool | None = None, bucket: str | None = None) -> tuple[S3Config, EmbeddedS3 | None]:
    """``(config, server)``: the S3 named by the environment, or an embedded one on 127.0.0.1.

    ``embedded=None`` picks the environment's S3 when one is configured, else starts the embedded server.
    The embedded server's settings are exported to ``os.environ`` so that child processes (the trainer,
    TensorBoard) reach it too. Display the config freely: its repr hides the secret.
    """
    from mnistkit import s3

    if embedded is None:
        embedded = not s3_from_environment()
    if not embedded:
        cfg = S3Config.from_env(bucket=bucket)
        s3.ensure_bucket(s3.make_client(cfg), cfg.bucket, cfg.region)
        return cfg, None
    from mnistkit.embedded_s3 import EmbeddedS3

    server = EmbeddedS3(bucket=bucket or "mnist").start()
    os.environ.update(server.config.to_env())
    return server.config, server
