"""Publishing under contention and outages (issue 16): claimed versions, verified staging, exports kept.

* concurrent publishers of the same version number: one wins, the other gets ``VersionTaken``; with the
  number left to mnistkit each gets its own; no listed version ever mixes two models' files;
* a byte flipped between the local file and the staged object is caught before anything is published;
* an S3 outage at export time (the embedded moto server stopped, then restarted on the same port): the
  publish retries and lands; an outage that outlasts the retries keeps the export and says in one sentence
  where it is and which command publishes it later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnistkit import s3
from mnistkit.config import S3Config
from mnistkit.embedded_s3 import EmbeddedS3
from mnistkit.errors import S3Error, TrainingError
from mnistkit.publish import VersionTaken, next_free_version, publish_model_version, publish_with_retries


def _model(root: Path, tag: bytes) -> Path:
    """A fake SavedModel whose every file carries ``tag``: a mixed version shows two tags."""
    (root / "variables").mkdir(parents=True)
    (root / "variables" / "variables.index").write_bytes(tag * 50)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(tag * 3000)
    (root / "fingerprint.pb").write_bytes(tag * 20)
    (root / "saved_model.pb").write_bytes(tag * 200)
    return root


def _tags(client, bucket: str, prefix: str) -> set[bytes]:
    return {
        client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()[:1] for o in s3.list_keys(client, bucket, prefix)
    }


TRIALS = 20


def test_concurrent_publishers_never_mix_or_delete_each_others_versions(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    models = [_model(tmp_path / f"m{i}", tag) for i, tag in enumerate((b"A", b"B", b"C"))]
    mixed = lost = both_won = 0
    for trial in range(TRIALS):
        explicit = trial % 2 == 0  # half the trials: all three ask for the same number; half: mnistkit picks
        base = s3_config.url(f"race{trial}/mnist")
        barrier = threading.Barrier(len(models))
        outcomes: list[tuple[int, str | BaseException]] = []

        def publish(
            i: int,
            base: str = base,
            barrier: threading.Barrier = barrier,
            explicit: bool = explicit,
            outcomes: list = outcomes,
        ) -> None:
            barrier.wait()
            try:
                outcomes.append((i, publish_model_version(client, models[i], base, 1 if explicit else None)))
            except VersionTaken as exc:
                outcomes.append((i, exc))

        threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(models))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        winners = [(i, url) for i, url in outcomes if isinstance(url, str)]
        prefix = f"race{trial}/mnist"
        listed = s3.list_model_versions(client, s3_config.bucket, prefix)
        for v in listed:
            if len(_tags(client, s3_config.bucket, f"{prefix}/{v}/")) != 1:
                mixed += 1
        for i, url in winners:  # every publish that returned is there, whole, with its own bytes
            v = int(url.rsplit("/", 1)[-1])
            if v not in listed or _tags(client, s3_config.bucket, f"{prefix}/{v}/") != {b"ABC"[i : i + 1]}:
                lost += 1
        if explicit:
            both_won += len(winners) != 1
            assert len(outcomes) == 3 and listed == [1]
        else:
            assert len(winners) == 3 and listed == [1, 2, 3]
    print(
        f"FIGURE concurrent_publishers trials={TRIALS} publishers=3 mixed_versions={mixed} lost_versions={lost} "
        f"same_number_won_by_more_than_one={both_won}"
    )
    assert mixed == lost == both_won == 0


def test_a_byte_flipped_before_staging_is_never_published(
    s3_config: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3.make_client(s3_config)
    model = _model(tmp_path / "m", b"A")
    real_upload = s3.upload_file

    def flipping_upload(client, path, bucket, key, progress=None):
        if key.endswith("variables.data-00000-of-00001"):
            data = bytearray(Path(path).read_bytes())
            data[1234] ^= 0x01
            client.put_object(Bucket=bucket, Key=key, Body=bytes(data))  # same size, one bit off
            return
        real_upload(client, path, bucket, key, progress)

    monkeypatch.setattr(s3, "upload_file", flipping_upload)
    with pytest.raises(S3Error, match="variables.data-00000-of-00001: ETag") as err:
        publish_model_version(client, model, s3_config.url("flip"), 1)
    assert err.value.field == "version"
    assert s3.list_model_versions(client, s3_config.bucket, "flip") == []
    assert [o["Key"] for o in s3.list_keys(client, s3_config.bucket, "flip/")] == []  # no debris, claim released


def test_killed_publishs_number_is_skipped_not_reused(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    # what a publish SIGKILLed after its claim leaves: the claim and part of the version, no marker
    client.put_object(Bucket=s3_config.bucket, Key="k/.claims/2", Body=b"dead publisher")
    client.put_object(Bucket=s3_config.bucket, Key="k/2/variables/variables.index", Body=b"half")
    publish_model_version(client, _model(tmp_path / "m1", b"A"), s3_config.url("k"), 1)
    assert next_free_version(client, s3_config.bucket, "k") == 3
    assert publish_model_version(client, _model(tmp_path / "m3", b"B"), s3_config.url("k")) == s3_config.url("k/3")
    with pytest.raises(VersionTaken, match="claimed"):
        publish_model_version(client, _model(tmp_path / "m2", b"C"), s3_config.url("k"), 2)
    assert s3.list_model_versions(client, s3_config.bucket, "k") == [1, 3]


@pytest.fixture
def own_s3() -> Iterator[EmbeddedS3]:
    """An embedded server of this test's own, so stopping it does not stop the session's."""
    import uuid

    server = EmbeddedS3(bucket=f"outage-{uuid.uuid4().hex[:12]}").start()  # moto's state is per process: own bucket
    yield server
    server.stop()


def test_publish_retries_through_an_outage_and_lands(own_s3: EmbeddedS3, tmp_path: Path) -> None:
    cfg = own_s3.config
    client = s3.make_client(cfg, max_attempts=2, connect_timeout=1)
    model = _model(tmp_path / "m", b"A")
    own_s3.stop()
    retries: list[float] = []
    restarted = threading.Event()

    def restart_after_two_retries(delay: float, exc: BaseException) -> None:
        retries.append(delay)
        if len(retries) == 2:  # the store has been down for two attempts: bring it back
            own_s3.start()
            restarted.set()

    t0 = time.monotonic()
    url = publish_with_retries(
        client, model, cfg.url("models/mnist"), retry_for_s=120, on_retry=restart_after_two_retries
    )
    assert restarted.is_set() and url == cfg.url("models/mnist/1")
    assert s3.list_model_versions(client, cfg.bucket, "models/mnist") == [1]
    print(f"FIGURE publish_outage_unit retries={len(retries)} seconds={time.monotonic() - t0:.1f}")


def test_publish_that_outlasts_its_retries_keeps_the_export_and_says_how_to_publish(
    own_s3: EmbeddedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main
    from trainer.export import publish_export

    cfg = own_s3.config
    for k, v in cfg.to_env(include_secrets=True).items():
        monkeypatch.setenv(k, v)
    model = _model(tmp_path / "work" / "export-unpublished-x" / "model", b"A")
    base = cfg.url("models/mnist")
    own_s3.stop()
    with pytest.raises(TrainingError) as err:
        publish_export(model, base, retry_s=2)
    sentence = str(err.value)
    assert "\n" not in sentence and f"it is kept in {model}" in sentence
    assert f"publish it later with: mnistkit publish {model} {base}" in sentence
    assert (model / "saved_model.pb").is_file()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # in a TFJob pod the sentence says what survives
    with pytest.raises(TrainingError, match="backup/ on S3, and resubmitting the same job resumes"):
        publish_export(model, base, retry_s=0)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    own_s3.start()
    command = sentence.split("publish it later with: mnistkit ", 1)[1].split()
    assert main(command) == 0
    assert f"published {base}/1" in capsys.readouterr().out
    client = s3.make_client(cfg)
    assert s3.list_model_versions(client, cfg.bucket, "models/mnist") == [1] and not model.exists()


def _train_through(own_s3: EmbeddedS3, tmp_path: Path, name: str, *, retry_s: str, outage_s: float | None):
    """``python -m trainer.task`` writing to the embedded S3; the server stops when the last epoch ends (so
    the export meets the outage) and comes back after ``outage_s`` (None: not while the trainer runs)."""
    import os
    import subprocess
    import sys

    cfg = own_s3.config
    env = {
        **os.environ,
        **cfg.to_env(include_secrets=True),
        "MNISTKIT_PUBLISH_RETRY_S": retry_s,
        "MNISTKIT_WORK_DIR": str(tmp_path / name),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TF_CONFIG", None)
    cmd = [
        sys.executable,
        "-m",
        "trainer.task",
        f"--tf-model-dir={cfg.url(name)}",
        "--tf-model-type=small",
        "--tf-train-steps=40",
        "--tf-batch-size=100",
        "--tf-sync-seconds=1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    lines, timer = [], None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("[trainer] epoch ") and line.split()[2].split("/")[0] == line.split()[2].split("/")[1]:
            own_s3.stop()
            if outage_s is not None:
                timer = threading.Timer(outage_s, own_s3.start)
                timer.start()
    rc = proc.wait(timeout=600)
    if timer is not None:
        timer.join()
    return rc, lines


@pytest.mark.slow
@pytest.mark.reliability
def test_an_s3_outage_at_export_time_loses_no_trained_model(
    own_s3: EmbeddedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnistkit.cli import main

    cfg = own_s3.config
    for k, v in cfg.to_env(include_secrets=True).items():  # for the in-process `mnistkit publish` at the end
        monkeypatch.setenv(k, v)
    outage = 60.0
    rc, lines = _train_through(own_s3, tmp_path, "run1", retry_s="600", outage_s=outage)
    client = s3.make_client(cfg)
    assert rc == 0, "\n".join(lines[-20:])
    assert any("retrying in" in ln for ln in lines) and s3.list_model_versions(
        client, cfg.bucket, "run1/export/mnist"
    ) == [1]
    # an outage longer than the retries: exit 1 with one sentence (no traceback), the export kept on disk
    rc2, lines2 = _train_through(own_s3, tmp_path, "run2", retry_s="5", outage_s=None)
    assert rc2 == 1 and not any("Traceback" in ln for ln in lines2), "\n".join(lines2[-20:])
    last = lines2[-1]
    assert last.startswith("trainer: error: could not publish the model to ") and "it is kept in " in last, last
    kept = Path(last.split("it is kept in ", 1)[1].split(", publish it later", 1)[0])
    assert (kept / "saved_model.pb").is_file() and kept.is_relative_to(tmp_path / "run2")
    own_s3.start()
    assert main(last.split("publish it later with: mnistkit ", 1)[1].split()) == 0
    assert s3.list_model_versions(client, cfg.bucket, "run2/export/mnist") == [1]
    print(
        f"FIGURE s3_outage_at_export outage_s={outage:.0f} trainings=2 models_lost=0 "
        f"published_after_outage=1 kept_and_published_later=1"
    )
