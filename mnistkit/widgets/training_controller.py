"""The training panel's logic, as plain Python that tests (and papermill) drive without a browser.

``TrainingPanel`` (``training_panel.py``, beside this file) is a thin view over ``TrainingController``:
the panel's values become a ``TrainConfig``, an engine (``mnistkit.engines.ENGINE_NAMES``) takes it, and
a ``JobMonitor`` (``job_monitor.py``) watches the job. Errors are kept as a sentence, never raised at the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mnistkit.cluster.identity import default_job_name
from mnistkit.engines.base import ENGINE_NAMES
from mnistkit.widgets.job_monitor import JobMonitor, describe_error

if TYPE_CHECKING:
    from mnistkit.config import TrainConfig
    from mnistkit.engines.base import Engine, Job

__all__ = ["TrainingController"]


ENGINES = tuple(ENGINE_NAMES)  # the engine registry, in its order


@dataclass
class TrainingController:
    """Turn the panel's values into a ``TrainConfig``, pick an engine, submit, and hand back a ``JobMonitor``."""

    engine_factory: Callable[[str], Engine] | None = None
    engine_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    message: str = ""
    job: Job | None = None
    monitor: JobMonitor | None = None
    _engines: dict[str, Engine] = field(default_factory=dict)

    def _factory(self, name: str) -> Engine:
        if self.engine_factory is not None:
            return self.engine_factory(name)
        from mnistkit.engines import get_engine

        return get_engine(name, **self.engine_kwargs.get(name, {}))

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = self._factory(name)
        return self._engines[name]

    def engine_status(self, names: Iterable[str] = ENGINES) -> dict[str, str]:
        """``{"local": "ready", "argo": "not configured: <why>"}``: what the engine dropdown shows."""
        out = {}
        for name in names:
            try:
                self.engine(name)
                out[name] = "ready"
            except ImportError:
                out[name] = "not configured: its module is not installed"
            except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
                out[name] = f"not configured: {describe_error(exc)}"
        return out

    @staticmethod
    def defaults() -> dict[str, Any]:
        from dataclasses import fields

        from mnistkit.config import TrainConfig

        return {f.name: f.default for f in fields(TrainConfig)}

    def build_config(self, **values: Any) -> TrainConfig | None:
        from mnistkit.config import TrainConfig

        try:
            cfg = TrainConfig(**{k: v for k, v in values.items() if v is not None})
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.error, self.message = describe_error(exc), ""
            return None
        self.error = ""
        return cfg

    def submit(
        self, engine: str = "local", job_name: str | None = None, *, start: bool = True, **values: Any
    ) -> JobMonitor | None:
        """Validate, submit and return a monitor (polling in the background when ``start``)."""
        from mnistkit.config import validate_job_name

        cfg = self.build_config(**values)
        if cfg is None:
            return None
        try:
            name = validate_job_name(job_name or default_job_name())
            self.job = self.engine(engine).submit(cfg, name)
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.error, self.message = describe_error(exc), ""
            return None
        self.error, self.message = "", f"submitted {self.job.name} to the {engine} engine"
        self.monitor = JobMonitor(self.job)
        if start:
            self.monitor.start()
        return self.monitor
