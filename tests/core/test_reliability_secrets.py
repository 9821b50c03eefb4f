"""Secrets: with a canary secret key in the environment, run every command that reads S3 settings and look
for the canary everywhere it could leak: stdout, stderr, every file written (logs, metrics, result.json,
metrics.jsonl, TensorBoard events, manifests), every object written to S3, exception messages and reprs.

``find_canary`` (tests/helpers/faults.py) is the shared search, reused by the notebook tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from mnistkit import s3
from mnistkit.config import S3Config
from mnistkit.embedded_s3 import free_port
from mnistkit.errors import ConfigError, MnistkitError

from helpers.faults import find_canary
from helpers.paths import ROOT

pytestmark = pytest.mark.reliability

CANARY = f"CANARY-{uuid.uuid4().hex}"


def _env(cfg: S3Config, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "BUCKET_NAME", "TF_CONFIG"))}
    env.update({"AWS_ENDPOINT_URL": cfg.endpoint_url, "AWS_ACCESS_KEY_ID": "canary-key-id",
                "AWS_SECRET_ACCESS_KEY": CANARY, "AWS_REGION": "us-east-1", "BUCKET_NAME": cfg.bucket,
                "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.update(extra)
    return env


class Runs:
    """Runs CLI commands and keeps every output to search."""

    def __init__(self, cwd: Path) -> None:
        self.cwd, self.texts, self.commands = cwd, [], []

    def __call__(self, args: list[str], env: dict[str, str], expect_ok: bool = True,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "mnistkit", *args], env=env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=timeout)
        self.texts += [proc.stdout, proc.stderr]
        self.commands.append(" ".join(args[:2]))
        if expect_ok:
            assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        else:
            assert proc.returncode in (1, 2), f"{args} exited {proc.returncode}: {proc.stderr[-3000:]}"
            assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        return proc


def _bucket_dump(cfg: S3Config, into: Path) -> Path:
    """Every object in the bucket, downloaded, so leaks into S3 (logs synced by the trainer) are searched too."""
    client = s3.make_client(replace(cfg, secret_access_key="x", access_key_id="x"))  # moto ignores keys
    s3.download_prefix(client, cfg.bucket, "", into)
    return into


@pytest.mark.slow
def test_canary_secret_never_leaks_from_s3_commands(s3_config: S3Config, tmp_path: Path) -> None:
    run = Runs(tmp_path)
    env = _env(s3_config)
    run(["data", "upload", "--source", "sample"], env)
    run(["data", "info", s3_config.url("data/mnist")], env)
    run(["render", "--out", str(tmp_path / "manifests")], env)
    # error paths: a server that isn't there, a bucket that doesn't exist, a malformed endpoint
    dead = _env(s3_config, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    run(["data", "upload", "--source", "sample"], dead, expect_ok=False, timeout=600)
    run(["data", "info", f"s3://missing-{uuid.uuid4().hex[:8]}/data/mnist"], env, expect_ok=False)
    run(["data", "info", s3_config.url("no/such/prefix")], env, expect_ok=False)
    run(["data", "upload", "--source", "sample"], _env(s3_config, AWS_ENDPOINT_URL="ftp://nowhere"),
        expect_ok=False)
    run(["data", "upload", "--source", "sample"], _env(s3_config, AWS_ACCESS_KEY_ID=""), expect_ok=False)
    found = find_canary([*run.texts, tmp_path, _bucket_dump(s3_config, tmp_path / "bucket")], CANARY)
    print(f"FIGURE secrets_s3_commands commands={len(run.commands)} texts={len(run.texts)} "
          f"canary_occurrences={len(found)}")
    assert found == []


@pytest.mark.slow
def test_canary_secret_never_leaks_from_training_and_demo(s3_config: S3Config, tmp_path: Path) -> None:
    run = Runs(tmp_path)
    env = _env(s3_config)
    run(["data", "upload", "--source", "sample"], env)
    run(["train", "--run-dir", str(tmp_path / "runs"), "--job-name", "canary", "--workers", "1",
         "--data-dir", s3_config.url("data/mnist"), "--model-dir", s3_config.url("runs/canary"),
         "--train-steps", "5", "--model-type", "small"], env)
    # a training that fails (its data is missing): its error message and worker logs too
    run(["train", "--run-dir", str(tmp_path / "runs"), "--job-name", "canary-fail", "--workers", "1",
         "--data-dir", s3_config.url("missing/data"), "--model-dir", s3_config.url("runs/canary-fail"),
         "--train-steps", "5", "--model-type", "small", "--max-restarts", "0"], env, expect_ok=False)
    run(["demo", "--s3-from-env", "--run-dir", str(tmp_path / "demo"), "--workers", "1", "--train-steps", "5",
         "--model-type", "small", "--test-image", "0"], env)
    # serve the S3 export with the same environment: its logs and the model cache it writes
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "mnistkit", "serve", "--model_base_path", s3_config.url("runs/canary/export/mnist"),
         "--port", str(port), "--rest_api_port", "0", "--model_cache_dir", str(tmp_path / "serve-cache"),
         "--file_system_poll_wait_seconds", "0.2"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while serve.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break  # the port opens after the latest version has loaded
            except OSError:
                time.sleep(0.2)
        assert serve.poll() is None, "mnistkit serve exited early"
        time.sleep(1.0)  # a few polls of S3 with the canary credentials
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=60)
    run.texts += [out, err]
    run.commands.append("serve")
    assert list((tmp_path / "serve-cache").iterdir()), "serve downloaded nothing from S3"
    files = sorted(p.name for p in (tmp_path / "runs").rglob("*") if p.is_file())
    assert "metrics.jsonl" in files and any(f.endswith(".log") for f in files), files
    found = find_canary([*run.texts, tmp_path, _bucket_dump(s3_config, tmp_path / "bucket")], CANARY)
    print(f"FIGURE secrets_training_demo commands={len(run.commands)} files_searched="
          f"{sum(1 for p in tmp_path.rglob('*') if p.is_file())} canary_occurrences={len(found)}")
    assert found == [], found


@pytest.mark.slow
def test_canary_secret_never_in_reprs_or_errors(s3_config: S3Config) -> None:
    cfg = replace(s3_config, secret_access_key=CANARY)
    texts = [repr(cfg), str(cfg), f"{cfg}", repr(cfg.to_env(include_secrets=False))]
    errors: list[BaseException] = []
    dead = replace(cfg, endpoint="", endpoint_url=f"http://127.0.0.1:{free_port()}")
    for attempt in (
        lambda: s3.probe_bucket(s3.make_client(dead, max_attempts=1, connect_timeout=1), cfg.bucket),
        lambda: s3.probe_bucket(s3.make_client(cfg), f"missing-{uuid.uuid4().hex[:8]}"),
        lambda: s3.download_file(s3.make_client(cfg), cfg.bucket, "no/such/key", Path(tempfile.mkdtemp()) / "f"),
        lambda: S3Config(bucket="mnist", secret_access_key=CANARY),  # secret without key id
        lambda: S3Config.from_env({"AWS_SECRET_ACCESS_KEY": CANARY, "AWS_ACCESS_KEY_ID": "id", "BUCKET_NAME": "B!"}),
        lambda: S3Config.from_env({"AWS_SECRET_ACCESS_KEY": CANARY, "AWS_ACCESS_KEY_ID": "id",
                                   "AWS_ENDPOINT_URL": "gopher://x"}),
    ):
        with pytest.raises(MnistkitError) as err:
            attempt()
        errors.append(err.value)
    texts += [t for e in errors for t in (str(e), repr(e), repr(e.args), repr(vars(e)))]
    assert isinstance(errors[3], ConfigError) and errors[3].field == "access_key_id"
    found = find_canary(texts, CANARY)
    print(f"FIGURE secrets_reprs texts={len(texts)} errors={len(errors)} canary_occurrences={len(found)}")
    assert found == []
    assert find_canary([CANARY + " leaked"], CANARY) == ["text[0]"]  # the search itself finds a leak...


def test_find_canary_finds_leaks_in_texts_nested_files_and_binaries(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "events.bin").write_bytes(b"\x00\x01" + CANARY.encode() + b"\xff")
    (tmp_path / "clean.log").write_text("nothing here")
    assert find_canary([tmp_path, f"x {CANARY}", "clean text"], CANARY) == [
        str(tmp_path / "a" / "b" / "events.bin"), "text[1]"]
    assert find_canary([str(tmp_path / "clean.log")], CANARY) == []
