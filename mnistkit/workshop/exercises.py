"""Checks the workshop notebook calls after each exercise: pass/fail with a sentence and a hint.

Each check looks for the mistakes people actually make (pixels left at 0-255, a flattened ``[n, 784]``
array, one-hot labels, no softmax, dark-on-light drawings, digits not centred) and says how to fix
them, e.g. "your images are 0-255: divide by 255". Nothing here raises at the participant: a check
that cannot even run (wrong type, a model that crashes) fails with the error as its message.

A participant's results can be stored for the teacher with ``Workspace.record_check(result)``; the
instructor's leaderboard shows them as a grid (``Leaderboard.check_grid()``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CheckResult",
    "check_data",
    "check_model",
    "check_prediction",
    "check_preprocess",
    "run_all",
    "report",
    "PASS_SCORE",
]

PASS_SCORE = 0.5  # drawing-pad accuracy a first model should reach (chance is 0.1)


@dataclass(frozen=True)
class CheckResult:
    """``passed``; ``message`` says what was found; ``hint`` what to try next (empty when nothing to fix)."""

    passed: bool
    message: str
    hint: str = ""
    name: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{mark} {self.name}: {self.message}{hint}"

    def _repr_html_(self) -> str:
        colour, mark = ("#2d6a2d", "✓") if self.passed else ("#b00", "✗")
        hint = f"<br><i>hint:</i> {html.escape(self.hint)}" if self.hint else ""
        return (
            f"<div class='mnistkit-check'><b style='color:{colour}'>{mark} {html.escape(self.name)}</b>: "
            f"{html.escape(self.message)}{hint}</div>"
        )


def _fail(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(False, message, hint, name)


def _ok(name: str, message: str, hint: str = "") -> CheckResult:
    return CheckResult(True, message, hint, name)


def _guard(name: str, fn: Callable[[], CheckResult]) -> CheckResult:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the participant sees a sentence, the notebook keeps running
        return _fail(
            name,
            f"the check could not run: {type(exc).__name__}: {exc}",
            "read the error above; ask a helper if it is not about your code",
        )


# ------------------------------------------------------------------------------------------------ data


def _check_images(name: str, x: Any) -> CheckResult | None:
    """None when ``x`` looks like MNIST images ready for a model, else the failing result."""
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "fiub":
        return _fail(name, f"images have dtype {x.dtype}, not numbers", "load the images with mnistkit.data")
    if x.ndim == 2 and x.shape[1] == 784:
        return _fail(name, f"images are flat {list(x.shape)}", "reshape them to [n, 28, 28]: x.reshape(-1, 28, 28)")
    if x.ndim == 4 and x.shape[1:] == (28, 28, 1):
        return _fail(name, f"images have a channel axis {list(x.shape)}", "the model takes [n, 28, 28]: x[..., 0]")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        return _fail(name, f"images have shape {list(x.shape)}, expected [n, 28, 28]", "each image is 28x28 pixels")
    if x.shape[0] == 0:
        return _fail(name, "there are no images (0 of them)", "check the data directory you loaded")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        return _fail(name, "images contain NaN or Inf", "did you divide by something that can be 0?")
    lo, hi = float(xf.min()), float(xf.max())
    if lo < 0.0:
        return _fail(
            name,
            f"your images have negative values (from {lo:.2f}): standardised (mean subtracted) instead of scaled?",
            "the serving contract is [0, 1]: use x = raw / 255.0, without subtracting the mean",
        )
    if hi > 10.0:
        return _fail(
            name, f"your images are 0-{hi:g}: the model and the server expect [0, 1]", "divide by 255: x = x / 255.0"
        )
    if hi > 1.0:
        return _fail(
            name,
            f"your images go up to {hi:.2f}: the model and the server expect [0, 1]",
            "scale the raw pixels once: x = raw / 255.0",
        )
    if hi == 0.0:
        return _fail(name, "every pixel is 0", "did you divide twice, or integer-divide (//) by 255?")
    if float(xf.mean()) > 0.5:
        return _fail(
            name,
            f"your digits are dark on light (mean pixel {xf.mean():.2f})",
            "MNIST is white digits on black: x = 1.0 - x",
        )
    return None


def _check_labels(name: str, y: Any, n: int) -> CheckResult | None:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 10:
        return _fail(
            name, f"labels are one-hot {list(y.shape)}", "the model uses sparse labels (0-9): y = y.argmax(axis=1)"
        )
    if y.ndim != 1:
        return _fail(name, f"labels have shape {list(y.shape)}, expected [n]", "one digit 0-9 per image")
    if y.shape[0] != n:
        return _fail(name, f"{n} images but {y.shape[0]} labels", "images and labels must come from the same split")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        return _fail(name, "labels are not whole numbers", "labels are the digits 0-9")
    if y.size and (y.min() < 0 or y.max() > 9):
        return _fail(name, f"labels run from {y.min()} to {y.max()}", "labels are the digits 0-9")
    missing = sorted(set(range(10)) - set(np.unique(y).astype(int).tolist()))
    if missing:
        return _fail(
            name,
            f"digits {missing} never occur in the labels",
            "a head/tail split of sorted data drops digits: split stratified (mnistkit.data.offline_sample)",
        )
    return None


def check_data(data: Any, labels: Any = None) -> CheckResult:
    """Images (and labels) ready to train on: ``check_data(x_train, y_train)``, ``check_data((x, y))`` or a
    ``mnistkit.data.Dataset`` (raw uint8 by design: then the hint reminds you to scale)."""
    name = "data"

    def run() -> CheckResult:
        from mnistkit.data import Dataset

        if isinstance(data, Dataset):
            for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
                if len(y) == 0:
                    return _fail(name, f"the {split} split is empty", "load a data directory with both splits")
                bad = _check_labels(name, y, len(x))
                if bad is not None:
                    return bad
            return _ok(
                name,
                f"{len(data.y_train)} training and {len(data.y_test)} test images, all ten digits",
                "the Dataset holds raw 0-255 pixels: scale before training, x = ds.x_train / 255.0",
            )
        x, y = data if labels is None and isinstance(data, tuple) and len(data) == 2 else (data, labels)
        bad = _check_images(name, x)
        if bad is not None:
            return bad
        n = int(np.asarray(x).shape[0])
        if y is not None:
            bad = _check_labels(name, y, n)
            if bad is not None:
                return bad
        return _ok(name, f"{n} images of 28x28 in [0, 1]" + (" with labels 0-9" if y is not None else ""))

    return _guard(name, run)


# ----------------------------------------------------------------------------------------------- model


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


def check_model(model_or_export_dir: Any, digits: Any = None) -> CheckResult:
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
            return _fail(
                name,
                f"{target} is in S3; the check needs the model here",
                "pass the local export dir, or serve it and pass a ModelClient",
            )
        if isinstance(target, (str, Path)):
            path = Path(target)
            version = _export_version(path)
            if version is None:
                return _fail(
                    name,
                    f"{path} holds no SavedModel (no saved_model.pb, no numbered version dirs)",
                    "export the model first: trainer.export.export_saved_model(model, path)",
                )
            problem = _signature_problem(version)
            if problem:
                return _fail(
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
                return _fail(
                    name,
                    f"the model returned shape {list(raw.shape)} for {len(ds)} images",
                    "the last layer should be Dense(10): one output per digit",
                )
            sums = raw.sum(axis=1)
            if raw.min() < -1e-6 or not np.allclose(sums, 1.0, atol=1e-3):
                return _fail(
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
            return _fail(
                name,
                f"{msg}; it answers {int(values[counts.argmax()])} for almost everything",
                "the model did not learn: train more steps, or lower the learning rate (try 0.01)",
            )
        if score < PASS_SCORE:
            wrong = np.flatnonzero(answers != labels)
            worst = np.bincount(labels[wrong], minlength=10).argmax() if len(wrong) else 0
            return _fail(
                name,
                f"{msg}; it struggles most with {int(worst)}s",
                "train longer (more steps) or try model_type='cnn'",
            )
        hint = "" if score >= 0.9 else "good; a CNN and more steps usually read drawn digits better"
        return _ok(name, msg, hint)

    return _guard(name, run)


# ------------------------------------------------------------------------------------------ prediction


def check_prediction(predictions: Any, labels: Any = None) -> CheckResult:
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
                return _fail(name, f"got an array of shape {list(items.shape)}", "expected [b, 10] probabilities")
        else:
            if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
                items = [items]
            if not items:
                return _fail(name, "no predictions", "send at least one image: client.predict(image)")
            if not all(hasattr(p, "digit") and hasattr(p, "probabilities") for p in items):
                return _fail(
                    name,
                    f"got {type(items[0]).__name__}, not predictions",
                    "pass what ModelClient.predict returns (a list of Prediction)",
                )
            probs = np.asarray([list(p.probabilities) for p in items], np.float64)
            digits = np.asarray([int(p.digit) for p in items])
            if probs.ndim != 2 or probs.shape[1] != 10:
                return _fail(
                    name, "each prediction should have 10 probabilities", "the model's last layer has 10 units"
                )
            if not np.array_equal(digits, probs.argmax(axis=1)):
                return _fail(
                    name,
                    "a prediction's digit is not its most probable class",
                    "the digit should be probabilities.argmax()",
                )
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3) or probs.min() < -1e-6:
            return _fail(name, "the probabilities don't sum to 1", "end the model with a softmax")
        confidence = float(np.mean(probs.max(axis=1)))
        if labels is None:
            return _ok(
                name,
                f"{len(digits)} well-formed predictions: {digits[:10].tolist()} (mean confidence {confidence:.2f})",
            )
        y = np.atleast_1d(np.asarray(labels)).astype(int)
        if y.shape[0] != len(digits):
            return _fail(name, f"{len(digits)} predictions but {y.shape[0]} labels", "one label per image sent")
        right = int((digits == y).sum())
        if right == len(y):
            return _ok(name, f"all {len(y)} right (mean confidence {confidence:.2f})")
        first = int(np.flatnonzero(digits != y)[0])
        msg = f"{right}/{len(y)} right; e.g. a {y[first]} was read as {digits[first]}"
        hint = (
            "if the images were drawn, did they go through mnistkit.drawing.preprocess? "
            "otherwise train longer or try the CNN"
        )
        return CheckResult(right / len(y) >= PASS_SCORE, msg, hint, name)

    return _guard(name, run)


# ------------------------------------------------------------------------------------------ preprocess


def _props(image: np.ndarray) -> dict[str, float]:
    ink = image > 0.1
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if not ink.any():
        return {"ink": 0.0, "border": float(border.mean()), "side": 0.0, "dy": math.inf, "dx": math.inf}
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    total = float(image.sum())
    ys, xs = np.indices(image.shape)
    cy, cx = float((ys * image).sum() / total), float((xs * image).sum() / total)
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    return {
        "ink": float(ink.mean()),
        "border": float(border.mean()),
        "side": float(side),
        "dy": abs(cy - 14.0),
        "dx": abs(cx - 14.0),
    }


def check_preprocess(fn: Callable[[Any], Any], digits: Any = None, *, samples: int = 10) -> CheckResult:
    """Your ``preprocess(canvas)`` turns 280x280 drawings (dark ink on white) into what MNIST looks like:
    [28, 28] floats in [0, 1], white on black, the digit fitted into 20x20 and centred by centre of mass."""
    name = "preprocess"

    def run() -> CheckResult:
        from mnistkit.workshop.digits import fixed_digit_set

        ds = digits or fixed_digit_set()
        canvases = np.asarray(ds.canvases)[:samples]
        outs = []
        for canvas in canvases:
            out = fn(canvas.copy())
            out = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
            if out.shape == (1, 28, 28) or out.shape == (28, 28, 1):
                out = out.reshape(28, 28)
            if out.shape != (28, 28):
                return _fail(name, f"it returned shape {list(out.shape)}", "return one [28, 28] image per canvas")
            outs.append(out.astype(np.float64))
        stack = np.stack(outs)
        if not np.isfinite(stack).all():
            return _fail(name, "it returned NaN or Inf", "guard against dividing by an empty (0) maximum")
        if stack.max() > 1.0:
            return _fail(name, f"it returns 0-{stack.max():g}", "divide by 255: the model expects [0, 1]")
        if stack.min() < 0.0:
            return _fail(name, f"it returns negative values (from {stack.min():.2f})", "clip to [0, 1]")
        props = [_props(o) for o in outs]
        n = len(props)
        if sum(p["ink"] == 0.0 for p in props) > 0:
            return _fail(
                name, "some canvases came out empty", "is the ink kept? a drawn stroke is dark on a light page"
            )
        if sum(p["border"] > 0.3 for p in props) > n // 5:
            return _fail(
                name,
                "the digits come out dark on a light background",
                "MNIST is white ink on black: invert, ink = 1 - gray",
            )
        if sum(not 16 <= p["side"] <= 24 for p in props) > n // 5:
            sides = sorted(int(p["side"]) for p in props)
            return _fail(
                name,
                f"the digits are {sides[0]}-{sides[-1]} px across, MNIST's are about 20",
                "crop to the ink's bounding box, then fit it into a 20x20 box keeping the aspect ratio",
            )
        if sum(max(p["dy"], p["dx"]) > 2.0 for p in props) > n // 5:
            return _fail(
                name,
                "the digits are not centred",
                "paste the 20x20 digit into 28x28 so its centre of mass sits at the centre (14, 14)",
            )
        return _ok(name, f"{n} drawn digits look like MNIST: white on black, ~20 px, centred")

    return _guard(name, run)


# -------------------------------------------------------------------------------------------- together


def run_all(
    *,
    data: Any = None,
    labels: Any = None,
    model: Any = None,
    preprocess: Callable[[Any], Any] | None = None,
    predictions: Any = None,
    prediction_labels: Any = None,
) -> list[CheckResult]:
    """Every check whose input is given, in the workshop's order."""
    results = []
    if data is not None:
        results.append(check_data(data, labels))
    if preprocess is not None:
        results.append(check_preprocess(preprocess))
    if model is not None:
        results.append(check_model(model))
    if predictions is not None:
        results.append(check_prediction(predictions, prediction_labels))
    return results


def report(results: Sequence[CheckResult]) -> str:
    """One block per check, and a last line counting the passes."""
    lines = [str(r) for r in results]
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} checks passed")
    return "\n".join(lines)
