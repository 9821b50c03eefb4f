"""The TensorBoard image recipe, checked without Docker: a TF-free venv reads event files from S3.

``docker/tensorboard/Dockerfile`` installs ``tensorboard==2.21.* boto3 setuptools`` and no TensorFlow.
This test builds the same environment in ``.venv-tb/`` (once; ~25 s from the package index, then reused;
gitignored), writes scalar event files with TensorBoard's own writer (no TF), uploads them to the
embedded S3 server under ``models/<job>/logs/`` (the layout the manifests use), starts TensorBoard with
the settings the Deployment uses (``S3_ENDPOINT`` as a URL, ``--load_fast=false``) and asks its HTTP API
for the runs and scalars.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from helpers.paths import ROOT

TB_VENV = Path(os.environ.get("MNISTKIT_TB_VENV", ROOT / ".venv-tb"))
REQUIREMENTS = ["tensorboard==2.21.*", "boto3>=1.36,<2", "setuptools"]


def _tb_venv() -> Path:
    marker = TB_VENV / ".mnistkit-installed"
    if marker.exists() and marker.read_text() == " ".join(REQUIREMENTS):
        return TB_VENV
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(TB_VENV)], check=True)
    pip = subprocess.run([str(TB_VENV / "bin" / "pip"), "install", "-q", *REQUIREMENTS],
                         capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip(f"cannot install {' '.join(REQUIREMENTS)} (no package index reachable?): {pip.stderr[-300:]}")
    marker.write_text(" ".join(REQUIREMENTS))
    return TB_VENV


_WRITE_EVENTS = textwrap.dedent("""
    import sys, time
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    for run in ("train", "validation"):
        w = EventFileWriter(f"{sys.argv[1]}/{run}")
        for step in range(5):
            value = Summary.Value(tag="epoch_loss", simple_value=1.0 / (step + 1))
            w.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=[value])))
        w.close()
""")


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh TensorBoard venv installs first (pip's own limit is 600 s)
def test_tf_free_tensorboard_lists_runs_from_s3(tmp_path: Path) -> None:
    from mnistkit import s3
    from mnistkit.embedded_s3 import EmbeddedS3, free_port
    from mnistkit.manifests import ManifestParams

    venv = _tb_venv()
    py = str(venv / "bin" / "python")
    no_tf = subprocess.run([py, "-c", "import tensorflow"], capture_output=True, text=True)
    assert no_tf.returncode != 0, "the TensorBoard environment must not contain TensorFlow"
    subprocess.run([py, "-c", _WRITE_EVENTS, str(tmp_path / "logs")], check=True, timeout=120)

    with EmbeddedS3() as server:
        cfg = server.config
        params = ManifestParams.from_s3(cfg, job_name="mnist-tb-check")
        bucket, prefix = params.logs_dir[len("s3://"):].split("/", 1)
        uploaded = s3.upload_dir(s3.make_client(cfg), tmp_path / "logs", bucket, prefix)
        assert len(uploaded) == 2
        port = free_port()
        env = {**os.environ, **cfg.to_env(), "S3_ENDPOINT": cfg.endpoint_url}  # as tensorboard.py sets it
        for k in ("PYTHONPATH", "VIRTUAL_ENV"):
            env.pop(k, None)
        proc = subprocess.Popen(
            [str(venv / "bin" / "tensorboard"), f"--logdir={params.logs_dir}", "--host=127.0.0.1", f"--port={port}",
             "--reload_interval=1", "--load_fast=false"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs: object = []
        tags: object = {}
        points: object = []
        try:
            # TensorBoard lists a run before its reload pass has read the run's events: wait for all of it.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    runs = _get(f"http://127.0.0.1:{port}/data/runs")
                    tags = _get(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
                    if len(runs) == 2 and "epoch_loss" in tags.get("train", {}):  # type: ignore[arg-type,union-attr]
                        points = _get(f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=train&tag=epoch_loss")
                        if len(points) == 5:  # type: ignore[arg-type]
                            break
                except OSError:
                    pass
                time.sleep(0.5)
        finally:
            proc.terminate()
            out = proc.communicate(timeout=20)[0]
    assert sorted(runs) == ["train", "validation"], out[-2000:]  # type: ignore[arg-type]
    assert "epoch_loss" in tags["train"]  # type: ignore[index]
    assert [p[1] for p in points] == [0, 1, 2, 3, 4]  # type: ignore[union-attr,index]
    assert abs(points[-1][2] - 0.2) < 1e-6  # type: ignore[index]
    assert cfg.secret_access_key not in out
    print(f"FIGURE tf_free_tensorboard_runs={len(runs)} scalar_points={len(points)}")  # type: ignore[arg-type]
