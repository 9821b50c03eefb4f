"""The trainer for real: 2 local workers (MultiWorkerMirroredStrategy), S3 in and out, export, bounded waits.

A killed worker resuming is proved (with figures) in tests/trainer/test_reliability_workers.py."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnistkit import s3
from mnistkit.config import S3Config, TrainConfig
from mnistkit.engines.base import JobState
from mnistkit.engines.local import LocalEngine

pytestmark = pytest.mark.slow


def _check_signature(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(path))
    assert list(loaded.signatures) == ["serving_default"]
    sig = loaded.signatures["serving_default"]
    (spec,) = sig.structured_input_signature[1].values()
    assert list(sig.structured_input_signature[1]) == ["x"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 28, 28]
    outs = sig.structured_outputs
    assert sorted(outs) == ["classes", "predictions"]
    assert outs["classes"].dtype == tf.uint8 and outs["predictions"].dtype == tf.float32
    assert outs["predictions"].shape.as_list() == [None, 10]
    res = sig(x=tf.constant(x.astype(np.float32) / 255.0))
    probs = res["predictions"].numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert np.array_equal(res["classes"].numpy(), probs.argmax(axis=1).astype(np.uint8))
    return float((res["classes"].numpy() == y).mean())


def test_two_workers_train_from_s3_and_publish_to_s3(s3_env: S3Config, tmp_path: Path) -> None:
    from mnistkit import data

    ds = data.offline_sample()
    data.upload_dataset(ds, s3_env.url("data/mnist"), s3_env)
    engine = LocalEngine(run_dir=tmp_path / "runs", s3_config=s3_env)
    cfg = TrainConfig(data_dir=s3_env.url("data/mnist"), model_dir=s3_env.url("runs/job1"), train_steps=120,
                      model_type="small", workers=2)
    job = engine.submit(cfg, "job1")
    assert job.wait(timeout=300) == JobState.SUCCEEDED, job.logs(tail=30)
    assert [m.epoch for m in job.metrics()] == [1, 2, 3]

    client = s3.make_client(s3_env)
    assert s3.list_model_versions(client, s3_env.bucket, "runs/job1/export/mnist") == [1]
    keys = {o["Key"] for o in s3.list_keys(client, s3_env.bucket, "runs/job1/")}
    assert any(k.startswith("runs/job1/logs/train/events.out.tfevents") for k in keys), keys
    assert any(k.startswith("runs/job1/logs/validation/") for k in keys)
    assert "runs/job1/metrics.jsonl" in keys and "runs/job1/result.json" in keys
    result = job.result()
    assert result["workers"] == 2 and result["version"] == 1

    s3.download_prefix(client, s3_env.bucket, "runs/job1/export/mnist/1", tmp_path / "export")
    acc = _check_signature(tmp_path / "export", ds.x_test, ds.y_test)
    assert acc > 0.8, acc  # chance is 0.1
    assert abs(acc - result["test_accuracy"]) < 0.01
    # the secret reached the workers through their environment only, never their logs
    assert s3_env.secret_access_key not in job.logs()


def test_missing_peer_fails_in_bounded_time_naming_it(tmp_path: Path) -> None:
    from mnistkit.embedded_s3 import free_port

    missing = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TF_CONFIG": json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{free_port()}", missing]}, "task": {"type": "worker", "index": 0}})}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.task", f"--tf-model-dir={tmp_path}", "--tf-peer-timeout=5",
         "--tf-model-type=small"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    took = time.monotonic() - t0
    print(f"FIGURE missing_peer exit_after_s={took:.1f}")
    assert proc.returncode != 0
    assert f"task 1 at {missing}" in proc.stdout
    assert "peer timeout" in proc.stdout


def test_bad_flag_is_a_clear_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "trainer.task", "--tf-batch-size=0"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "batch_size must be between 1 and 4096, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_epoch_order_replays_from_any_epoch_and_covers_every_sample() -> None:
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    from trainer.task import epoch_order

    n, per_epoch, epochs = 50, 60, 8  # per epoch > n: an epoch is one permutation and part of the next

    def order(seed: int, start: int, stop: int) -> np.ndarray:
        return np.array(list(epoch_order(tf, n, per_epoch, seed, start, stop).as_numpy_iterator()))

    full = order(0, 0, epochs)
    assert full.shape == (epochs * per_epoch,) and full.dtype == np.int64
    for start in (1, 4, 7):  # a group restarted from a backup at epoch `start` sees what an unbroken run sees
        assert np.array_equal(order(0, start, epochs), full[start * per_epoch:])
    first = full[:per_epoch]
    assert sorted(first[:n].tolist()) == list(range(n))  # every sample once before any repeats
    assert not np.array_equal(first, full[per_epoch:2 * per_epoch])  # epochs are shuffled differently
    assert not np.array_equal(first, order(1, 0, 1))  # and the seed matters


def test_cosine_schedule_warms_up_peaks_and_decays_to_zero() -> None:
    from trainer.model import learning_rate

    assert learning_rate(0.003, "constant", total_steps=100, warmup_steps=10) == 0.003
    rate = learning_rate(0.003, "cosine", total_steps=100, warmup_steps=10)
    at = [float(rate(step)) for step in range(101)]
    assert at[0] == pytest.approx(0.0003) and at[10] == pytest.approx(0.003)
    assert all(a < b for a, b in itertools.pairwise(at[:11]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(at[10:]))  # then only falls
    assert at[55] == pytest.approx(0.0015, rel=0.05) and at[100] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="step"):
        learning_rate(0.003, "step", total_steps=100)


def test_bn_model_gives_probabilities_and_its_moving_statistics_keep_up() -> None:
    from mnistkit.data import offline_sample
    from trainer.model import build_model, learning_rate

    ds = offline_sample(seed=0)
    x, y = ds.x_train[:2048].astype(np.float32) / 255.0, ds.y_train[:2048].astype(np.int64)
    model = build_model("bn", learning_rate(0.003, "cosine", total_steps=64, warmup_steps=10), augment=True,
                        label_smoothing=0.1)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    probs = model.predict(ds.x_test[:500].astype(np.float32) / 255.0, verbose=0)
    assert probs.shape == (500, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    # Inference uses BatchNorm's moving statistics: after 64 steps they must describe the trained weights
    # (with Keras' default momentum 0.99 held-out accuracy is still near chance here).
    assert float((probs.argmax(axis=1) == ds.y_test[:500]).mean()) > 0.85
