"""``mnistkit.predictor``: the one owner of "turn anything into a predictor", used by the pad and the workshop."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mnistkit.errors import ServingError
from mnistkit.predictor import Predicted, as_predictor, predict_function, saved_model_predictor, to_digits
from mnistkit.widgets.drawing_pad_controller import DrawingPadController
from mnistkit.workshop.digits import drawing_pad_score, fixed_digit_set
from mnistkit.workshop.exercises import check_model


@dataclass(frozen=True)
class _Prediction:  # what ModelClient.predict returns
    digit: int
    probabilities: tuple[float, ...]
    model_version: int = 7


def _probs(images: np.ndarray, digit: int = 4) -> np.ndarray:
    return np.tile(np.eye(10, dtype=np.float32)[digit], (len(images), 1))


class _KerasLike:  # .layers and predict(x, verbose=...): a Keras model is asked quietly
    layers = ()

    def __init__(self) -> None:
        self.verbose: list[int] = []

    def predict(self, images: np.ndarray, verbose: int = 1) -> np.ndarray:
        self.verbose.append(verbose)
        return _probs(images)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        raise AssertionError("a Keras model is asked with predict(verbose=0), not called")


class _Client:
    def predict(self, images: np.ndarray) -> list[_Prediction]:
        return [_Prediction(3, tuple(np.eye(10)[3])) for _ in images]


def test_every_kind_of_model_becomes_the_same_predictor() -> None:
    images = np.zeros((2, 28, 28), np.float32)
    keras = _KerasLike()
    assert [p.digit for p in as_predictor(keras)(images)] == [4, 4] and keras.verbose == [0]
    assert as_predictor(_Client())(images) == [Predicted(3, tuple(np.eye(10)[3]), 7)] * 2
    assert [p.digit for p in as_predictor(lambda x: _probs(x, 9))(images)] == [9, 9]
    with pytest.raises(ServingError, match=r"expected \[2, 10\]"):
        as_predictor(lambda x: np.zeros((len(x), 3)))(images)
    assert to_digits(np.array([1, 2]), 2).tolist() == [1, 2]
    assert to_digits([type("P", (), {"digit": 5})()], 1).tolist() == [5]
    with pytest.raises(ServingError, match="3 answers for 2 images"):
        to_digits(np.array([1, 2, 3]), 2)


@pytest.mark.parametrize("bad", [42, None, {"not": "a model"}, ["a", "list"]], ids=repr)
def test_anything_else_is_a_clear_error_naming_the_value(bad: object) -> None:
    with pytest.raises(ServingError, match="cannot predict with") as info:
        predict_function(bad)
    assert repr(bad)[:10] in str(info.value) and "ModelClient" in str(info.value)
    assert info.value.field == "model"


def test_the_pad_and_the_workshop_accept_the_same_models() -> None:
    """The drawing pad takes a Keras model and an export dir as the workshop does (one owner, one list)."""
    digits = fixed_digit_set()
    keras = _KerasLike()
    pad = DrawingPadController(keras)
    result = pad.submit(digits.canvases[0])
    assert result is not None and result.prediction.digit == 4 and keras.verbose == [0]
    assert drawing_pad_score(keras, digits) == pytest.approx(0.1)
    # The same refusal, with the same sentence, from both, at once (not later as a failed drawing).
    with pytest.raises(ServingError, match="cannot predict with 42") as pad_error:
        DrawingPadController(42)
    with pytest.raises(ServingError, match="cannot predict with 42") as score_error:
        drawing_pad_score(42, digits)
    assert str(pad_error.value) == str(score_error.value)
    assert "cannot predict with 42" in check_model(42, digits).message


def test_export_dirs_are_checked_before_tensorflow_loads(tmp_path: Path) -> None:
    with pytest.raises(ServingError, match="holds no SavedModel"):
        saved_model_predictor(tmp_path)
    with pytest.raises(ServingError, match="holds no SavedModel"):
        DrawingPadController(str(tmp_path))
    with pytest.raises(ServingError, match="download the export first"):
        predict_function("s3://mnist/models/job/export/mnist")


def test_import_is_light() -> None:
    code = (
        "import sys, mnistkit.predictor, mnistkit.widgets.drawing_pad_controller, mnistkit.workshop.digits; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'anywidget', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
