"""Target 2: accuracy on the official 10,000-image test set after training on the 5,000 offline samples.

The trainer (``python -m trainer.task``, cnn, ``--tf-augment``, see ``SETTINGS``) against the plain-Keras
reference (``bench.plain_fit``: the same cnn, no augmentation, Keras' default Adam rate 0.001) trained for
the same wall time: the trainer's time from "ready" (data and TensorFlow loaded) to the end of its last
epoch, and the reference's from ``build_model`` on, stopped after the batch that crosses it. Goal: at least
the reference; aim: >= 0.975 within 2 minutes of training on 2 cores. The trainer's export is kept for the
serving and drawing targets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mnistkit.trainspec import READY_LINE

from bench.common import (
    Context,
    Outcome,
    accuracy,
    load_predictor,
    official_test_set,
    read_jsonl,
    run_python,
    say,
)

__all__ = ["SETTINGS", "run", "train_export"]

AIM, AIM_S = 0.975, 120.0
# Augmentation because 4,000 training digits are few; rate 0.002: 0.01 (the seed's default) is too high
# for Adam on this cnn, 0.001 too slow for a 2-minute budget.
SETTINGS = {"epochs": 14, "quick_epochs": 2, "batch": 128, "learning_rate": 0.002, "augment": True}


def train_export(ctx: Context, epochs: int) -> dict[str, object]:
    """Run the trainer; returns its rows, training seconds and export dir (also stored in ``ctx.shared``)."""
    d = ctx.tmp("accuracy")
    args = ["-m", "trainer.task", f"--tf-model-dir={d / 'model'}", f"--tf-train-steps={epochs * 32}",
            f"--tf-batch-size={SETTINGS['batch']}", f"--tf-learning-rate={SETTINGS['learning_rate']}",
            "--tf-model-type=cnn", "--tf-seed=0"] + (["--tf-augment"] if SETTINGS["augment"] else [])
    rc, wall, _ = run_python(args, timeout=900, log=d / "log.txt")
    log = (d / "log.txt").read_text()
    if rc != 0:
        raise RuntimeError(f"trainer failed (rc {rc}): {log[-800:]}")
    rows = read_jsonl(d / "model" / "metrics.jsonl")
    m = re.search(re.escape(READY_LINE) + r" \(\d+ worker\(s\)\) in ([0-9.]+)s", log)
    ready = float(m.group(1)) if m else 0.0
    result = json.loads((d / "model" / "result.json").read_text())
    out = {"rows": rows, "train_s": rows[-1]["elapsed_s"] - ready, "export": result["export"], "wall_s": wall}
    ctx.shared["export_dir"] = result["export"]
    ctx.shared["export_base"] = str(Path(result["export"]).parent)
    return out


def run(ctx: Context) -> Outcome:
    if ctx.t10k is None:
        return Outcome("accuracy", "no official test set: pass --t10k DIR or set MNISTKIT_T10K_DIR", "-", None)
    epochs = SETTINGS["quick_epochs"] if ctx.quick else SETTINGS["epochs"]
    x, y = official_test_set(ctx.t10k)
    xf = x.astype("float32") / 255.0
    tr = train_export(ctx, int(epochs))
    acc = accuracy(load_predictor(tr["export"]), xf, y)
    train_s = float(tr["train_s"])  # type: ignore[arg-type]
    say(f"trainer  : cnn, --tf-augment, lr {SETTINGS['learning_rate']}, batch {SETTINGS['batch']}, {epochs} epochs "
        f"({int(epochs) * 32} steps) in {train_s:.1f} s of training -> official test accuracy {acc:.4f}")
    say("           held-out val per epoch: " + " ".join(f"{r['val_accuracy']:.3f}" for r in tr["rows"]))  # type: ignore[union-attr]

    d = ctx.tmp("accuracy-ref")
    rc, _, _ = run_python(["-m", "bench.plain_fit", f"--out={d / 'rows.jsonl'}", f"--budget-s={train_s:.2f}",
                           "--batch=128", "--lr=0.001", f"--t10k={ctx.t10k}"], timeout=900, log=d / "log.txt")
    if rc != 0:
        raise RuntimeError(f"reference failed (rc {rc}): {(d / 'log.txt').read_text()[-800:]}")
    ref = json.loads((d / "rows.result.json").read_text())
    say(f"reference: plain model.fit, cnn, lr 0.001, {ref['train_s']:.1f} s ({ref['samples']} samples, "
        f"~{ref['epochs_run']} epochs) -> official test accuracy {ref['t10k_accuracy']:.4f}")
    aim = acc >= AIM and train_s <= AIM_S
    say(f"aim >= {AIM} within {AIM_S:.0f} s of training: {'met' if aim else 'not met'} ({acc:.4f} in {train_s:.0f} s)")
    return Outcome(
        "accuracy",
        f"{acc:.4f} vs plain Keras {ref['t10k_accuracy']:.4f} in the same {train_s:.0f} s "
        f"(aim {AIM} in {AIM_S:.0f} s: {'met' if aim else 'not met'})",
        ">= plain Keras at equal wall time",
        acc >= ref["t10k_accuracy"],
        {"accuracy": acc, "reference_accuracy": ref["t10k_accuracy"], "train_s": train_s, "aim_met": aim,
         "settings": SETTINGS, "reference": ref},
    )
