"""The engine interface every front end uses: submit a training, then watch, stop and delete it."""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterator, Sequence
from typing import Any

from mnistkit.config import TrainConfig
from mnistkit.trainspec import EpochMetrics

__all__ = ["Engine", "Job", "JobState", "EpochMetrics", "ENGINE_NAMES"]

# The one list of engine names (CLI choices, panels, get_engine): name -> "module:class".
ENGINE_NAMES: dict[str, str] = {
    "local": "mnistkit.engines.local:LocalEngine",
    "argo": "mnistkit.engines.argo:ArgoEngine",
}


class JobState(str, enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)


class Job(abc.ABC):
    """A submitted training. ``name`` is unique within its engine (and namespace)."""

    name: str

    # The last sentence about the job's state (why it failed, restarts), for people: an attribute or a property.
    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = text

    _message: str = ""
    config: TrainConfig | None = None  # what was submitted, where the engine knows it

    @abc.abstractmethod
    def state(self) -> JobState: ...

    @abc.abstractmethod
    def result(self) -> dict[str, Any]:
        """The chief's ``result.json`` (test accuracy, export URL, version) once written, else ``{}``."""

    @abc.abstractmethod
    def metrics(self) -> list[EpochMetrics]:
        """Per-epoch metrics reported so far (chief only)."""

    @abc.abstractmethod
    def logs(self, tail: int | None = None) -> str:
        """The trainer's log (all workers, prefixed), or its last ``tail`` lines."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> JobState:
        """Block until done (or ``timeout`` seconds) and return the state."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the training; the job ends ``Stopped``."""

    @abc.abstractmethod
    def delete(self) -> None:
        """Stop and remove everything the job created (processes, pods, workflows); keeps exports."""

    @property
    @abc.abstractmethod
    def model_dir(self) -> str:
        """Where checkpoints and TensorBoard logs go (local path or ``s3://``)."""

    @property
    @abc.abstractmethod
    def logdir(self) -> str:
        """Where TensorBoard reads this job's events (local path or ``s3://``)."""

    @property
    @abc.abstractmethod
    def export_dir(self) -> str:
        """The model base path servers read: ``<export_dir>/<version>/saved_model.pb``."""

    def follow(self, interval: float = 1.0) -> Iterator[EpochMetrics]:
        """Yield each new epoch's metrics until the job is done."""
        import time

        seen = 0
        while True:
            done = self.state().done
            ms = self.metrics()
            yield from ms[seen:]
            seen = len(ms)
            if done:
                return
            time.sleep(interval)


class Engine(abc.ABC):
    """Runs ``python -m trainer.task`` with a ``TrainConfig``, as N local processes or as a TFJob."""

    name: str

    @abc.abstractmethod
    def submit(self, config: TrainConfig, job_name: str | None = None) -> Job: ...

    @abc.abstractmethod
    def get(self, job_name: str) -> Job: ...

    @abc.abstractmethod
    def list(self) -> Sequence[Job]: ...
