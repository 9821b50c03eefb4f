"""The training panel and its monitor: pick parameters and an engine, submit, then watch the job.

``TrainingPanel`` shows ``TrainConfig``'s parameters with their defaults and ranges, the engines (Argo
greyed out as "not configured" when no cluster is reachable) and a unique default job name. Submitting
adds a ``TrainingMonitor``: state, the workflow's steps and their phases (Argo jobs), a per-epoch progress
bar, live loss/accuracy and their curves (redrawn once per new epoch), the log tail, Stop and Delete,
refreshed by a background poller (``monitor.wait()`` blocks instead, for papermill).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mnistkit.cluster.identity import default_job_name
from mnistkit.engines.base import ENGINE_NAMES
from mnistkit.widgets.job_monitor import JobMonitor, MonitorSnapshot
from mnistkit.widgets.training_controller import TrainingController

if TYPE_CHECKING:
    from mnistkit.engines.base import Engine, Job

__all__ = ["TrainingPanel", "TrainingMonitor"]

_STYLE = {"description_width": "120px"}
_PHASE_COLOURS = {"Succeeded": "#2d6a2d", "Failed": "#b00", "Error": "#b00", "Running": "#246", "Skipped": "#888"}
_WIDE = w.Layout(width="480px")


class TrainingMonitor(w.VBox):
    """A live view of one job; ``TrainingMonitor(job)`` works for any ``mnistkit.engines.base.Job``."""

    def __init__(self, job_or_monitor: Job | JobMonitor, *, interval: float = 1.0, start: bool = True) -> None:
        self.monitor = (
            job_or_monitor if isinstance(job_or_monitor, JobMonitor) else JobMonitor(job_or_monitor, interval=interval)
        )
        name = self.monitor.job.name
        self.title = w.HTML(f"<b>{html.escape(name)}</b>")
        self.state = w.HTML()
        self.progress = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="Epoch 0/?", style=_STYLE, layout=_WIDE
        )
        self.metrics = w.HTML()
        self.steps = w.HTML(layout=w.Layout(display="none"))
        self.chart = w.Image(format="png", layout=w.Layout(display="none", width="600px"))
        self.chart_epochs = 0  # how many epochs the chart shows
        self.logs = w.Textarea(value="", disabled=True, layout=w.Layout(width="640px", height="160px"))
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning")
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger")
        self.error = w.HTML()
        self.stop_button.on_click(lambda _b: self.monitor.stop())
        self.delete_button.on_click(lambda _b: self.monitor.delete())
        super().__init__(
            [
                self.title,
                self.state,
                self.steps,
                self.progress,
                self.metrics,
                self.chart,
                self.logs,
                w.HBox([self.stop_button, self.delete_button]),
                self.error,
            ]
        )
        self.add_class("mnistkit-training-monitor")
        self.monitor.on_update(self._show)
        self._show(self.monitor.poll())
        if start and not self.monitor.snapshot.done:
            self.monitor.start()

    @property
    def job(self) -> Job:
        return self.monitor.job

    def wait(self, timeout: float | None = None) -> MonitorSnapshot:
        """Block until the job ends (papermill, scripts); the view shows the final state."""
        return self.monitor.wait(timeout)

    def _show(self, snap: MonitorSnapshot) -> None:
        colour = {"Succeeded": "#2d6a2d", "Failed": "#b00", "Stopped": "#a60"}.get(snap.state, "#246")
        self.state.value = f"State: <b class='mnistkit-state' style='color:{colour}'>{html.escape(snap.state)}</b>"
        self.progress.value = snap.progress
        self.progress.description = f"Epoch {snap.epoch}/{snap.epochs or '?'}"
        last = snap.last
        if last is not None:
            parts = [f"loss {last.loss:.4f}", f"accuracy {last.accuracy:.4f}"]
            if last.val_loss is not None and not math.isnan(last.val_loss):
                parts.append(f"val_loss {last.val_loss:.4f}")
            if last.val_accuracy is not None and not math.isnan(last.val_accuracy):
                parts.append(f"val_accuracy {last.val_accuracy:.4f}")
            parts.append(f"step {last.step}, {last.elapsed_s:.0f} s")
            self.metrics.value = "<span class='mnistkit-metrics'>" + " · ".join(parts) + "</span>"
        self._show_steps(snap)
        self._show_curve(snap)
        self.logs.value = snap.log_tail
        self.stop_button.disabled = snap.done
        self.error.value = (
            f"<span class='mnistkit-error' style='color:#b00'>✗ {html.escape(snap.error)}</span>" if snap.error else ""
        )

    def _show_steps(self, snap: MonitorSnapshot) -> None:
        if not snap.steps:
            self.steps.layout.display = "none"
            return
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td class='mnistkit-phase-{html.escape(phase.lower())}' "
            f"style='color:{_PHASE_COLOURS.get(phase, '#246')}'>{html.escape(phase)}</td>"
            f"<td>{html.escape(message)}</td></tr>"
            for name, phase, message in snap.steps
        )
        self.steps.value = f"<table class='mnistkit-steps'><tr><th>step</th><th>phase</th><th></th></tr>{rows}</table>"
        self.steps.layout.display = ""

    def _show_curve(self, snap: MonitorSnapshot) -> None:
        """Redraw the loss/accuracy curves when an epoch was added (not on every poll)."""
        if len(snap.metrics) == self.chart_epochs:
            return
        from mnistkit.plots import figure_png, plot_training_curves

        self.chart.value = figure_png(plot_training_curves(snap.metrics))
        self.chart_epochs = len(snap.metrics)
        self.chart.layout.display = "" if snap.metrics else "none"


class TrainingPanel(w.VBox):
    """``TrainingPanel()``; after Submit, ``panel.monitor`` is the ``TrainingMonitor`` (``panel.monitor.wait()``)."""

    def __init__(
        self,
        *,
        engine_factory: Callable[[str], Engine] | None = None,
        engine_kwargs: dict[str, dict[str, Any]] | None = None,
        data_dir: str = "",
        model_dir: str = "",
        export_dir: str = "",
        interval: float = 1.0,
    ) -> None:
        from mnistkit.config import MODEL_TYPES, TrainConfig

        self.controller = TrainingController(engine_factory=engine_factory, engine_kwargs=engine_kwargs or {})
        self.interval = interval
        d = self.controller.defaults()
        r = TrainConfig.RANGES
        self.train_steps = w.IntSlider(
            value=d["train_steps"],
            min=int(r["train_steps"][1]),
            max=5000,
            step=1,
            description="Train steps",
            style=_STYLE,
            layout=_WIDE,
        )
        self.batch_size = w.IntSlider(
            value=d["batch_size"],
            min=int(r["batch_size"][1]),
            max=1024,
            description="Batch size",
            style=_STYLE,
            layout=_WIDE,
        )
        _, lo, hi = r["learning_rate"]
        self.learning_rate = w.FloatLogSlider(
            value=d["learning_rate"],
            base=10,
            min=math.log10(max(lo, 1e-5)),
            max=math.log10(min(hi, 1.0)),
            step=0.1,
            description="Learning rate",
            readout_format=".1e",
            style=_STYLE,
            layout=_WIDE,
        )
        self.model_type = w.Dropdown(
            options=list(MODEL_TYPES), value=d["model_type"], description="Model", style=_STYLE
        )
        self.workers = w.IntSlider(
            value=d["workers"], min=int(r["workers"][1]), max=8, description="Workers", style=_STYLE, layout=_WIDE
        )
        self.data_dir = w.Text(
            value=data_dir or d["data_dir"],
            placeholder="empty = the offline sample; or s3://bucket/data/mnist",
            description="Data dir",
            style=_STYLE,
            layout=_WIDE,
        )
        self.model_dir = w.Text(
            value=model_dir or d["model_dir"],
            placeholder="empty = the engine's default",
            description="Model dir",
            style=_STYLE,
            layout=_WIDE,
        )
        self.export_dir = w.Text(
            value=export_dir or d["export_dir"],
            placeholder="empty = the engine's default",
            description="Export dir",
            style=_STYLE,
            layout=_WIDE,
        )
        status = self.controller.engine_status()
        self.engine_note = w.HTML(
            "<br>".join(f"{html.escape(n)}: {html.escape(s)}" for n, s in status.items() if s != "ready")
        )
        options = [(n if s == "ready" else f"{n} (not configured)", n) for n, s in status.items()]
        ready = [n for n, s in status.items() if s == "ready"]
        self.engine = w.Dropdown(
            options=options, value=ready[0] if ready else next(iter(ENGINE_NAMES)), description="Engine", style=_STYLE
        )
        self.job_name = w.Text(value=default_job_name(), description="Job name", style=_STYLE, layout=_WIDE)
        self.submit_button = w.Button(description="Submit", icon="play", button_style="primary", disabled=not ready)
        self.status = w.HTML()
        self.monitor: TrainingMonitor | None = None
        self.monitor_box = w.VBox()
        self.submit_button.on_click(lambda _b: self.submit())
        super().__init__(
            [
                w.HTML("<b>Training</b>"),
                self.train_steps,
                self.batch_size,
                self.learning_rate,
                self.model_type,
                self.workers,
                self.data_dir,
                self.model_dir,
                self.export_dir,
                self.engine,
                self.engine_note,
                self.job_name,
                self.submit_button,
                self.status,
                self.monitor_box,
            ]
        )
        self.add_class("mnistkit-training-panel")

    def values(self) -> dict[str, Any]:
        return {
            "train_steps": self.train_steps.value,
            "batch_size": self.batch_size.value,
            "learning_rate": float(f"{self.learning_rate.value:.3g}"),
            "model_type": self.model_type.value,
            "workers": self.workers.value,
            "data_dir": self.data_dir.value.strip(),
            "model_dir": self.model_dir.value.strip(),
            "export_dir": self.export_dir.value.strip(),
        }

    def submit(self) -> TrainingMonitor | None:
        """What the Submit button does; returns the monitor (``None`` with the reason shown on failure)."""
        self.submit_button.disabled = True
        try:
            monitor = self.controller.submit(
                self.engine.value, self.job_name.value.strip(), start=False, **self.values()
            )
        finally:
            self.submit_button.disabled = False
        if monitor is None:
            self.status.value = (
                f"<span class='mnistkit-error' style='color:#b00'>✗ {html.escape(self.controller.error)}</span>"
            )
            return None
        monitor.interval = self.interval
        self.status.value = (
            f"<span class='mnistkit-ok' style='color:#2d6a2d'>✓ {html.escape(self.controller.message)}</span>"
        )
        self.monitor = TrainingMonitor(monitor)
        self.monitor_box.children = [self.monitor]
        self.job_name.value = default_job_name()  # the next submit needs a new unique name
        return self.monitor
