"""Security fixes of issue 16: key IDs masked, private temp files, no path escapes, bounded decompression,
workers that die with their owner. The workshop-isolation and publishing tests live in their own files."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from mnistkit.config import S3Config, mask_key_id
from helpers.paths import ROOT

KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def test_access_key_id_is_masked_like_aws_configure_list() -> None:
    assert mask_key_id(KEY_ID) == "****************MPLE"
    assert mask_key_id("") == "" and mask_key_id("short-key") == "*" * 20  # a short key shows nothing
    cfg = S3Config(bucket="mnist", access_key_id=KEY_ID, secret_access_key="s")
    for text in (repr(cfg), str(cfg), f"{cfg}"):
        assert KEY_ID not in text and "AKIAIOSFODNN7" not in text and "MPLE" in text


def test_s3_panel_shows_the_key_id_masked_and_keeps_it(s3_env: S3Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    from mnistkit.widgets import S3Panel

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    env = {k: v for k, v in s3_env.to_env(include_secrets=True).items()}
    env["AWS_ACCESS_KEY_ID"] = KEY_ID  # moto accepts any key
    panel = S3Panel(env=env)
    assert panel.fields["access_key_id"].value == "" and panel.fields["access_key_id"].placeholder.endswith("MPLE")
    panel.test_button.click()
    assert "connected" in panel.status.value
    assert panel.controller.config is not None and panel.controller.config.access_key_id == KEY_ID
    panel.fields["access_key_id"].value = "AKIAOTHERKEY00001234"  # typed: used, then cleared from the widget
    panel.validate_button.click()
    assert panel.controller.config is not None and panel.controller.config.access_key_id == "AKIAOTHERKEY00001234"
    state = json.dumps(w.Widget.get_manager_state(drop_defaults=False), default=str)
    for text in (state, panel.status.value, repr(panel)):
        assert KEY_ID not in text and "AKIAOTHERKEY0000" not in text


def test_tensorboard_log_is_a_private_file_in_a_private_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os
    import stat
    import subprocess
    import tempfile

    from mnistkit import tensorboard

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    port = 47123
    planted = tmp_path / f"mnistkit-tensorboard-{port}.log"  # what a neighbour could plant at the old, predictable name
    target = tmp_path / "victim"
    target.write_text("keep me")
    planted.symlink_to(target)

    class FakeProcess:
        args: ClassVar[list[str]] = []

        def poll(self) -> int | None:
            return None

        def terminate(self) -> None:
            self.done = True

        def wait(self, timeout: float | None = None) -> int:
            return 0

    started: list[dict] = []

    def fake_popen(cmd, **kw):
        started.append(kw)
        kw["stdout"].write(b"TensorBoard starting\n")
        return FakeProcess()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.setattr(tensorboard, "_answers", lambda url: True)
    server = tensorboard.start(tmp_path / "logs", port=port)
    try:
        assert target.read_text() == "keep me"
        log = server.log_path
        assert log.read_bytes() == b"TensorBoard starting\n"
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600 and stat.S_IMODE(os.stat(log.parent).st_mode) == 0o700
        assert str(port) not in str(log)  # nothing predictable in the name
    finally:
        tensorboard.stop_all()
    assert not log.parent.exists()


def test_check_models_accepts_only_exports_under_the_participants_own_prefix(s3_config: S3Config, tmp_path) -> None:
    from mnistkit import s3
    from mnistkit.errors import ConfigError
    from mnistkit.workshop.leaderboard import Leaderboard
    from mnistkit.workshop.runs import owned_export, record_run

    client = s3.make_client(s3_config)
    b = s3_config.bucket
    client.put_object(Bucket=b, Key="workshop/room1/bob/models/m/export/mnist/1/saved_model.pb", Body=b"bob's")
    client.put_object(Bucket=b, Key="secret/notes.txt", Body=b"not for the room")
    cache = tmp_path / "cache"
    cache.mkdir()
    hostile = {
        "eve1": f"s3://{b}/..",
        "eve2": f"s3://{b}/workshop/room1/eve2/../bob/models/m/export/mnist/1",
        "eve3": f"s3://{b}/workshop/room1/bob/models/m/export/mnist/1",  # another's model, to borrow its score
        "eve4": f"s3://{b}/",
        "eve5": f"s3://{b}/workshop/room1/eve5",
        "eve6": "s3://other-bucket/workshop/room1/eve6/x",
        "eve7": str(tmp_path),  # a local path on the instructor's machine
        "eve8": f"s3://{b}/workshop/room1/eve8/./../../../secret",
    }
    for person, export in hostile.items():
        record_run(s3_config, "room1", person, {"test_accuracy": 0.9, "export": export})
    board = Leaderboard(s3_config, "room1")
    board.refresh(checks=False)
    results = board.check_models(cache_dir=str(cache))
    escaped = [p for p in tmp_path.rglob("*") if cache not in (p, *p.parents)]
    assert escaped == []  # nothing written beside the cache folder
    assert [p for p in cache.rglob("*") if p.is_file()] == []  # and nothing downloaded into it
    for person in hostile:
        message = results[person].message
        assert not results[person].passed and ("own prefix" in message or "not an s3://" in message), (person, message)
    print(f"FIGURE escaped_paths tried={len(hostile)} escaped=0 downloaded=0")
    assert (
        owned_export(f"s3://{b}/workshop/room1/ada/models/j/export/mnist/3/", b, "room1", "ada")
        == "workshop/room1/ada/models/j/export/mnist/3"
    )
    with pytest.raises(ConfigError, match="export"):
        owned_export(f"s3://{b}/workshop/room1/ada2/x", b, "room1", "ada")


def _bomb(path, megabytes: int = 200) -> None:
    """A valid label-file header (10 labels) followed by ``megabytes`` of zeros, gzipped (~200 KB on disk)."""
    import struct
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [c.compress(struct.pack(">II", 2049, 10))]
    block = bytes(1 << 20)
    parts += [c.compress(block) for _ in range(megabytes)]
    parts.append(c.flush())
    path.write_bytes(b"".join(parts))


def test_gzip_bomb_decompresses_only_to_the_size_its_idx_header_implies(tmp_path) -> None:
    import struct
    import tracemalloc

    from mnistkit import data
    from mnistkit.errors import DataError

    bomb = tmp_path / "train-labels-idx1-ubyte.gz"
    _bomb(bomb)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    with pytest.raises(DataError, match="padded") as err:
        data.read_idx(bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"FIGURE gzip_bomb compressed_bytes={bomb.stat().st_size} inflated_bytes={200 << 20} peak_memory_bytes={peak}"
    )
    assert err.value.field == "path" and peak < 20_000_000, peak  # 200 MB were in there (459 MB peak before the cap)
    liar = tmp_path / "liar-idx3-ubyte"  # a header promising 4 G images is refused before reading on
    liar.write_bytes(struct.pack(">IIII", 2051, 2**32 - 1, 28, 28))
    with pytest.raises(DataError, match="over the"):
        data.read_idx(liar)
    # well-formed files, one or several gzip members, still read
    ok = tmp_path / "ok-idx1-ubyte.gz"
    data.write_idx(ok, np.arange(10, dtype=np.uint8))
    assert data.read_idx(ok).tolist() == list(range(10))
    import gzip

    payload = struct.pack(">II", 2049, 3) + bytes([1, 2, 3])
    (tmp_path / "multi.gz").write_bytes(gzip.compress(payload[:5]) + gzip.compress(payload[5:]))
    assert data.read_idx(tmp_path / "multi.gz").tolist() == [1, 2, 3]


def test_dataset_object_over_the_cap_is_refused_by_its_listed_size(s3_config: S3Config, monkeypatch) -> None:
    from mnistkit import data, s3
    from mnistkit.errors import DataError

    client = s3.make_client(s3_config)
    for name in data.FILES.values():
        client.put_object(Bucket=s3_config.bucket, Key=f"data/mnist/{name}", Body=b"x" * 2000)
    monkeypatch.setattr(data, "MAX_IDX_BYTES", 1000)
    downloads: list[str] = []
    real = s3.download_file
    monkeypatch.setattr(s3, "download_file", lambda *a, **k: downloads.append(a[2]) or real(*a, **k))
    with pytest.raises(DataError, match="over the 1000 bytes") as err:
        data.load_data_dir(f"s3://{s3_config.bucket}/data/mnist", s3_config)
    assert err.value.field == "data_dir" and downloads == []


_OWNER = """
import sys, time
from mnistkit.config import TrainConfig
from mnistkit.engines.local import LocalEngine
engine = LocalEngine(run_dir=sys.argv[1], python=sys.argv[2], start_timeout=600)
job = engine.submit(TrainConfig(workers=2, model_type="small", train_steps=10), "owned")
while len(job.pids) < 2:
    time.sleep(0.05)
print(" ".join(map(str, job.pids)), flush=True)
sys.stdin.readline()  # the test has seen the workers alive
if sys.argv[3] == "exit":
    sys.exit(0)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie is gone, only not yet reaped
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_local_workers_die_with_their_owner(tmp_path, how: str) -> None:
    """A real owner process (a kernel stand-in) starts 2 workers, then is SIGKILLed or exits: 0 survive."""
    import os
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    fake = tmp_path / "fake-python"  # a 'trainer' that only sleeps, so the test needs no TensorFlow
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(0o755)
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "runs"), str(fake), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert owner.stdout is not None and owner.stdin is not None
    pids = [int(p) for p in owner.stdout.readline().split()]
    try:
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        owner.stdin.write("go\n")
        owner.stdin.flush()
        if how == "sigkill":
            owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=60)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in pids if _alive(p)]
        print(f"FIGURE workers_outliving_owner how={how} workers=2 survivors={len(survivors)}")
        assert survivors == []
    finally:
        for p in pids:
            try:
                os.killpg(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_multi_worker_on_a_networked_machine_is_refused_unless_opted_in(tmp_path, monkeypatch) -> None:
    from mnistkit.config import TrainConfig
    from mnistkit.engines import exposure
    from mnistkit.engines.local import LocalEngine
    from mnistkit.errors import ConfigError

    monkeypatch.delenv(exposure.ALLOW_ENV, raising=False)
    monkeypatch.setattr(exposure, "exposed_addresses", lambda: ["192.0.2.2"])
    engine = LocalEngine(run_dir=tmp_path, python="/bin/false")
    with pytest.raises(ConfigError, match="TensorFlow binds 0.0.0.0") as err:
        engine.submit(TrainConfig(workers=2, model_type="small", train_steps=10), "exposed")
    assert err.value.field == "workers" and "192.0.2.2" in str(err.value) and not (tmp_path / "exposed").exists()
    exposure.check_multi_worker(1)  # one worker opens no port
    exposure.check_multi_worker(2, allow=True)
    monkeypatch.setenv(exposure.ALLOW_ENV, "1")
    exposure.check_multi_worker(2)
    monkeypatch.delenv(exposure.ALLOW_ENV)
    monkeypatch.setattr(exposure, "exposed_addresses", list)  # loopback only: nobody can reach the ports
    exposure.check_multi_worker(2)


def test_exposed_addresses_lists_no_loopback() -> None:
    import ipaddress

    from mnistkit.engines.exposure import exposed_addresses

    assert all(not ipaddress.ip_address(a).is_loopback for a in exposed_addresses())


def test_notebook_proxy_admits_only_loopback_and_the_users_own_job_services() -> None:
    from pathlib import Path

    from mnistkit.proxy_allowlist import allowed_host, host_allowlist

    ns = "alice"
    allowed = [
        "localhost",
        "127.0.0.1",
        "mnist-alice-20261130-1-tb.alice.svc.cluster.local",
        "mnist-alice-x-serving.alice.svc.cluster.local:8501",
        "job-tb.alice.svc",
    ]
    denied = [
        "mnist-bob-x-tb.bob.svc.cluster.local",
        "kube-dns.kube-system.svc.cluster.local",
        "jupyter-alice.alice.svc.cluster.local",
        "x-tb.alice.svc.cluster.local.evil.example",
        "minio.alice.svc.cluster.local",
        "10.0.0.1",
        "metadata.google.internal",
        "x-tb.alice-2.svc.cluster.local",
    ]
    assert [h for h in allowed if not allowed_host(h, ns)] == []
    assert [h for h in denied if allowed_host(h, ns)] == []
    assert not allowed_host("x-tb.alice.svc.cluster.local", "")  # namespace unknown: loopback only
    config = ROOT / "docker" / "notebook" / "jupyter_server_config.py"

    class C:
        class ServerProxy:
            servers: ClassVar[dict[str, object]] = {}
            host_allowlist = None

    # the image's own config file, run as Jupyter runs it
    exec(compile(config.read_text(), str(config), "exec"), {"c": C})  # noqa: S102 - our own config file
    assert C.ServerProxy.host_allowlist is host_allowlist
