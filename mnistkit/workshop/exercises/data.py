"""``check_data``: images and labels ready to train on (scaled to [0, 1], [n, 28, 28], sparse labels, all digits)."""

from __future__ import annotations

import numpy as np

from mnistkit.workshop.exercises.result import CheckResult, fail, guard, ok

__all__ = ["check_data"]


def _check_images(name: str, x: object) -> CheckResult | None:
    """None when ``x`` looks like MNIST images ready for a model, else the failing result."""
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "fiub":
        return fail(name, f"images have dtype {x.dtype}, not numbers", "load the images with mnistkit.data")
    if x.ndim == 2 and x.shape[1] == 784:
        return fail(name, f"images are flat {list(x.shape)}", "reshape them to [n, 28, 28]: x.reshape(-1, 28, 28)")
    if x.ndim == 4 and x.shape[1:] == (28, 28, 1):
        return fail(name, f"images have a channel axis {list(x.shape)}", "the model takes [n, 28, 28]: x[..., 0]")
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        return fail(name, f"images have shape {list(x.shape)}, expected [n, 28, 28]", "each image is 28x28 pixels")
    if x.shape[0] == 0:
        return fail(name, "there are no images (0 of them)", "check the data directory you loaded")
    xf = x.astype(np.float64)
    if not np.isfinite(xf).all():
        return fail(name, "images contain NaN or Inf", "did you divide by something that can be 0?")
    lo, hi = float(xf.min()), float(xf.max())
    if lo < 0.0:
        return fail(
            name,
            f"your images have negative values (from {lo:.2f}): standardised (mean subtracted) instead of scaled?",
            "the serving contract is [0, 1]: use x = raw / 255.0, without subtracting the mean",
        )
    if hi > 10.0:
        return fail(
            name, f"your images are 0-{hi:g}: the model and the server expect [0, 1]", "divide by 255: x = x / 255.0"
        )
    if hi > 1.0:
        return fail(
            name,
            f"your images go up to {hi:.2f}: the model and the server expect [0, 1]",
            "scale the raw pixels once: x = raw / 255.0",
        )
    if hi == 0.0:
        return fail(name, "every pixel is 0", "did you divide twice, or integer-divide (//) by 255?")
    if float(xf.mean()) > 0.5:
        return fail(
            name,
            f"your digits are dark on light (mean pixel {xf.mean():.2f})",
            "MNIST is white digits on black: x = 1.0 - x",
        )
    return None


def _check_labels(name: str, y: object, n: int) -> CheckResult | None:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 10:
        return fail(
            name, f"labels are one-hot {list(y.shape)}", "the model uses sparse labels (0-9): y = y.argmax(axis=1)"
        )
    if y.ndim != 1:
        return fail(name, f"labels have shape {list(y.shape)}, expected [n]", "one digit 0-9 per image")
    if y.shape[0] != n:
        return fail(name, f"{n} images but {y.shape[0]} labels", "images and labels must come from the same split")
    if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
        return fail(name, "labels are not whole numbers", "labels are the digits 0-9")
    if y.size and (y.min() < 0 or y.max() > 9):
        return fail(name, f"labels run from {y.min()} to {y.max()}", "labels are the digits 0-9")
    missing = sorted(set(range(10)) - set(np.unique(y).astype(int).tolist()))
    if missing:
        return fail(
            name,
            f"digits {missing} never occur in the labels",
            "a head/tail split of sorted data drops digits: split stratified (mnistkit.data.offline_sample)",
        )
    return None


def check_data(data: object, labels: object = None) -> CheckResult:
    """Images (and labels) ready to train on: ``check_data(x_train, y_train)``, ``check_data((x, y))`` or a
    ``mnistkit.data.Dataset`` (raw uint8 by design: then the hint reminds you to scale)."""
    name = "data"

    def run() -> CheckResult:
        from mnistkit.data import Dataset

        if isinstance(data, Dataset):
            for split, images, labels_ in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
                if len(labels_) == 0:
                    return fail(name, f"the {split} split is empty", "load a data directory with both splits")
                bad = _check_labels(name, labels_, len(images))
                if bad is not None:
                    return bad
            return ok(
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
        return ok(name, f"{n} images of 28x28 in [0, 1]" + (" with labels 0-9" if y is not None else ""))

    return guard(name, run)
