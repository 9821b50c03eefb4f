"""The trainer's keras callbacks: guarded backups, the per-epoch record, and the fault-injection hold."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mnistkit.trainspec import HOLD_ENV, EpochMetrics, RunLayout, format_metrics
from trainer.mirror import S3Mirror, log

if TYPE_CHECKING:
    from mnistkit._types import TFModule, TFObject

__all__ = ["make_callbacks"]

HOLD_LIMIT_S = 600.0  # a hold nobody releases ends by itself


def make_callbacks(
    keras: TFModule,
    local: Path,
    *,
    epochs: int,
    steps_per_epoch: int,
    is_chief: bool,
    mirror: S3Mirror | None,
    started: float,
) -> list[TFObject]:
    """BackupAndRestore (guarded by the mirror's lock), TensorBoard, and the per-epoch report."""
    guard: Callable[[], contextlib.AbstractContextManager[object]] = (
        (lambda: mirror.lock) if mirror is not None else contextlib.nullcontext
    )
    hold_after = int(os.environ.get(HOLD_ENV) or 0)

    class GuardedBackup(keras.callbacks.BackupAndRestore):
        """Writes and rotates checkpoints only while no sync to S3 reads them."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            with guard():
                super().on_epoch_end(epoch, logs)

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            with guard():
                super().on_train_end(logs)

    class Report(keras.callbacks.Callback):
        """One line per epoch on stdout and, from the chief, in metrics.jsonl (what monitors read)."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            row = EpochMetrics(
                epoch=epoch + 1,
                epochs=epochs,
                step=(epoch + 1) * steps_per_epoch,
                loss=float(logs.get("loss", float("nan"))),
                accuracy=float(logs.get("accuracy", float("nan"))),
                val_loss=float(logs["val_loss"]) if "val_loss" in logs else None,
                val_accuracy=float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
                elapsed_s=round(time.monotonic() - started, 2),
            )
            val = f" val_accuracy={row.val_accuracy:.4f}" if row.val_accuracy is not None else ""
            log(f"epoch {row.epoch}/{epochs} loss={row.loss:.4f} accuracy={row.accuracy:.4f}{val}")
            if not is_chief:
                return
            with (local / RunLayout.METRICS).open("a") as f:
                f.write(format_metrics(row) + "\n")
            if row.epoch == hold_after:
                _hold(local, row.epoch, mirror)

    return [
        GuardedBackup(backup_dir=str(local / RunLayout.BACKUP)),
        keras.callbacks.TensorBoard(log_dir=str(local / RunLayout.LOGS), update_freq="epoch"),
        Report(),
    ]


def _hold(local: Path, epoch: int, mirror: S3Mirror | None) -> None:
    """``HOLD_ENV``: epoch ``epoch`` is backed up (and on S3); wait until the marker file is removed."""
    if mirror is not None:
        mirror.sync()
    marker = local / RunLayout.hold_marker(epoch)
    marker.write_text(f"{os.getpid()}\n")
    log(f"holding after epoch {epoch} ({HOLD_ENV}) until {marker} is removed")
    deadline = time.monotonic() + HOLD_LIMIT_S
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    marker.unlink(missing_ok=True)
