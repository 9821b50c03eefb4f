"""S3 round trips against the embedded (moto) server over real HTTP with boto3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mnistkit import s3
from mnistkit.config import S3Config
from mnistkit.errors import S3Error


def _fake_saved_model(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "variables" / "variables.index").write_bytes(b"i" * 100)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(b"d" * 5000)
    (root / "saved_model.pb").write_bytes(b"p" * 300)
    return root


def test_file_and_prefix_round_trip_with_progress(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.bin").write_bytes(b"x" * 70_000)
    (src / "a" / "b" / "deep.txt").write_text("deep")
    seen: list[tuple[int, int]] = []
    keys = s3.upload_dir(client, src, s3_config.bucket, "some/prefix", progress=lambda d, t: seen.append((d, t)))
    assert sorted(keys) == ["some/prefix/a/b/deep.txt", "some/prefix/top.bin"]
    assert seen[-1] == (70_004, 70_004) and all(d <= t for d, t in seen)
    got = s3.download_prefix(client, s3_config.bucket, "some/prefix", tmp_path / "dst")
    assert len(got) == 2
    assert (tmp_path / "dst" / "top.bin").read_bytes() == b"x" * 70_000
    assert (tmp_path / "dst" / "a" / "b" / "deep.txt").read_text() == "deep"
    # only_changed skips what is already there
    assert s3.upload_dir(client, src, s3_config.bucket, "some/prefix", only_changed=True) == []
    assert s3.delete_prefix(client, s3_config.bucket, "some/") == 2


def test_sync_uploads_same_size_changes_and_the_index_last(s3_config: S3Config, tmp_path: Path) -> None:
    """The trainer's checkpoint sync: the ``checkpoint`` index turns from ckpt-2 to ckpt-3 at the same size."""
    client = s3.make_client(s3_config)
    src = tmp_path / "backup"
    src.mkdir()
    (src / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    (src / "ckpt-2.index").write_bytes(b"2" * 500)
    assert s3.upload_dir(client, src, s3_config.bucket, "sync", only_changed=True, last=("checkpoint",)) == [
        "sync/ckpt-2.index", "sync/checkpoint"]  # the index only once what it names is there
    (src / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    (src / "ckpt-3.index").write_bytes(b"3" * 500)
    assert s3.upload_dir(client, src, s3_config.bucket, "sync", only_changed=True, last=("checkpoint",)) == [
        "sync/ckpt-3.index", "sync/checkpoint"]
    body = client.get_object(Bucket=s3_config.bucket, Key="sync/checkpoint")["Body"].read()
    assert b"ckpt-3" in body
    assert s3.upload_dir(client, src, s3_config.bucket, "sync", only_changed=True) == []


def test_missing_object_is_an_error_naming_it(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    with pytest.raises(S3Error, match="nope.bin"):
        s3.download_file(client, s3_config.bucket, "nope.bin", tmp_path / "x")
    assert not list(tmp_path.iterdir())  # no partial file left


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    from mnistkit.embedded_s3 import free_port

    cfg = S3Config(endpoint_url=f"http://127.0.0.1:{free_port()}", use_https=False,
                   access_key_id="a", secret_access_key="CANARY-SECRET-zzz")
    client = s3.make_client(cfg, max_attempts=1, connect_timeout=1)
    with pytest.raises(S3Error) as info:
        s3.probe_bucket(client, "mnist")
    assert "s3://mnist" in str(info.value) and "CANARY" not in str(info.value)


class _Recorder:
    """Wraps a client to record the order of copies into the version prefix."""

    def __init__(self, client: Any, fail_on: str | None = None) -> None:
        self._c, self.copied, self.fail_on = client, [], fail_on

    def copy_object(self, **kw: Any) -> Any:
        if self.fail_on and kw["Key"].endswith(self.fail_on):
            raise ConnectionError("simulated crash mid-publish")
        self.copied.append(kw["Key"])
        return self._c.copy_object(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._c, name)


def test_publish_is_complete_or_absent(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    model = _fake_saved_model(tmp_path / "model")
    rec = _Recorder(client)
    url = s3.publish_model_version(rec, model, s3_config.url("models/mnist"), 3)
    assert url == s3_config.url("models/mnist/3")
    assert rec.copied[-1] == "models/mnist/3/saved_model.pb"  # the marker lands last
    assert s3.list_model_versions(client, s3_config.bucket, "models/mnist") == [3]
    keys = {o["Key"] for o in s3.list_keys(client, s3_config.bucket, "models/")}
    assert not any(".staging" in k for k in keys)  # staging cleaned up
    with pytest.raises(S3Error, match="immutable"):
        s3.publish_model_version(client, model, s3_config.url("models/mnist"), 3)


def test_failed_publish_leaves_no_half_version(s3_config: S3Config, tmp_path: Path) -> None:
    client = s3.make_client(s3_config)
    model = _fake_saved_model(tmp_path / "model")
    with pytest.raises(S3Error, match="simulated crash"):
        s3.publish_model_version(_Recorder(client, fail_on="saved_model.pb"), model, s3_config.url("m"), 1)
    assert list(s3.list_keys(client, s3_config.bucket, "m/")) == []
    assert s3.list_model_versions(client, s3_config.bucket, "m") == []


def test_killed_publish_debris_is_swept_once_stale(s3_config: S3Config, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = s3.make_client(s3_config)
    model = _fake_saved_model(tmp_path / "model")
    # what a publish killed mid-upload leaves: a staging prefix nobody will finish
    s3.upload_dir(client, model, s3_config.bucket, "sweep/mnist/.staging/4-deadbeef0000")
    s3.publish_model_version(client, model, s3_config.url("sweep/mnist"), 1)
    keys = {o["Key"] for o in s3.list_keys(client, s3_config.bucket, "sweep/")}
    # fresh: it could be a publish still uploading, so the publish left it alone
    assert any(k.startswith("sweep/mnist/.staging/4-deadbeef0000/") for k in keys)
    assert s3.sweep_stale_staging(client, s3_config.bucket, "sweep/mnist", older_than_s=3600) == 0
    assert s3.sweep_stale_staging(client, s3_config.bucket, "sweep/mnist2", older_than_s=0) == 0  # a sibling base
    # once old enough (here: any age), the next publish removes it and nothing else
    monkeypatch.setattr(s3, "STALE_STAGING_S", 0)
    s3.publish_model_version(client, model, s3_config.url("sweep/mnist"), 2)
    left = {o["Key"] for o in s3.list_keys(client, s3_config.bucket, "sweep/")}
    assert not any(".staging" in k for k in left)
    assert {k for k in left if "/1/" in k} == {k for k in keys if "/1/" in k}
    assert s3.list_model_versions(client, s3_config.bucket, "sweep/mnist") == [1, 2]


def test_killed_local_publish_debris_is_swept_once_stale(tmp_path: Path) -> None:
    import os
    import time

    from trainer.export import publish_local

    model = _fake_saved_model(tmp_path / "model")
    base = tmp_path / "export"
    dead, live = base / ".tmp-3-0badc0de", base / ".tmp-4-5ca1ab1e"
    for d in (dead, live):
        (d / "variables").mkdir(parents=True)
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(dead, (two_days_ago, two_days_ago))
    publish_local(model, base, 5)
    assert sorted(p.name for p in base.iterdir()) == [".tmp-4-5ca1ab1e", "5"]  # the fresh one may be a live copy


def test_publish_rejects_a_non_saved_model(s3_config: S3Config, tmp_path: Path) -> None:
    with pytest.raises(S3Error, match="not a SavedModel"):
        s3.publish_model_version(s3.make_client(s3_config), tmp_path, s3_config.url("m"), 1)


def test_probe_and_ensure_bucket(s3_config: S3Config) -> None:
    client = s3.make_client(s3_config)
    s3.probe_bucket(client, s3_config.bucket)
    assert list(s3.list_keys(client, s3_config.bucket)) == []  # the probe deleted its object
    assert s3.ensure_bucket(client, s3_config.bucket) is False
    with pytest.raises(S3Error, match="s3://no-such-bucket-here"):
        s3.probe_bucket(client, "no-such-bucket-here")


def test_abort_incomplete_uploads_leaves_no_orphans(s3_config: S3Config) -> None:
    client = s3.make_client(s3_config)
    up = client.create_multipart_upload(Bucket=s3_config.bucket, Key="big/file.bin")
    client.upload_part(Bucket=s3_config.bucket, Key="big/file.bin", UploadId=up["UploadId"], PartNumber=1,
                       Body=b"x" * (5 * 1024 * 1024))
    assert s3.abort_incomplete_uploads(client, s3_config.bucket, "big/") == 1
    assert client.list_multipart_uploads(Bucket=s3_config.bucket).get("Uploads", []) == []
