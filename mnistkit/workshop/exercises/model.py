"""``check_model`` (a model reads the fixed drawn digits; an export keeps the serving contract) and
``check_prediction`` (a server's answers are well-formed, and right)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.workshop.exercises.result import PASS_SCORE, CheckResult, fail, guard, ok

if TYPE_CHECKING:
    from mnistkit._types import UserValue
    from mnistkit.workshop.digits import DigitSet

__all__ = ["check_model", "check_prediction"]


def _signature_problem(path: Path) -> str:
    """'' when the SavedModel keeps the serving contract, else what is wrong (loads TensorFlow)."""
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()

    loaded = tf.saved_model.load(str(path))
    sigs = loaded.signatures
    if "serving_default" not in sigs:
        return f"it has no 'serving_default' signature (it has {sorted(sigs)})"
    fn = sigs["serving_default"]
    inputs = fn.structured_input_signature[1]
    if "x" not in inputs:
        return f"its input is named {sorted(inputs)}, not 'x'"
    spec = inputs["x"]
    if spec.dtype != tf.float32 or list(spec.shape)[1:] != [28, 28]:
        return f"its input x is {spec.dtype.name} {spec.shape}, expected float32 [None, 28, 28]"
    outputs = set(fn.structured_outputs)
    if not {"classes", "predictions"} <= outputs:
        return f"its outputs are {sorted(outputs)}, expected 'classes' and 'predictions'"
    return ""


def _export_version(path: Path) -> Path | None:
    from mnistkit.versions import resolve_export

    found = resolve_export(path)
    return found[0] if found else None


def check_model(model_or_export_dir: object, digits: DigitSet | None = None) -> CheckResult:
    """A trained model (Keras, an export dir, a ``ModelClient`` or a function) reads the fixed drawn digits.

    For an export dir the serving contract is checked too (``serving_default``, input ``x`` float32
    [None, 28, 28], outputs ``classes`` and ``predictions``). Passes at a drawing-pad score >= 0.5.
    """
    name = "model"

    def run() -> CheckResult:
        from mnistkit.predictor import predict_function, to_digits
        from mnistkit.workshop.digits import fixed_digit_set

        target = model_or_export_dir
        if isinstance(target, str) and target.startswith("s3://"):
            return fail(
                name,
                f"{target} is in S3; the check needs the model here",
                "pass the local export dir, or serve it and pass a ModelClient",
            )
        if isinstance(target, (str, Path)):
            path = Path(target)
            version = _export_version(path)
            if version is None:
                return fail(
                    name,
                    f"{path} holds no SavedModel (no saved_model.pb, no numbered version dirs)",
                    "export the model first: trainer.export.export_saved_model(model, path)",
                )
            problem = _signature_problem(version)
            if problem:
                return fail(
                    name,
                    f"the export at {version} breaks the serving contract: {problem}",
                    "export with trainer.export.export_saved_model so TF Serving and the pad can call it",
                )
            target = version
        ds = digits or fixed_digit_set()
        images = np.asarray(ds.images, np.float32)
        raw = predict_function(target)(images)
        if hasattr(raw, "numpy"):
            raw = raw.numpy()
        if isinstance(raw, np.ndarray) and raw.ndim == 2:
            if raw.shape != (len(ds), 10):
                return fail(
                    name,
                    f"the model returned shape {list(raw.shape)} for {len(ds)} images",
                    "the last layer should be Dense(10): one output per digit",
                )
            sums = raw.sum(axis=1)
            if raw.min() < -1e-6 or not np.allclose(sums, 1.0, atol=1e-3):
                return fail(
                    name,
                    "the outputs are not probabilities (they don't sum to 1)",
                    "end the model with a softmax: Dense(10, activation='softmax')",
                )
        answers = to_digits(raw, len(ds))
        labels = np.asarray(ds.labels)
        score = float((answers == labels).mean())
        right = int((answers == labels).sum())
        msg = f"drawing-pad score {score:.2f} ({right}/{len(labels)} drawn digits read right)"
        values, counts = np.unique(answers, return_counts=True)
        if counts.max() >= 0.9 * len(answers):
            return fail(
                name,
                f"{msg}; it answers {int(values[counts.argmax()])} for almost everything",
                "the model did not learn: train more steps, or lower the learning rate (try 0.01)",
            )
        if score < PASS_SCORE:
            wrong = np.flatnonzero(answers != labels)
            worst = np.bincount(labels[wrong], minlength=10).argmax() if len(wrong) else 0
            return fail(
                name,
                f"{msg}; it struggles most with {int(worst)}s",
                "train longer (more steps) or try model_type='cnn'",
            )
        hint = "" if score >= 0.9 else "good; a CNN and more steps usually read drawn digits better"
        return ok(name, msg, hint)

    return guard(name, run)


def check_prediction(predictions: UserValue, labels: object = None) -> CheckResult:
    """Answers from a server or model: ``Prediction`` objects (``.digit``, ``.probabilities``) or ``[b, 10]``
    probabilities; with ``labels``, also whether they are right."""
    name = "prediction"

    def run() -> CheckResult:
        items = predictions
        if hasattr(items, "numpy"):
            items = items.numpy()
        if isinstance(items, np.ndarray):
            probs = items.reshape(1, -1) if items.ndim == 1 else items
            digits = probs.argmax(axis=1) if probs.ndim == 2 and probs.shape[1] == 10 else None
            if digits is None:
                return fail(name, f"got an array of shape {list(items.shape)}", "expected [b, 10] probabilities")
        else:
            if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
                items = [items]
            if not items:
                return fail(name, "no predictions", "send at least one image: client.predict(image)")
            if not all(hasattr(p, "digit") and hasattr(p, "probabilities") for p in items):
                return fail(
                    name,
                    f"got {type(items[0]).__name__}, not predictions",
                    "pass what ModelClient.predict returns (a list of Prediction)",
                )
            probs = np.asarray([list(p.probabilities) for p in items], np.float64)
            digits = np.asarray([int(p.digit) for p in items])
            if probs.ndim != 2 or probs.shape[1] != 10:
                return fail(name, "each prediction should have 10 probabilities", "the model's last layer has 10 units")
            if not np.array_equal(digits, probs.argmax(axis=1)):
                return fail(
                    name,
                    "a prediction's digit is not its most probable class",
                    "the digit should be probabilities.argmax()",
                )
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3) or probs.min() < -1e-6:
            return fail(name, "the probabilities don't sum to 1", "end the model with a softmax")
        confidence = float(np.mean(probs.max(axis=1)))
        if labels is None:
            return ok(
                name,
                f"{len(digits)} well-formed predictions: {digits[:10].tolist()} (mean confidence {confidence:.2f})",
            )
        y = np.atleast_1d(np.asarray(labels)).astype(int)
        if y.shape[0] != len(digits):
            return fail(name, f"{len(digits)} predictions but {y.shape[0]} labels", "one label per image sent")
        right = int((digits == y).sum())
        if right == len(y):
            return ok(name, f"all {len(y)} right (mean confidence {confidence:.2f})")
        first = int(np.flatnonzero(digits != y)[0])
        msg = f"{right}/{len(y)} right; e.g. a {y[first]} was read as {digits[first]}"
        hint = (
            "if the images were drawn, did they go through mnistkit.drawing.preprocess? "
            "otherwise train longer or try the CNN"
        )
        return CheckResult(right / len(y) >= PASS_SCORE, msg, hint, name)

    return guard(name, run)
