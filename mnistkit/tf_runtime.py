"""Import TensorFlow without its C++ start-up noise.

TensorFlow's native libraries print "Could not find cuda drivers", "failed call to cuInit" and absl's
"All log messages before absl::InitializeLog()" straight to file descriptor 2 while loading, before
``TF_CPP_MIN_LOG_LEVEL`` is even read. In a notebook that lands in the cell's output (ipykernel
captures the descriptor), in papermill outputs and in the demo. So we load TensorFlow and probe the
devices once with descriptor 2 pointed at /dev/null; Python exceptions still propagate normally.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = ["import_tensorflow", "set_intra_op_threads", "silenced_stderr_fd"]


@contextlib.contextmanager
def silenced_stderr_fd() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (Python's ``sys.stderr`` object is kept)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` (tf-keras as ``tf.keras``) with the start-up noise silenced; idempotent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if "tensorflow" in sys.modules and getattr(sys.modules["tensorflow"], "__version__", None):
        return sys.modules["tensorflow"]
    with silenced_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()  # triggers cuInit here, not in the first user cell
    return tf


def set_intra_op_threads(threads: int, flag: str = "tensorflow_intra_op_parallelism") -> None:
    """Size TensorFlow's intra-op pool (0: TensorFlow's default, one thread per core), as TF Serving's
    ``--tensorflow_intra_op_parallelism`` does; the sessions the server loads afterwards use it.

    TensorFlow fixes the pool once it has run an op in this process: asking for another size then is a
    ``ConfigError`` naming ``flag``, not a silent no-op.
    """
    from mnistkit.errors import ConfigError

    tf = import_tensorflow()
    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        raise ConfigError(
            f"--{flag}={threads} comes too late: TensorFlow already runs ops in this process with "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'one per core'} intra-op threads; "
            "set it before TensorFlow's first op (a fresh `mnistkit serve`, or the top of the notebook)",
            field=flag,
            value=threads,
        ) from None
