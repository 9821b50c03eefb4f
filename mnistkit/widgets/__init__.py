"""Notebook panels: the drawing pad, the S3 panel and the training panel with its monitor.

Each panel is a thin ipywidgets/anywidget view over a plain-Python controller in
``mnistkit.widgets.controllers`` (which tests and papermill drive without a browser). Panels load
lazily: ``from mnistkit.widgets import DrawingPad`` imports anywidget only then.
"""

from __future__ import annotations

from mnistkit._lazy import lazy_getattr

__all__ = ["DrawingPad", "S3Panel", "TrainingPanel", "TrainingMonitor", "saved_model_predictor"]

_WHERE = {
    "DrawingPad": "mnistkit.widgets.drawing_pad",
    "S3Panel": "mnistkit.widgets.s3_panel",
    "TrainingPanel": "mnistkit.widgets.training_panel",
    "TrainingMonitor": "mnistkit.widgets.training_panel",
    "saved_model_predictor": "mnistkit.widgets.controllers",
}


__getattr__ = lazy_getattr(__name__, _WHERE)
