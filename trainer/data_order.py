"""The order of training samples: a function of (seed, epoch), so a resumed group replays the clean run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainer.mirror import log

if TYPE_CHECKING:
    from mnistkit._types import TFModule, TFTensor

__all__ = ["epoch_order", "resume_epoch"]


def epoch_order(tf: TFModule, n: int, per_epoch: int, seed: int, start: int, stop: int) -> TFTensor:
    """A ``tf.data`` stream of sample indices for epochs ``start``..``stop - 1``, ``per_epoch`` each.

    Each epoch takes permutations of ``range(n)`` drawn by stateless ops keyed on (seed, epoch): its
    order depends on its number alone, not on how many epochs this process already ran, so a worker
    group restarted from a backup at epoch k trains on exactly the batches an uninterrupted run trains
    on from epoch k (a reshuffling stream would start over at epoch 1's order). Built one epoch at a
    time inside tf.data: memory is that of one permutation, whatever the number of steps.
    """
    reps = -(-per_epoch // n)  # permutations per epoch: an epoch may be a little longer than the data

    def one_epoch(epoch: TFTensor) -> TFTensor:
        perms = [
            tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(seed, tf.int64), epoch * reps + j])))
            for j in range(reps)
        ]
        return tf.data.Dataset.from_tensor_slices(tf.cast(tf.concat(perms, 0)[:per_epoch], tf.int64))

    return tf.data.Dataset.range(start, stop).flat_map(one_epoch)


def resume_epoch(tf: TFModule, backup_dir: Path) -> int:
    """The epoch (0-based) that ``BackupAndRestore`` will resume at: 0 without a backup.

    Read from the backup's own ``ckpt_saved_epoch`` (where tf-keras keeps it), so the data order and
    the epoch counter agree.
    """
    ckpt = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    if not ckpt:
        return 0
    try:
        saved = int(tf.train.load_variable(ckpt, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    except Exception as exc:  # noqa: BLE001 - an unreadable backup: keras will say so when it restores
        log(f"cannot read the resume epoch from {ckpt}: {type(exc).__name__}; data order starts at epoch 1")
        return 0
    return saved + 1 if saved >= 0 else 0
