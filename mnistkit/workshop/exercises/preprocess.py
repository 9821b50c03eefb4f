"""``check_preprocess``: a participant's ``preprocess(canvas)`` makes drawings look like MNIST digits."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.workshop.exercises.result import CheckResult, fail, guard, ok

if TYPE_CHECKING:
    from mnistkit.workshop.digits import DigitSet

__all__ = ["check_preprocess"]


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


def check_preprocess(
    fn: Callable[[np.ndarray], object], digits: DigitSet | None = None, *, samples: int = 10
) -> CheckResult:
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
                return fail(name, f"it returned shape {list(out.shape)}", "return one [28, 28] image per canvas")
            outs.append(out.astype(np.float64))
        stack = np.stack(outs)
        if not np.isfinite(stack).all():
            return fail(name, "it returned NaN or Inf", "guard against dividing by an empty (0) maximum")
        if stack.max() > 1.0:
            return fail(name, f"it returns 0-{stack.max():g}", "divide by 255: the model expects [0, 1]")
        if stack.min() < 0.0:
            return fail(name, f"it returns negative values (from {stack.min():.2f})", "clip to [0, 1]")
        props = [_props(o) for o in outs]
        n = len(props)
        if sum(p["ink"] == 0.0 for p in props) > 0:
            return fail(name, "some canvases came out empty", "is the ink kept? a drawn stroke is dark on a light page")
        if sum(p["border"] > 0.3 for p in props) > n // 5:
            return fail(
                name,
                "the digits come out dark on a light background",
                "MNIST is white ink on black: invert, ink = 1 - gray",
            )
        if sum(not 16 <= p["side"] <= 24 for p in props) > n // 5:
            sides = sorted(int(p["side"]) for p in props)
            return fail(
                name,
                f"the digits are {sides[0]}-{sides[-1]} px across, MNIST's are about 20",
                "crop to the ink's bounding box, then fit it into a 20x20 box keeping the aspect ratio",
            )
        if sum(max(p["dy"], p["dx"]) > 2.0 for p in props) > n // 5:
            return fail(
                name,
                "the digits are not centred",
                "paste the 20x20 digit into 28x28 so its centre of mass sits at the centre (14, 14)",
            )
        return ok(name, f"{n} drawn digits look like MNIST: white on black, ~20 px, centred")

    return guard(name, run)
