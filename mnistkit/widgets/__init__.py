"""Notebook panels: the drawing pad, the S3 panel and the training panel with its monitor.

Each panel is a thin ipywidgets/anywidget view over a plain-Python controller in
controller beside it (``drawing_pad_controller.py``, ``s3_panel_controller.py``, ``training_controller.py``
with ``job_monitor.py``), which tests and papermill drive without a browser; the anywidget front ends are
in ``static/``. Panels load
lazily: ``from mnistkit.widgets import DrawingPad`` imports anywidget only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mnistkit._lazy import lazy_getattr

if TYPE_CHECKING:  # what __getattr__ imports on first use, for type checkers
    from mnistkit.predictor import saved_model_predictor
    from mnistkit.widgets.drawing_pad import DrawingPad
    from mnistkit.widgets.s3_panel import S3Panel
    from mnistkit.widgets.training_panel import TrainingMonitor, TrainingPanel


__all__ = ["DrawingPad", "S3Panel", "TrainingPanel", "TrainingMonitor", "saved_model_predictor"]

_WHERE = {
    "DrawingPad": "mnistkit.widgets.drawing_pad",
    "S3Panel": "mnistkit.widgets.s3_panel",
    "TrainingPanel": "mnistkit.widgets.training_panel",
    "TrainingMonitor": "mnistkit.widgets.training_panel",
    "saved_model_predictor": "mnistkit.predictor",
}


__getattr__ = lazy_getattr(__name__, _WHERE)
