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
from typing import Any

__all__ = ["export_saved_model", "publish_local", "sweep_stale_tmp", "SIGNATURE", "INPUT", "OUTPUTS"]

SIGNATURE = "serving_default"
INPUT = "x"
OUTPUTS = ("classes", "predictions")
STALE_TMP_S = 24 * 3600  # a .tmp-* dir untouched this long belongs to a killed publish


def export_saved_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (any callable Keras model taking [b, 28, 28]) as a SavedModel at ``path``."""
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()

    class MnistServing(tf.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.model = m

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT)])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
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
    os.rename(tmp, final)
    sweep_stale_tmp(base)
    return final


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
