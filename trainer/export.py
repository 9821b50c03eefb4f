"""Export a trained model as a SavedModel with the seed's serving contract.

Signature ``serving_default``: input ``x`` float32 ``[None, 28, 28]`` in [0, 1]; outputs ``classes``
(uint8 ``[None]``, the argmax, as the 2018 example) and ``predictions`` (float32 ``[None, 10]`` softmax).
Any TF Serving, KServe or ``mnistkit serve`` loads it unchanged.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

from mnistkit._types import TFModel, TFModule, TFTensor

__all__ = [
    "export_saved_model",
    "publish_local",
    "publish_export",
    "next_local_version",
    "sweep_stale_tmp",
    "SIGNATURE",
    "INPUT",
    "OUTPUTS",
]

SIGNATURE = "serving_default"
INPUT = "x"
OUTPUTS = ("classes", "predictions")
STALE_TMP_S = 24 * 3600  # a .tmp-* dir untouched this long belongs to a killed publish


def export_saved_model(model: TFModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (any callable Keras model taking [b, 28, 28]) as a SavedModel at ``path``."""
    from mnistkit.tf_runtime import import_tensorflow

    tf: TFModule = import_tensorflow()

    class MnistServing(tf.Module):
        def __init__(self, m: TFModel) -> None:
            super().__init__()
            self.model = m

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT)])
        def serve(self, x: TFTensor) -> dict[str, TFTensor]:
            probs = tf.cast(self.model(x, training=False), tf.float32)
            return {"classes": tf.cast(tf.argmax(probs, axis=1), tf.uint8), "predictions": probs}

    module = MnistServing(model)
    path = Path(path)
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    return path


def publish_local(saved_model_dir: str | os.PathLike[str], base_dir: str | os.PathLike[str], version: int) -> Path:
    """Move a finished SavedModel into ``<base_dir>/<version>/`` in one rename.

    A server polling ``base_dir`` sees either no version or the complete one: the copy happens under a
    dot-named temp dir (not numeric, so ignored) on the same filesystem, then ``os.rename`` publishes it.
    """
    base = Path(base_dir)
    base.mkdir(parents=True, exist_ok=True)
    final = base / str(int(version))
    if final.exists():
        raise FileExistsError(f"{final} exists already; versions are immutable")
    tmp = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(saved_model_dir, tmp)
    os.utime(tmp)  # copytree gave it the source's mtime: an old source must not look like a stale leftover
    try:
        os.rename(tmp, final)  # onto a non-empty dir (a concurrent publisher won this number) it fails
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{final} exists already; versions are immutable") from None
    sweep_stale_tmp(base)
    return final


def next_local_version(base_dir: str | os.PathLike[str]) -> int:
    """One more than the highest numbered folder, complete or not (a half-written one still takes its number)."""
    from mnistkit.versions import local_versions

    return max(local_versions(base_dir, complete=False), default=0) + 1


def publish_export(
    saved_model_dir: Path, export_dir: str, version: int | None = None, *, retry_s: float | None = None
) -> str:
    """Publish a finished export (local or ``s3://``); on failure raise one sentence saying where it is kept.

    S3 publishes retry with backoff through an outage (``MNISTKIT_PUBLISH_RETRY_S``, default 600 s). The
    export is deleted only once published; otherwise the ``TrainingError`` names its folder and the command
    that publishes it later. ``version`` None takes the next free number (claimed: concurrent publishers
    never share one).
    """
    from mnistkit.errors import MnistkitError, TrainingError

    try:
        if export_dir.startswith("s3://"):
            from mnistkit import s3
            from mnistkit.config import S3Config, split_s3_url
            from mnistkit.publish import publish_with_retries

            bucket, _ = split_s3_url(export_dir, "tf_export_dir")
            client = s3.make_client(S3Config.from_env(bucket=bucket))
            if retry_s is None:
                retry_s = float(os.environ.get("MNISTKIT_PUBLISH_RETRY_S", "600"))

            def say(delay: float, exc: BaseException) -> None:
                print(f"[trainer] publish failed ({exc}); retrying in {delay:.0f}s", flush=True)

            published = publish_with_retries(
                client, saved_model_dir, export_dir, version, retry_for_s=retry_s, on_retry=say
            )
        else:
            for _attempt in range(20):
                try:
                    number = version or next_local_version(export_dir)
                    published = str(publish_local(saved_model_dir, export_dir, number))
                    break
                except FileExistsError:
                    if version:
                        raise
            else:
                raise FileExistsError(f"no free version number in {export_dir} after 20 tries")
    except (MnistkitError, OSError) as exc:
        later = f"mnistkit publish {saved_model_dir} {export_dir}" + (f" --version {version}" if version else "")
        pod = ""
        if os.environ.get("KUBERNETES_SERVICE_HOST"):  # a TFJob/TrainJob pod: its emptyDir dies with it
            pod = (
                " (in this pod, whose disk goes with it: what survives is the model dir's backup/ on S3, and "
                "resubmitting the same job resumes from its last epoch and exports again)"
            )
        raise TrainingError(
            f"could not publish the model to {export_dir} ({exc}); it is kept in {saved_model_dir}"
            f"{pod}, publish it later with: {later}",
            field="tf_export_dir",
            value=export_dir,
        ) from None
    shutil.rmtree(saved_model_dir, ignore_errors=True)
    return published


def sweep_stale_tmp(base_dir: str | os.PathLike[str], older_than_s: float = STALE_TMP_S) -> int:
    """Delete ``.tmp-*`` dirs that killed ``publish_local`` calls left in ``base_dir``; returns how many.

    Only those not modified for ``older_than_s`` (a day): a copy still running is never swept. Called
    after every successful publish, so debris lasts at most a day past the next one.
    """
    now = time.time()
    swept = 0
    for entry in Path(base_dir).glob(".tmp-*"):
        try:
            if entry.is_dir() and now - entry.stat().st_mtime >= older_than_s:
                shutil.rmtree(entry)
                swept += 1
        except OSError:
            pass  # another sweeper got it first, or it is not ours to remove: tidying only
    return swept
