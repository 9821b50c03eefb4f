"""What every benchmark target shares: the run context, the outcome record, timing and subprocess helpers.

Kept free of TensorFlow so ``python -m bench --only import,s3`` stays quick; targets import heavy
modules inside their functions.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "Context",
    "Outcome",
    "accuracy",
    "load_predictor",
    "median",
    "official_test_set",
    "percentile",
    "py_env",
    "read_jsonl",
    "run_python",
    "say",
    "steady_throughput",
]

ROOT = Path(__file__).resolve().parent.parent


def say(msg: str) -> None:
    """Progress and detail lines (the summary lines come at the end)."""
    print(msg, flush=True)


@dataclass
class Outcome:
    """One target's result: its figure against the goal, and the numbers behind it (for ``--json``)."""

    target: str
    figure: str
    goal: str
    ok: bool | None  # None: skipped (``figure`` then says why)
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        if self.ok is None:
            return f"{self.target}: skipped ({self.figure})"
        return f"{self.target}: {self.figure} (target {self.goal}) {'ok' if self.ok else 'miss'}"


@dataclass
class Context:
    """Options and things targets share (a trained model export, so serving/drawing reuse target 2's)."""

    quick: bool
    t10k: Path | None
    work: Path
    python: str = sys.executable
    shared: dict[str, Any] = field(default_factory=dict)

    def tmp(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.work))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); enough for 1,000 samples."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100.0 * len(s) + 0.5) - 1))
    return float(s[k])


def py_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


def run_python(
    args: Sequence[str],
    *,
    timeout: float,
    log: Path | None = None,
    poll: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, float, float | None]:
    """Run ``python <args>`` from the repo root; returns (exit code, wall seconds, seconds until ``poll()``
    first returned true, or None). Output goes to ``log`` (or is discarded)."""
    out = log.open("wb") if log else subprocess.DEVNULL
    t0 = time.monotonic()
    first: float | None = None
    try:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env or py_env(), stdout=out,
                                stderr=subprocess.STDOUT)
        while True:
            try:
                rc = proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if first is None and poll is not None and poll():
                    first = time.monotonic() - t0
                if time.monotonic() - t0 > timeout:
                    proc.kill()
                    proc.wait()
                    rc = -9
                    break
        if first is None and poll is not None and poll():
            first = time.monotonic() - t0
        return rc, time.monotonic() - t0, first
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def steady_throughput(rows: list[dict[str, Any]], samples_key: str = "samples") -> float:
    """Samples per second between the end of the first epoch and the end of the last, so start-up,
    graph tracing and the first epoch's warm-up are excluded the same way for the trainer and the reference.
    Each row needs ``elapsed_s`` and a cumulative sample count ``samples_key``."""
    if len(rows) < 2:
        raise ValueError("need at least two epochs to measure steady throughput")
    first, last = rows[0], rows[-1]
    return (last[samples_key] - first[samples_key]) / (last["elapsed_s"] - first["elapsed_s"])


def load_predictor(export_dir: str | Path) -> Callable[[Any], Any]:
    """The SavedModel's ``serving_default`` as ``f(float32 [b, 28, 28]) -> probabilities [b, 10]`` (numpy),
    called in-process: the reference every served figure is compared against."""
    import numpy as np

    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(export_dir))
    fn = loaded.signatures["serving_default"]

    def predict(x: Any) -> Any:
        return fn(x=tf.constant(np.asarray(x, np.float32)))["predictions"].numpy()

    predict.loaded = loaded  # type: ignore[attr-defined]  # keeps the variables alive
    return predict


def accuracy(predict: Callable[[Any], Any], x: Any, y: Any, batch: int = 1000) -> float:

    hits = 0
    for i in range(0, len(y), batch):
        hits += int((predict(x[i : i + batch]).argmax(axis=1) == y[i : i + batch]).sum())
    return hits / len(y)


def official_test_set(t10k: Path) -> tuple[Any, Any]:
    """(uint8 images [10000, 28, 28], int labels) from the official test set dir."""
    from mnistkit.data import FILES, read_idx

    return read_idx(t10k / FILES["test_images"]), read_idx(t10k / FILES["test_labels"]).astype("int64")
