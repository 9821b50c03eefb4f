"""Watching one training job, headless: what ``TrainingMonitor`` shows, as plain Python.

``JobMonitor.poll()`` takes one ``MonitorSnapshot``: the job's state, per-epoch metrics (``curve``: the
loss/accuracy series that grows by one point per epoch), the log tail and, for an Argo job, the
workflow's steps and their phases (``job.steps()``; other engines have none). ``start()`` polls in a
background thread, ``wait()`` blocks (papermill). Errors are kept as a sentence, never raised at the user.
Nothing here imports ipywidgets, matplotlib or kubernetes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mnistkit.errors import MnistkitError

if TYPE_CHECKING:
    from mnistkit.engines.base import EpochMetrics, Job, JobState

__all__ = ["JobMonitor", "MonitorSnapshot", "Step", "describe_error"]

Step = tuple[str, str, str]  # (step name, phase, message), as `mnistkit get` shows them


def describe_error(exc: BaseException) -> str:
    """The sentence a panel shows: ``str(exc)`` for mnistkit's own errors, a short line for anything else."""
    if isinstance(exc, MnistkitError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class MonitorSnapshot:
    """What a monitor shows at one moment."""

    state: str
    done: bool
    epoch: int
    epochs: int
    metrics: tuple[EpochMetrics, ...] = ()
    log_tail: str = ""
    error: str = ""
    steps: tuple[Step, ...] = ()  # the workflow's steps (Argo jobs); empty for other engines

    @property
    def progress(self) -> float:
        if self.done and self.state == "Succeeded":
            return 1.0
        return self.epoch / self.epochs if self.epochs else 0.0

    @property
    def last(self) -> EpochMetrics | None:
        return self.metrics[-1] if self.metrics else None

    @property
    def curve(self) -> dict[str, list[float]]:
        """``{"epoch": [...], "loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}``.

        One entry per epoch reported so far; a validation value the trainer did not report is NaN.
        """
        nan = float("nan")
        keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
        return {k: [nan if getattr(m, k) is None else float(getattr(m, k)) for m in self.metrics] for k in keys}


def _steps_of(job: Job) -> tuple[Step, ...]:
    steps = getattr(job, "steps", None)
    return tuple(steps()) if callable(steps) else ()


class JobMonitor:
    """Watch one ``Job``: ``poll()`` once, ``start()`` a background poller, ``wait()`` to block (papermill)."""

    def __init__(self, job: Job, *, log_lines: int = 20, interval: float = 1.0) -> None:
        self.job = job
        self.log_lines = log_lines
        self.interval = interval
        self.snapshot = MonitorSnapshot(state="Pending", done=False, epoch=0, epochs=0)
        self._listeners: list[Callable[[MonitorSnapshot], None]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def on_update(self, callback: Callable[[MonitorSnapshot], None]) -> None:
        self._listeners.append(callback)

    def poll(self) -> MonitorSnapshot:
        with self._lock:
            try:
                state: JobState = self.job.state()
                metrics: list[EpochMetrics] = self.job.metrics()
                logs = self.job.logs(tail=self.log_lines)
                last = metrics[-1] if metrics else None
                snap = MonitorSnapshot(
                    state=state.value,
                    done=state.done,
                    epoch=last.epoch if last else 0,
                    epochs=last.epochs if last else 0,
                    metrics=tuple(metrics),
                    log_tail=logs,
                    steps=_steps_of(self.job),
                )
            except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
                snap = replace(self.snapshot, error=describe_error(exc))
            self.snapshot = snap
        self._notify(snap)
        return snap

    def _notify(self, snap: MonitorSnapshot) -> None:
        for cb in list(self._listeners):
            try:
                cb(snap)
            except Exception:  # noqa: BLE001 - a broken view must not kill the poller
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.poll().done:
                return
            self._stop.wait(self.interval)

    def start(self) -> JobMonitor:
        """Poll every ``interval`` seconds in a daemon thread until the job is done (or ``close()``)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"mnistkit-monitor-{self.job.name}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop polling (the job keeps running)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def wait(self, timeout: float | None = None) -> MonitorSnapshot:
        """Block until the job is done (or ``timeout``), then poll once more: for papermill and scripts."""
        try:
            self.job.wait(timeout)
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            return replace(self.poll(), error=describe_error(exc))
        return self.poll()

    def stop(self) -> MonitorSnapshot:
        try:
            self.job.stop()
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            return self._with_error(exc)
        return self.poll()

    def delete(self) -> MonitorSnapshot:
        try:
            self.job.delete()
        except Exception as exc:  # noqa: BLE001 - reported, never raised at the user
            return self._with_error(exc)
        self.close()
        return self.poll()

    def _with_error(self, exc: BaseException) -> MonitorSnapshot:
        self.snapshot = replace(self.snapshot, error=describe_error(exc))
        self._notify(self.snapshot)
        return self.snapshot
