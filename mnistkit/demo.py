"""The whole local loop in one call: what ``make demo`` and ``mnistkit demo`` run.

Data into S3 (the embedded server, or a real S3/MinIO from the seed's variables), training with N local
workers (the TFJob's command), export published atomically, served over TF Serving's gRPC and REST
protocols, a test digit named by the model over both, test accuracy, and a clean shutdown: no
processes, ports or temp dirs left behind. The run directory keeps the data, the logs and the exported
model, and the command to serve it again is printed.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from mnistkit.config import S3Config, TrainConfig
from mnistkit.errors import TrainingError

if TYPE_CHECKING:
    from mnistkit.serving.client import ModelClient

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    run_dir: Path
    job_name: str
    version: int
    digit_index: int
    true_label: int
    grpc_digit: int
    rest_digit: int
    heldout_accuracy: float
    official_accuracy: float | None
    timings: dict[str, float] = field(default_factory=dict)


def run_demo(
    run_dir: str | Path | None = None,
    *,
    workers: int = 2,
    train_steps: int = 200,
    model_type: str = "cnn",
    s3_from_env: bool = False,
    out: TextIO | None = None,
    test_image: int | None = None,
) -> DemoResult:
    """Run the loop; returns what it measured. Raises ``MnistkitError`` with a clear message on failure."""
    from mnistkit import data, s3
    from mnistkit.embedded_s3 import EmbeddedS3
    from mnistkit.engines.base import JobState
    from mnistkit.engines.local import LocalEngine, default_job_name
    from mnistkit.serving.ascii import ascii_art
    from mnistkit.serving.client import ModelClient
    from mnistkit.serving.server import ModelServer

    out = out or sys.stdout

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run = Path(run_dir or Path("runs") / f"demo-{stamp}").resolve()
    run.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    embedded: EmbeddedS3 | None = None
    server: ModelServer | None = None
    try:
        # 1. S3
        if s3_from_env:
            cfg = S3Config.from_env()
            say(f"[1/6] S3: using {cfg.endpoint_url or 'AWS'} bucket {cfg.bucket} from the environment")
        else:
            embedded = EmbeddedS3(bucket="mnist").start()
            cfg = embedded.config
            say(f"[1/6] S3: embedded server (moto) on {cfg.endpoint_url}, bucket {cfg.bucket}")
        client = s3.make_client(cfg)
        s3.ensure_bucket(client, cfg.bucket, cfg.region)

        # 2. Data
        ds = data.offline_sample()
        data.write_data_dir(ds, run / "data")
        data_url = cfg.url("data/mnist")
        data.upload_dataset(ds, data_url, cfg)
        say(
            f"[2/6] data: {len(ds.y_train)} training + {len(ds.y_test)} held-out real MNIST digits "
            f"(offline sample) -> {data_url} (kept in {run / 'data'})"
        )
        timings["data_s"] = time.monotonic() - t0

        # 3. Train
        job_name = default_job_name(prefix="demo")
        model_url = cfg.url("runs", job_name)
        from mnistkit.engines.exposure import check_multi_worker
        from mnistkit.errors import ConfigError

        try:
            check_multi_worker(workers)
        except ConfigError as exc:  # the demo must run anywhere: one worker opens no port
            say(f"[3/6] not {workers} workers: {exc}. Training with 1 worker.")
            workers = 1
        tcfg = TrainConfig(
            data_dir=data_url, model_dir=model_url, train_steps=train_steps, model_type=model_type, workers=workers
        )
        engine = LocalEngine(run_dir=run / "jobs", s3_config=cfg)
        say(
            f"[3/6] train: {workers} local worker(s) running `python -m trainer.task` with TF_CONFIG "
            f"({model_type}, {train_steps} steps); logs in {run / 'jobs' / job_name}"
        )
        t_train = time.monotonic()
        job = engine.submit(tcfg, job_name)
        for m in job.follow(interval=0.5):
            val = f"  held-out accuracy {m.val_accuracy:.3f}" if m.val_accuracy is not None else ""
            bar = "#" * int(20 * m.epoch / m.epochs)
            say(f"      epoch {m.epoch}/{m.epochs} [{bar:<20}] loss {m.loss:.3f}  accuracy {m.accuracy:.3f}{val}")
        if job.state() != JobState.SUCCEEDED:
            raise TrainingError(
                f"training {job_name} ended {job.state().value}: {job.message}\n{job.logs(tail=15)}",
                field="job",
                value=job_name,
            )
        result = job.result()
        version = int(result["version"])
        timings["train_s"] = time.monotonic() - t_train
        say(f"      done in {timings['train_s']:.0f}s; exported version {version} to {result['export']}")

        # 4. Keep the export locally and serve it
        keep = run / "models" / "mnist"
        s3.download_prefix(client, cfg.bucket, f"runs/{job_name}/export/mnist/{version}", keep / str(version))
        server = ModelServer(
            job.export_dir, port=0, rest_api_port=0, s3_config=cfg, cache_dir=run / "serving-cache"
        ).start()
        if not server.wait_for_version(version, timeout=60):
            raise TrainingError(f"the server did not load version {version}", field="version", value=version)
        say(
            f"[4/6] serve: TF Serving protocol on gRPC {server.grpc_target} and REST {server.rest_url} "
            f"(model mnist, version {version}, read from {job.export_dir})"
        )

        # 5. Predict one digit over gRPC and REST, like the seed's mnist_client.py
        official = data.find_official_test_set()
        if official is not None:
            x_eval = data.read_idx(official / data.FILES["test_images"])
            y_eval = data.read_idx(official / data.FILES["test_labels"])
        else:
            x_eval, y_eval = ds.x_test, ds.y_test
        idx = int(test_image if test_image is not None else np.random.default_rng().integers(len(y_eval)))
        image = x_eval[idx].astype(np.float32) / 255.0
        assert server.grpc_port is not None and server.rest_port is not None  # both bound by start()
        with (
            ModelClient("127.0.0.1", server.grpc_port, "grpc") as g,
            ModelClient("127.0.0.1", server.rest_port, "rest") as r,
        ):
            pg, pr = g.predict_one(image), r.predict_one(image)
            say(f"[5/6] predict: test image {idx} (label {int(y_eval[idx])}) over gRPC and REST")
            say(ascii_art(image))
            say(f"gRPC: classes={pg.digit} predictions={np.round(pg.probabilities, 3).tolist()}")
            say(f"REST: classes={pr.digit} (version {pr.model_version})")
            say(f"Your model says the above number is... {pg.digit}!")

            # 6. Accuracy through the server (the served model, not the in-memory one)
            heldout = _accuracy(g, ds.x_test, ds.y_test)
            off_acc = _accuracy(g, x_eval, y_eval) if official is not None else None
        msg = f"[6/6] accuracy: {heldout:.4f} on the {len(ds.y_test)} held-out sample digits"
        if off_acc is not None:
            msg += f"; {off_acc:.4f} on the official 10,000-image MNIST test set"
        say(msg)
        timings["total_s"] = time.monotonic() - t0
        say(
            f"The model is kept in {keep}. Serve it again with:\n"
            f"  mnistkit serve --model_base_path={keep}\n"
            f"and ask it with:  mnistkit predict --port 8500"
        )
        return DemoResult(run, job_name, version, idx, int(y_eval[idx]), pg.digit, pr.digit, heldout, off_acc, timings)
    finally:
        if server is not None:
            server.stop()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(run / "serving-cache", ignore_errors=True)


def _accuracy(client: ModelClient, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    correct = 0
    for i in range(0, len(y), batch):
        preds = client.predict(x[i : i + batch].astype(np.float32) / 255.0)
        correct += sum(int(p.digit == t) for p, t in zip(preds, y[i : i + batch]))
    return correct / len(y)
