"""Export a trained model as a SavedModel with the seed's serving contract.

Signature ``serving_default``: input ``x`` float32 ``[None, 28, 28]`` in [0, 1]; outputs ``classes``
(uint8 ``[None]``, the argmax, as the 2018 example) and ``predictions`` (float32 ``[None, 10]`` softmax).
Any TF Serving, KServe or ``mnistkit serve`` loads it unchanged.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

__all__ = ["export_saved_model", "publish_local", "SIGNATURE", "INPUT", "OUTPUTS"]

SIGNATURE = "serving_default"
INPUT = "x"
OUTPUTS = ("classes", "predictions")


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
    os.rename(tmp, final)
    return final
