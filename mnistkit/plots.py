"""Plots for notebooks: a confusion matrix, a grid of misclassified digits, and the training curves.

Numbers come from numpy (``confusion_matrix``); the figures are matplotlib ``Figure`` objects built
without pyplot's global state, so they work under the Agg backend (papermill, CI) and display inline
as PNG when they are a cell's value (no trailing ``;``, which would hide them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import ArrayLike

from mnistkit.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_misclassified",
    "plot_training_curves",
    "figure_png",
    "accuracy",
]


class _Epoch(Protocol):
    """An ``EpochMetrics``, or anything with its ``epoch`` (the curves read ``loss``... with ``getattr``)."""

    @property
    def epoch(self) -> int: ...


def _labels(name: str, values: ArrayLike, n_classes: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of digits, got shape {list(a.shape)}", field=name)
    if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= n_classes):
        raise DataError(f"{name} must hold integers 0-{n_classes - 1}", field=name)
    return a.astype(np.int64)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int = 10) -> np.ndarray:
    """``cm[i, j]`` = how many digits labelled ``i`` were predicted ``j``."""
    t, p = _labels("y_true", y_true, n_classes), _labels("y_pred", y_pred, n_classes)
    if t.shape != p.shape:
        raise DataError(f"y_true has {t.size} labels but y_pred has {p.size}", field="y_pred", value=p.size)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    cm = confusion_matrix(y_true, y_pred)
    return float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        """A Figure that Jupyter shows as a PNG when it is a cell's value, with or without pyplot loaded."""

        def _repr_png_(self) -> bytes:
            import io

            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=90)
            return buf.getvalue()

    return NotebookFigure(figsize=size, layout="constrained")


def plot_confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, normalize: bool = False, title: str | None = None
) -> Figure:
    """A heat map of the confusion matrix with counts (or row fractions) written in each cell."""
    cm = confusion_matrix(y_true, y_pred)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    fig = _figure((6, 5.2))
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {acc:.2%}, n={cm.sum()})")
    top = shown.max() if shown.size else 0
    for i in range(10):
        for j in range(10):
            if cm[i, j]:
                text = f"{shown[i, j]:.2f}" if normalize else str(cm[i, j])
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if shown[i, j] > top / 2 else "black",
                )
    return fig


def plot_misclassified(
    images: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    probs: ArrayLike | None = None,
    n: int = 16,
    *,
    columns: int = 8,
) -> Figure:
    """Up to ``n`` misclassified digits, most confident mistakes first, titled ``true→pred (p)``."""
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"images must be [n, 28, 28], got {list(x.shape)}", field="images")
    t, p = _labels("y_true", y_true, 10), _labels("y_pred", y_pred, 10)
    if not (len(x) == t.size == p.size):
        raise DataError(f"images ({len(x)}), y_true ({t.size}) and y_pred ({p.size}) differ in length", field="images")
    wrong = np.flatnonzero(t != p)
    confidence: np.ndarray
    if probs is not None:
        pr = np.asarray(probs, np.float64)
        if pr.shape != (len(x), 10):
            raise DataError(f"probs must be [{len(x)}, 10], got {list(pr.shape)}", field="probs")
        confidence = pr[np.arange(len(x)), p]
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    else:
        confidence = np.full(len(x), np.nan)
    wrong = wrong[:n]
    cols = max(1, min(columns, len(wrong) or 1))
    rows = max(1, -(-len(wrong) // cols))
    fig = _figure((1.3 * cols, 1.5 * rows))
    if not len(wrong):
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified digits", ha="center", va="center")
        return fig
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(x[i], cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        c = confidence[i]
        ax.set_title(f"{t[i]}→{p[i]}" + ("" if np.isnan(c) else f" ({c:.2f})"), fontsize=9)
    return fig


def plot_training_curves(metrics: Sequence[_Epoch], *, title: str = "") -> Figure:
    """Loss and accuracy per epoch (train, and validation where reported), side by side.

    ``metrics`` are ``EpochMetrics`` (anything with ``epoch``, ``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``); the training monitor redraws this after every epoch.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [m.epoch for m in metrics]

    def series(name: str) -> list[float]:
        return [np.nan if getattr(m, name, None) is None else float(getattr(m, name)) for m in metrics]

    fig = _figure((7.5, 2.6))
    for k, (what, ylabel) in enumerate((("loss", "loss"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, series(what), marker="o", label="train")
        ax.plot(epochs, series(f"val_{what}"), marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if epochs:
            ax.set_xlim(0.5, max(epochs) + 0.5)
            locator = ax.xaxis.get_major_locator()
            if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
                locator.set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """A figure as PNG bytes (for an ``ipywidgets.Image``), without pyplot's global state."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
