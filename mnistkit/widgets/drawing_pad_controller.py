"""The drawing pad's logic, as plain Python that tests (and papermill) drive without a browser.

``DrawingPad`` (``drawing_pad.py``, beside this file) is a thin anywidget view over ``DrawingPadController``:
a drawing (array, PNG or data URL) is framed as MNIST (``mnistkit.drawing``), sent to a predictor (a
``ModelClient`` or a function) and kept as a ``PadResult``. Errors are kept as a sentence, never raised at
the user. Nothing here imports anywidget, TensorFlow or kubernetes at module import time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mnistkit.errors import ConfigError, ServingError
from mnistkit.widgets.job_monitor import describe_error

if TYPE_CHECKING:
    pass

__all__ = ["Predicted", "PadResult", "Predictor", "DrawingPadController", "saved_model_predictor"]


@dataclass(frozen=True)
class Predicted:
    """One prediction as the pad shows it (the serving client's ``Prediction`` has the same fields)."""

    digit: int
    probabilities: tuple[float, ...]
    model_version: int = 0


class Predictor(Protocol):
    def __call__(self, images: np.ndarray) -> Sequence[Any]: ...


def _as_predictions(raw: Any, n: int) -> list[Predicted]:
    """Accept what predictors return: ``Prediction`` objects, or a ``[b, 10]`` probability array (Keras)."""
    if isinstance(raw, np.ndarray) or (hasattr(raw, "numpy") and not isinstance(raw, (list, tuple))):
        array = np.asarray(raw.numpy() if hasattr(raw, "numpy") else raw, dtype=np.float64)
        if array.ndim != 2 or array.shape != (n, 10):
            raise ServingError(f"the predictor returned shape {list(array.shape)}, expected [{n}, 10]", field="predict")
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p)) for p in array]
    out = []
    for item in raw:
        probs = tuple(float(v) for v in getattr(item, "probabilities", ()))
        if len(probs) != 10:
            raise ServingError(f"the predictor returned {len(probs)} probabilities, expected 10", field="predict")
        out.append(Predicted(int(item.digit), probs, int(getattr(item, "model_version", 0) or 0)))
    if len(out) != n:
        raise ServingError(f"the predictor returned {len(out)} predictions for {n} images", field="predict")
    return out


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

    ``predict`` is any callable ``images[b, 28, 28] float32 -> list[Prediction]`` (or a ``[b, 10]``
    array); ``client`` is anything with ``.predict(images)`` such as ``mnistkit.serving.client.ModelClient``.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], Any] | None = None,
        *,
        client: Any = None,
        test_set: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int | None = None,
    ) -> None:
        if predict is None and client is not None:
            predict = client.predict
        if predict is None:
            raise ConfigError(
                "give the drawing pad a predictor: predict=callable or client=ModelClient(...)", field="predict"
            )
        self.predict = predict
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
            raw = self.predict(image[None].astype(np.float32))
            self.result = PadResult(image, _as_predictions(raw, 1)[0], label)
            self.error = ""
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.result, self.error = None, describe_error(exc)
        self._notify()
        return self.result

    def submit(self, canvas: Any) -> PadResult | None:
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


def saved_model_predictor(path: str | os.PathLike[str]) -> Callable[[np.ndarray], list[Predicted]]:
    """A predictor that runs an exported SavedModel in this process (no server): for quick notebook checks.

    ``path`` is a SavedModel directory or a base directory of numbered versions (the newest is used).
    """
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()

    from mnistkit.versions import resolve_export

    found = resolve_export(path)
    if found is None:
        raise ServingError(
            f"{path} holds no SavedModel (no saved_model.pb, no numbered versions)", field="path", value=str(path)
        )
    base, version = found
    fn = tf.saved_model.load(str(base)).signatures["serving_default"]

    def predict(images: np.ndarray) -> list[Predicted]:
        probs = fn(x=tf.constant(np.asarray(images, np.float32)))["predictions"].numpy()
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p), version) for p in probs]

    return predict
