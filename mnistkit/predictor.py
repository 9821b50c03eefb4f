"""Turn anything that predicts into one predictor: ``images[b, 28, 28] float32 -> list[Predicted]``.

The one place that knows what a "model" may be wherever mnistkit asks for one (the drawing pad, the
workshop's score and checks):

* a function: ``images -> `` predictions (objects with ``.digit`` and ``.probabilities``, such as
  ``ModelClient.predict``'s) or a ``[b, 10]`` probability array (a NumPy array or a tensor);
* a Keras model (asked with ``predict(images, verbose=0)``, so a notebook cell stays quiet);
* anything with ``.predict(images)``, such as ``mnistkit.serving.client.ModelClient`` (served over gRPC or REST);
* an export dir: a SavedModel, or a base dir of numbered versions (the newest is run in this process).

Anything else is a ``ServingError`` naming the value. Light at import: TensorFlow is imported only to
run a SavedModel.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mnistkit._types import UserValue
from mnistkit.errors import ServingError

__all__ = [
    "Predicted",
    "Predictor",
    "PredictFn",
    "as_predictor",
    "predict_function",
    "to_predictions",
    "to_digits",
    "saved_model_predictor",
]

PredictFn = Callable[[np.ndarray], UserValue]  # returns what the model returns: to_predictions/to_digits read it
ACCEPTED = "a function, a Keras model, a ModelClient (anything with .predict) or an export dir"


@dataclass(frozen=True)
class Predicted:
    """One prediction (the serving client's ``Prediction`` has the same fields)."""

    digit: int
    probabilities: tuple[float, ...]
    model_version: int = 0


class Predictor(Protocol):
    def __call__(self, images: np.ndarray, /) -> Sequence[Predicted]: ...


def predict_function(model: object) -> PredictFn:
    """``model`` (see the module's list) -> the function that asks it, returning what it returns."""
    if isinstance(model, (str, os.PathLike)):
        if str(model).startswith("s3://"):
            raise ServingError(
                f"cannot predict with {str(model)!r} in S3: download the export first "
                "(mnistkit.s3.download_prefix) or serve it and pass a ModelClient",
                field="model",
                value=str(model),
            )
        return saved_model_predictor(model)
    predict = getattr(model, "predict", None)
    if callable(predict):
        if hasattr(model, "layers"):  # a Keras model: its quiet predict, not __call__ (a tensor, no progress bar)
            return lambda images: predict(images, verbose=0)
        method: PredictFn = predict
        return method
    if callable(model):
        return model
    raise ServingError(
        f"cannot predict with {reprlib.repr(model)} (a {type(model).__name__}): pass {ACCEPTED}",
        field="model",
        value=type(model).__name__,
    )


def _array(raw: UserValue) -> np.ndarray | None:
    """``raw`` as an array when it is one (NumPy, or a tensor with ``.numpy()``), else None."""
    if isinstance(raw, np.ndarray):
        return raw
    if hasattr(raw, "numpy") and not isinstance(raw, (list, tuple)):
        return np.asarray(raw.numpy())
    return None


def to_predictions(raw: UserValue, n: int) -> list[Predicted]:
    """What a predictor returned for ``n`` images -> ``n`` predictions with their ten probabilities."""
    array = _array(raw)
    if array is not None:
        if array.shape != (n, 10):
            raise ServingError(f"the predictor returned shape {list(array.shape)}, expected [{n}, 10]", field="predict")
        probs = array.astype(np.float64)
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p)) for p in probs]
    out = []
    for item in raw:
        probabilities = tuple(float(v) for v in getattr(item, "probabilities", ()))
        if len(probabilities) != 10:
            raise ServingError(
                f"the predictor returned {len(probabilities)} probabilities, expected 10", field="predict"
            )
        out.append(Predicted(int(item.digit), probabilities, int(getattr(item, "model_version", 0) or 0)))
    if len(out) != n:
        raise ServingError(f"the predictor returned {len(out)} predictions for {n} images", field="predict")
    return out


def to_digits(raw: UserValue, n: int) -> np.ndarray:
    """What a predictor returned for ``n`` images -> ``n`` digits: from ``[n, 10]`` probabilities, ``[n]``
    digits, or predictions with ``.digit`` (the probabilities may be missing here)."""
    array = _array(raw)
    if array is not None and array.ndim == 2:
        digits = array.argmax(axis=1)
    elif array is not None:
        digits = array.reshape(-1).astype(int)
    else:
        digits = np.asarray([int(getattr(p, "digit", p)) for p in raw], dtype=int)
    if digits.shape != (n,):
        raise ServingError(f"the model returned {digits.size} answers for {n} images", field="model")
    return digits


def as_predictor(model: object) -> Callable[[np.ndarray], list[Predicted]]:
    """``model`` (see the module's list) -> ``images[b, 28, 28] -> list[Predicted]`` (float32 images)."""
    fn = predict_function(model)

    def predict(images: np.ndarray) -> list[Predicted]:
        batch = np.asarray(images, np.float32)
        return to_predictions(fn(batch), len(batch))

    return predict


def saved_model_predictor(path: str | os.PathLike[str]) -> Callable[[np.ndarray], list[Predicted]]:
    """A predictor that runs an exported SavedModel in this process (no server): for quick notebook checks.

    ``path`` is a SavedModel directory or a base directory of numbered versions (the newest is used).
    """
    from mnistkit.versions import resolve_export

    found = resolve_export(path)
    if found is None:
        raise ServingError(
            f"{path} holds no SavedModel (no saved_model.pb, no numbered versions)", field="path", value=str(path)
        )
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    base, version = found
    fn = tf.saved_model.load(str(base)).signatures["serving_default"]

    def predict(images: np.ndarray) -> list[Predicted]:
        probs = fn(x=tf.constant(np.asarray(images, np.float32)))["predictions"].numpy()
        return [Predicted(int(p.argmax()), tuple(float(v) for v in p), version) for p in probs]

    return predict
