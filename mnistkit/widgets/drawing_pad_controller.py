"""The drawing pad's logic, as plain Python that tests (and papermill) drive without a browser.

``DrawingPad`` (``drawing_pad.py``, beside this file) is a thin anywidget view over ``DrawingPadController``:
a drawing (array, PNG or data URL) is framed as MNIST (``mnistkit.drawing``), sent to a predictor
(``mnistkit.predictor``: a ``ModelClient``, a function, a Keras model or an export dir) and kept as a
``PadResult``. Errors are kept as a sentence, never raised at the user. Nothing here imports anywidget,
TensorFlow or kubernetes at module import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.errors import ConfigError
from mnistkit.predictor import Predicted, Predictor, as_predictor
from mnistkit.widgets.job_monitor import describe_error

if TYPE_CHECKING:
    from mnistkit.drawing import Canvas

__all__ = ["Predicted", "PadResult", "Predictor", "DrawingPadController"]


@dataclass(frozen=True)
class PadResult:
    """What the pad shows after a drawing: the 28x28 the model saw and its answer (``label`` for test digits)."""

    image: np.ndarray
    prediction: Predicted
    label: int | None = None

    def __repr__(self) -> str:  # the 784 pixels would bury the answer in a notebook cell
        p = self.prediction
        label = "" if self.label is None else f", label={self.label}"
        return f"PadResult(digit={p.digit}, probability={max(p.probabilities):.3f}{label})"


class DrawingPadController:
    """Preprocess a drawing, ask a predictor, keep the result (or the error as a sentence).

    ``predict`` is anything ``mnistkit.predictor.as_predictor`` accepts (a function returning predictions or
    ``[b, 10]`` probabilities, a Keras model, an export dir); ``client`` is anything with ``.predict(images)``
    such as ``mnistkit.serving.client.ModelClient``.
    """

    def __init__(
        self,
        predict: object = None,
        *,
        client: object = None,
        test_set: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int | None = None,
    ) -> None:
        if predict is None and client is None:
            raise ConfigError(
                "give the drawing pad a predictor: predict=callable or client=ModelClient(...)", field="predict"
            )
        self.predict: Predictor = as_predictor(predict if predict is not None else client)
        self.result: PadResult | None = None
        self.error: str = ""
        self._test_set = test_set
        self._rng = np.random.default_rng(seed)
        self._listeners: list[Callable[[DrawingPadController], None]] = []

    def on_change(self, callback: Callable[[DrawingPadController], None]) -> None:
        """Call ``callback(controller)`` after every submit, clear and random digit."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in list(self._listeners):
            cb(self)

    def _classify(self, image: np.ndarray, label: int | None = None) -> PadResult | None:
        try:
            self.result = PadResult(image, self.predict(image[None])[0], label)
            self.error = ""
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.result, self.error = None, describe_error(exc)
        self._notify()
        return self.result

    def submit(self, canvas: Canvas) -> PadResult | None:
        """A drawing (array, PNG bytes or data URL) -> its result; ``None`` with ``error`` set on failure."""
        from mnistkit.drawing import preprocess

        try:
            image = preprocess(canvas)
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.result, self.error = None, describe_error(exc)
            self._notify()
            return None
        return self._classify(image)

    def clear(self) -> None:
        self.result, self.error = None, ""
        self._notify()

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The official test set when present, else the offline sample's test split (loaded once)."""
        if self._test_set is None:
            from mnistkit import data

            path = data.find_official_test_set()
            if path is not None:
                self._test_set = (
                    data.read_idx(path / data.FILES["test_images"]),
                    data.read_idx(path / data.FILES["test_labels"]),
                )
            else:
                ds = data.offline_sample()
                self._test_set = (ds.x_test, ds.y_test)
        return self._test_set

    def random_digit(self) -> PadResult | None:
        """Classify a random test digit (already MNIST-normalised, so it is sent as is), like the seed's client."""
        try:
            x, y = self.test_set()
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.result, self.error = None, describe_error(exc)
            self._notify()
            return None
        i = int(self._rng.integers(len(x)))
        return self._classify(x[i].astype(np.float32) / 255.0, int(y[i]))
