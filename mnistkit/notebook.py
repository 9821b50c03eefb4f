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

__all__ = ["start_s3", "s3_from_environment", "run_notebook"]


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


def run_notebook(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    parameters: dict[str, object] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    cell_timeout: float = 900,
    kernel_name: str = "python3",
) -> None:
    """Run a notebook headless with papermill, the way CI and workshops do.

    * Parameters that look like credentials are refused: papermill writes every parameter into the output
      notebook, so secrets must come from the environment instead.
    * Every cell has a timeout, so an endless loop fails the run instead of hanging CI; a cell's exception
      or a dead kernel raises ``MnistkitError`` saying which notebook, which cell and why.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from mnistkit.errors import ConfigError, MnistkitError, looks_secret

    parameters = dict(parameters or {})
    for name in parameters:
        if looks_secret(name):
            raise ConfigError(
                f"parameter {name!r} looks like a credential; papermill would write it into {output}. "
                "Put it in the environment (e.g. AWS_SECRET_ACCESS_KEY) instead",
                field=name,
            )
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=parameters,
            cwd=str(cwd) if cwd else None,
            kernel_name=kernel_name,
            execution_timeout=cell_timeout,
            progress_bar=False,
        )
    except PapermillExecutionError as exc:
        raise MnistkitError(
            f"{path}: cell {exc.exec_count} failed with {exc.ename}: {exc.evalue} (output in {output})",
            field="notebook",
            value=str(path),
        ) from None
    except Exception as exc:  # noqa: BLE001 - DeadKernelError, CellTimeoutError, ...
        what = type(exc).__name__
        if "Timeout" in what or "timed out" in str(exc).lower():
            msg = f"{path}: a cell ran longer than {cell_timeout:.0f}s and was stopped (output in {output})"
        elif "DeadKernel" in what:
            msg = f"{path}: the kernel died (killed, or out of memory) (output in {output})"
        else:
            msg = f"{path}: {what}: {exc}"
        raise MnistkitError(msg, field="notebook", value=str(path)) from None
