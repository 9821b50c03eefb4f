"""The instructor's scoring of participants' models: each in a process of its own, with nothing to steal.

A participant's SavedModel is code the instructor did not write (TF graphs can read files and open
sockets), and a run record is text the participant wrote (a self-reported score of 1.0 would rank first).
So the leaderboard ranks by scores the instructor measures: ``score_export`` downloads the participant's
latest export, only from under their own prefix and only when its listed size is small, then runs
``python -m mnistkit.workshop.scorer MODEL_DIR DIGITS.npz`` with an environment holding no credentials
(only PATH, PYTHONPATH and TF's quiet flags), its address space and CPU time limited, and a wall-clock
timeout. The digits are a held-back set (a seed the participants do not know), not the public fixed set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mnistkit.workshop.digits import DigitSet

__all__ = ["MAX_EXPORT_BYTES", "held_back_digit_set", "main", "sandbox_env", "score_in_sandbox"]

MAX_EXPORT_BYTES = 64 * 1024 * 1024  # the convnet's export is ~1.3 MB; anything near this is not a model of ours
MEMORY_LIMIT_BYTES = 6 * 1024**3  # address space: TensorFlow reserves ~3 GB of it just by loading
CPU_LIMIT_S = 300


def held_back_digit_set(seed: int | None = None) -> DigitSet:
    """A drawn-digit set like the room's fixed one, from a seed participants do not know (random by default)."""
    import secrets

    from mnistkit.workshop.digits import fixed_digit_set

    return fixed_digit_set(seed=secrets.randbelow(2**31) if seed is None else seed)


def _limits(memory: int, cpu_s: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))

    return apply


def sandbox_env(home: str) -> dict[str, str]:
    """The scorer's whole environment: no AWS_*, no tokens, no KUBECONFIG; only what Python and TF need."""
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TF_USE_LEGACY_KERAS", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(HOME=home, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS=env.get("TF_USE_LEGACY_KERAS", "1"))
    return env


def score_in_sandbox(
    model_dir: Path, digits: DigitSet, *, timeout_s: float = 180.0, memory_bytes: int = MEMORY_LIMIT_BYTES
) -> float:
    """The drawing-pad score of the SavedModel in ``model_dir`` on ``digits``, measured in a child process with
    no credentials in its environment and limited memory and time. Raises ``ServingError`` saying why not."""
    from mnistkit.errors import ServingError

    with tempfile.TemporaryDirectory(prefix="mnistkit-score-") as tmp:
        npz = Path(tmp) / "digits.npz"
        np.savez(npz, images=digits.images, labels=digits.labels)
        env = sandbox_env(tmp)
        try:
            out = subprocess.run(
                [sys.executable, "-m", "mnistkit.workshop.scorer", str(model_dir), str(npz)],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                preexec_fn=_limits(memory_bytes, CPU_LIMIT_S),
            )
        except subprocess.TimeoutExpired:
            raise ServingError(
                f"scoring {model_dir} took over {timeout_s:.0f} s", field="model", value=str(model_dir)
            ) from None
    lines = out.stdout.strip().splitlines()
    try:
        return float(json.loads(lines[-1])["score"])
    except (IndexError, KeyError, TypeError, ValueError):
        why = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1][:300]
        raise ServingError(f"scoring {model_dir} failed: {why}", field="model", value=str(model_dir)) from None


def main(argv: list[str]) -> int:
    from mnistkit.workshop.digits import DigitSet, drawing_pad_score

    model_dir, npz = Path(argv[0]), np.load(argv[1])
    images, labels = npz["images"], npz["labels"]
    digits = DigitSet("held-back", np.zeros((0, 1, 1), np.uint8), images, labels, np.arange(len(labels)))
    print(json.dumps({"score": drawing_pad_score(model_dir, digits)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
