"""The plain-Keras reference: ``model.fit`` of ``trainer.model.build_model`` on the same data, no mnistkit trainer.

Run as ``python -m bench.plain_fit --out rows.jsonl ...`` so its import and start-up are excluded from
throughput exactly as the trainer's are: one jsonl row per epoch with the cumulative sample count and
seconds since ``fit`` was called (the trainer's metrics.jsonl has the same). ``--budget-s`` stops training
after that many seconds of training (checked after every batch), for the equal-wall-time accuracy
reference; ``--t10k`` evaluates on the official test set at the end and ``--export`` saves a SavedModel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plain_fit")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--model", default="cnn")
    p.add_argument("--budget-s", type=float, default=0.0)
    p.add_argument("--t10k", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-all", action="store_true", help="train on all 5,000 offline digits (held-out ones too)")
    args = p.parse_args(argv)

    import numpy as np

    from mnistkit.data import FILES, offline_sample, read_idx
    from trainer.model import build_model, keras

    ds = offline_sample(seed=args.seed)
    x, y = ds.x_train.astype(np.float32) / 255.0, ds.y_train.astype(np.int64)
    xv, yv = ds.x_test.astype(np.float32) / 255.0, ds.y_test.astype(np.int64)
    if args.train_all:  # then val_accuracy is on seen digits; --t10k gives the honest figure
        x, y = np.concatenate([x, xv]), np.concatenate([y, yv])
    keras.utils.set_random_seed(args.seed)
    out = Path(args.out)
    t_build = time.monotonic()
    model = build_model(args.model, args.lr)
    t_fit = 0.0
    seen = [0]

    class _Rows(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            seen[0] += min(args.batch, len(x) - batch * args.batch)
            if args.budget_s and time.monotonic() - t_build >= args.budget_s:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            row = {"epoch": epoch + 1, "samples": seen[0], "elapsed_s": time.monotonic() - t_fit,
                   "since_build_s": time.monotonic() - t_build,
                   "val_accuracy": float(logs.get("val_accuracy", float("nan")))}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")

    epochs = args.epochs if not args.budget_s else 10_000
    t_fit = time.monotonic()
    model.fit(x, y, batch_size=args.batch, epochs=epochs, validation_data=(xv, yv), callbacks=[_Rows()], verbose=0)
    result: dict[str, Any] = {"train_s": time.monotonic() - t_build, "samples": seen[0],
                              "epochs_run": math.ceil(seen[0] / len(x))}
    if args.t10k:
        xt = read_idx(Path(args.t10k) / FILES["test_images"]).astype(np.float32) / 255.0
        yt = read_idx(Path(args.t10k) / FILES["test_labels"]).astype(np.int64)
        result["t10k_accuracy"] = float(model.evaluate(xt, yt, batch_size=512, verbose=0)[1])
    out.with_suffix(".result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
