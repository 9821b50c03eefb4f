"""Target 5: drawing-pad preprocessing keeps the model's accuracy (>= clean accuracy - 1 point).

Official test digits are pasted, at a random scale (0.4-1.0 of the canvas side) and position, as dark
ink on a white 280x280 canvas (what the drawing pad sends), then turned back into model input by
``mnistkit.drawing.preprocess``. The same model (the accuracy target's export, else one trained here)
classifies the clean 28x28 digits (the reference), the preprocessed canvases, and, for contrast,
``naive_resize`` (the whole canvas squashed to 28x28).
"""

from __future__ import annotations

import time

from bench.common import (
    Context,
    Outcome,
    accuracy,
    load_predictor,
    official_test_set,
    say,
)

__all__ = ["paste", "run"]

CANVAS = 280
GOAL_POINTS = 1.0


def paste(digit: object, scale: float, y: int, x: int) -> object:
    """The 28x28 digit (uint8, white on black) resized to ``scale * 280`` and drawn dark-on-white at (y, x)."""
    import numpy as np
    from PIL import Image

    side = round(scale * CANVAS)
    big = np.asarray(Image.fromarray(np.asarray(digit, np.uint8)).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    canvas[y : y + side, x : x + side] = big
    return 255 - canvas


def run(ctx: Context) -> Outcome:
    import numpy as np

    from mnistkit.drawing import naive_resize, preprocess

    if ctx.t10k is None:
        return Outcome("drawing", "no official test set: pass --t10k DIR or set MNISTKIT_T10K_DIR", "-", None)
    if "export_dir" not in ctx.shared:
        from bench import t_accuracy

        say("no export from the accuracy target: training with its settings for 4 epochs")
        t_accuracy.train_export(ctx, 2 if ctx.quick else 4)
    predict = load_predictor(ctx.shared["export_dir"])
    x, y = official_test_set(ctx.t10k)
    n = 500 if ctx.quick else len(y)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:n]
    x, y = x[idx], y[idx]
    pre = np.zeros((n, 28, 28), np.float32)
    naive = np.zeros((n, 28, 28), np.float32)
    t0 = time.perf_counter()
    t_pre = 0.0
    for i in range(n):
        scale = float(rng.uniform(0.4, 1.0))
        side = round(scale * CANVAS)
        py, px = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
        canvas = paste(x[i], scale, py, px)
        t = time.perf_counter()
        pre[i] = preprocess(canvas)
        t_pre += time.perf_counter() - t
        naive[i] = naive_resize(canvas)
    say(f"{n} official test digits pasted at scale 0.4-1.0 into 280x280 canvases in {time.perf_counter() - t0:.1f} s "
        f"(preprocess {t_pre / n * 1000:.2f} ms per canvas)")
    clean = accuracy(predict, x.astype(np.float32) / 255.0, y)
    acc_pre = accuracy(predict, pre, y)
    acc_naive = accuracy(predict, naive, y)
    drop = (clean - acc_pre) * 100
    say(f"accuracy: clean 28x28 {clean:.4f}; canvas + preprocess {acc_pre:.4f} ({-drop:+.2f} points); "
        f"canvas + naive_resize {acc_naive:.4f}")
    return Outcome(
        "drawing",
        f"preprocess {acc_pre:.4f} vs clean {clean:.4f} ({-drop:+.2f} points; naive_resize {acc_naive:.4f}; n={n})",
        f">= clean - {GOAL_POINTS:.0f} point",
        drop <= GOAL_POINTS,
        {"clean": clean, "preprocess": acc_pre, "naive_resize": acc_naive, "n": n,
         "preprocess_ms": t_pre / n * 1000},
    )
