"""Workshop exercises and the drawing-pad score: the checks fail on the usual mistakes, with hints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mnistkit.data import Dataset
from mnistkit.drawing import naive_resize, preprocess
from mnistkit.errors import ServingError
from mnistkit.predictor import as_predictor
from mnistkit.workshop.digits import (
    DigitSet,
    drawing_pad_score,
    fixed_digit_set,
    offline_dataset,
)
from mnistkit.workshop.exercises import (
    CheckResult,
    check_data,
    check_model,
    check_prediction,
    check_preprocess,
    report,
    run_all,
)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return offline_dataset()  # offline_sample(), parsed once per process


@pytest.fixture(scope="module")
def digits() -> DigitSet:
    return fixed_digit_set()


@pytest.fixture(scope="module")
def centroid_probs(ds: Dataset) -> Any:
    """A nearest-centroid classifier (~80% on MNIST): a real but TensorFlow-free model."""
    x = ds.x_train.reshape(len(ds.x_train), -1) / 255.0
    centres = np.stack([x[ds.y_train == k].mean(axis=0) for k in range(10)])

    def probs(images: np.ndarray) -> np.ndarray:
        d = ((np.asarray(images).reshape(len(images), -1)[:, None, :] - centres[None]) ** 2).sum(-1)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)

    return probs


# ------------------------------------------------------------------------------------------- digit set


def test_fixed_digit_set_is_deterministic_balanced_and_mnist_like(digits: DigitSet, ds: Dataset) -> None:
    assert len(digits) == 50 and digits.id == "offline-50-s20180808"
    assert np.bincount(digits.labels, minlength=10).tolist() == [5] * 10
    assert digits.canvases.shape == (50, 280, 280) and digits.canvases.dtype == np.uint8
    assert digits.images.shape == (50, 28, 28) and 0.0 <= digits.images.min() and digits.images.max() <= 1.0
    # Drawn like on the pad: dark ink on white paper, at different sizes and places.
    assert (digits.canvases[:, 0, :] == 255).mean() > 0.95
    ink_rows = [np.flatnonzero((c < 128).any(axis=1)) for c in digits.canvases]
    sizes = [r[-1] - r[0] for r in ink_rows]
    tops = [r[0] for r in ink_rows]
    assert max(sizes) > 2 * min(sizes) and max(tops) - min(tops) > 60
    # Built again from scratch: the same pixels (the cache is not what makes it equal).
    from mnistkit.workshop import digits as module

    again = module._build.__wrapped__("offline", 5, module.SEED)
    assert np.array_equal(again.canvases, digits.canvases) and np.array_equal(again.labels, digits.labels)
    other = module._build.__wrapped__("offline", 5, 1)
    assert not np.array_equal(other.canvases, digits.canvases)
    # Held out: none of the 50 is one of the offline sample's training digits (the workshop trains on those).
    assert np.array_equal(ds.y_test[digits.indices], digits.labels) and len(set(digits.indices.tolist())) == 50
    train = {x.tobytes() for x in ds.x_train}
    assert not any(ds.x_test[i].tobytes() in train for i in digits.indices)


def test_drawing_pad_score_accepts_models_clients_and_functions(digits: DigitSet, centroid_probs: Any) -> None:
    score = drawing_pad_score(centroid_probs, digits)
    assert 0.5 <= score < 1.0  # a real classifier, not perfect

    oracle = {digits.images[i].tobytes(): int(digits.labels[i]) for i in range(len(digits))}

    class Client:  # what ModelClient.predict returns: objects with .digit
        def predict(self, images: np.ndarray) -> list[Any]:
            return [type("P", (), {"digit": oracle[im.astype(np.float32).tobytes()]})() for im in images]

    assert drawing_pad_score(Client(), digits) == 1.0
    assert drawing_pad_score(lambda images: np.full(len(images), 3), digits) == pytest.approx(0.1)
    with pytest.raises(ServingError, match="cannot predict"):
        as_predictor(42)


# ----------------------------------------------------------------------------------------------- data


def test_check_data_passes_scaled_data_and_explains_mistakes(ds: Dataset) -> None:
    assert check_data(ds.x_train / 255.0, ds.y_train).passed
    assert check_data((ds.x_test / 255.0, ds.y_test)).passed
    ok = check_data(ds)
    assert ok.passed and "4000 training" in ok.message and "255" in ok.hint
    cases = {
        "divide by 255": check_data(ds.x_train, ds.y_train),
        "reshape": check_data(ds.x_train.reshape(-1, 784) / 255.0),
        "1.0 - x": check_data(1.0 - ds.x_train / 255.0),
        "argmax": check_data(ds.x_train / 255.0, np.eye(10)[ds.y_train]),
        "same split": check_data(ds.x_train / 255.0, ds.y_test),
        "stratified": check_data(ds.x_train[ds.y_train < 8] / 255.0, ds.y_train[ds.y_train < 8]),
        "mean": check_data((ds.x_train / 255.0 - 0.13) / 0.3),
        "raw / 255.0": check_data(ds.x_train / 127.5),
        "NaN": check_data(np.full((2, 28, 28), np.nan)),
    }
    for hint, result in cases.items():
        assert not result.passed, hint
        assert result.name == "data"
        assert hint in result.hint + result.message, (hint, result)
    assert "0-255" in cases["divide by 255"].message


# ---------------------------------------------------------------------------------------------- model


def test_check_model_scores_and_diagnoses(digits: DigitSet, centroid_probs: Any) -> None:
    good = check_model(centroid_probs, digits)
    assert good.passed and "drawing-pad score" in good.message and "/50" in good.message

    class KerasLike:  # has .layers and predict(x, verbose=0), like a tf-keras model
        layers = ()

        def predict(self, images: np.ndarray, verbose: int = 1) -> np.ndarray:
            assert verbose == 0
            return centroid_probs(images)

    assert check_model(KerasLike(), digits).passed
    logits = check_model(lambda images: np.log(centroid_probs(images) + 1e-9), digits)
    assert not logits.passed and "softmax" in logits.hint
    constant = check_model(lambda images: np.tile(np.eye(10)[3], (len(images), 1)), digits)
    assert not constant.passed and "answers 3" in constant.message and "learning rate" in constant.hint
    rng = np.random.default_rng(0)
    weak = check_model(lambda images: np.eye(10)[rng.integers(0, 10, len(images))], digits)
    assert not weak.passed and "train longer" in weak.hint
    shape = check_model(lambda images: np.ones((len(images), 2)) / 2, digits)
    assert not shape.passed and "Dense(10)" in shape.hint
    crash = check_model(lambda images: 1 / 0, digits)
    assert not crash.passed and "ZeroDivisionError" in crash.message


def test_check_model_on_an_export_dir_without_a_model(tmp_path: Any) -> None:
    result = check_model(str(tmp_path))
    assert not result.passed and "no SavedModel" in result.message and "export" in result.hint


# ----------------------------------------------------------------------------------------- prediction


def test_check_prediction(ds: Dataset, centroid_probs: Any) -> None:
    from mnistkit.serving.client import Prediction

    probs = centroid_probs(ds.x_test[:8] / 255.0)
    preds = [Prediction(int(p.argmax()), tuple(float(v) for v in p), 1) for p in probs]
    assert check_prediction(preds).passed
    assert check_prediction(probs).passed
    right = check_prediction(preds[:1], [preds[0].digit])
    assert right.passed and "all 1 right" in right.message
    wrong = check_prediction(preds[:1], [(preds[0].digit + 1) % 10])
    assert not wrong.passed and "was read as" in wrong.message and "preprocess" in wrong.hint
    liar = Prediction((preds[0].digit + 1) % 10, preds[0].probabilities, 1)
    assert "argmax" in check_prediction([liar]).hint
    assert "softmax" in check_prediction(np.ones((2, 10))).hint
    assert not check_prediction([]).passed
    assert not check_prediction(["7"]).passed


# ----------------------------------------------------------------------------------------- preprocess


def test_check_preprocess_passes_the_real_one_and_explains_the_naive_ones(digits: DigitSet) -> None:
    assert check_preprocess(preprocess, digits).passed
    naive = check_preprocess(naive_resize, digits)
    assert not naive.passed and "20x20" in naive.hint
    inverted = check_preprocess(lambda c: 1.0 - preprocess(c), digits)
    assert not inverted.passed and "invert" in inverted.hint

    def off_centre(canvas: np.ndarray) -> np.ndarray:  # right size, but pasted 3 px down and right
        out = np.zeros((28, 28), np.float32)
        out[3:, 3:] = preprocess(canvas)[:-3, :-3]
        return out

    shifted = check_preprocess(off_centre, digits)
    assert not shifted.passed and "centre of mass" in shifted.hint
    scaled = check_preprocess(lambda c: preprocess(c) * 255, digits)
    assert not scaled.passed and "255" in scaled.hint
    assert "[28, 28]" in check_preprocess(lambda c: np.zeros((10, 10)), digits).hint


def test_run_all_and_report(ds: Dataset, centroid_probs: Any) -> None:
    results = run_all(data=ds.x_train, labels=ds.y_train, preprocess=preprocess, model=centroid_probs)
    assert [r.name for r in results] == ["data", "preprocess", "model"]
    text = report(results)
    assert "FAIL data" in text and "hint: divide by 255" in text and text.endswith("2/3 checks passed")
    html = results[0]._repr_html_()
    assert "✗" in html and "divide by 255" in html
    assert not CheckResult(False, "m", "h", "x") and CheckResult(True, "m")


# -------------------------------------------------------------------------------- a real exported model


@pytest.mark.slow
def test_check_model_and_score_on_a_real_export(tmp_path: Any, ds: Dataset, digits: DigitSet) -> None:
    """A tiny model trained for a few steps, exported with the serving contract: the export-dir path works
    end to end (signature check, in-process SavedModel, score recorded); a broken export is explained."""
    import tensorflow as tf

    from trainer.export import export_saved_model
    from trainer.model import build_model

    tf.keras.utils.set_random_seed(0)
    model = build_model("small", 0.01)
    model.fit(ds.x_train / 255.0, ds.y_train.astype("int64"), epochs=2, batch_size=64, verbose=0)
    base = tmp_path / "export"
    export_saved_model(model, base / "1")
    result = check_model(str(base), digits)
    score = drawing_pad_score(str(base), digits)
    assert f"drawing-pad score {score:.2f}" in result.message
    assert result.passed == (score >= 0.5) and score > 0.3  # learned something, far above chance (0.1)
    assert check_model(model, digits).message == result.message  # the Keras model itself reads them the same

    # An export without the serving contract: named input "images" instead of "x".
    class Wrong(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
        def serve(self, images: Any) -> dict[str, Any]:
            return {"predictions": tf.zeros([tf.shape(images)[0], 10])}

    wrong = Wrong()
    tf.saved_model.save(wrong, str(tmp_path / "wrong"), signatures={"serving_default": wrong.serve})
    bad = check_model(str(tmp_path / "wrong"), digits)
    assert not bad.passed and "'x'" in bad.message and "export_saved_model" in bad.hint
