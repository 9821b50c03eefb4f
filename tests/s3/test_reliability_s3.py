"""S3 under faults: 503 SlowDown and dropped connections, a killed multipart upload, bytes flipped in transit.

Every figure is printed as a ``FIGURE`` line (``pytest -s``) for RELIABILITY.md and asserted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnistkit import data, s3
from mnistkit.config import S3Config
from mnistkit.errors import DataError, S3Error

from helpers.faults import FaultProxy, cached_small_saved_model

pytestmark = pytest.mark.reliability


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_transfers_succeed_through_slowdowns_and_dropped_connections(s3_config: S3Config, tmp_path: Path) -> None:
    model = cached_small_saved_model()
    rng = np.random.default_rng(0)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    sample = data.offline_sample()
    calls, ok = 0, 0
    big = tmp_path / "big.bin"  # > 16 MiB: a multipart upload (create, parts, complete) and ranged GETs
    big.write_bytes(rng.integers(0, 256, 17 * 1024 * 1024, dtype=np.uint8).tobytes())
    # 20% of requests fail: 7% SlowDown, 7% dropped before the store sees them, 6% whose answer is lost after
    # the store acted (so the retry repeats a done PUT, copy, delete or CompleteMultipartUpload).
    with FaultProxy(s3_config.endpoint_url, fault_rate=0.14, lose_response_rate=0.06, seed=7) as proxy:
        cfg = proxy.config(s3_config)
        client = s3.make_client(cfg)
        b = cfg.bucket

        def call(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls, ok
            calls += 1
            result = fn(*args, **kwargs)
            ok += 1
            return result

        call(s3.upload_file, client, blob, b, "files/blob.bin")
        got = call(s3.download_file, client, b, "files/blob.bin", tmp_path / "down" / "blob.bin")
        assert got.read_bytes() == blob.read_bytes()
        call(s3.upload_file, client, big, b, "files/big.bin")
        got = call(s3.download_file, client, b, "files/big.bin", tmp_path / "down" / "big.bin")
        assert got.read_bytes() == big.read_bytes()
        assert s3.abort_incomplete_uploads(client, b) == 0  # no upload left open by a retried complete
        call(s3.upload_dir, client, model, b, "prefix/model")
        call(s3.download_prefix, client, b, "prefix/model", tmp_path / "prefix")
        assert _tree(tmp_path / "prefix") == _tree(model)
        call(data.upload_dataset, sample, cfg.url("data/mnist"), cfg)
        back = call(data.load_data_dir, cfg.url("data/mnist"), cfg)
        assert np.array_equal(back.x_train, sample.x_train) and np.array_equal(back.y_test, sample.y_test)
        url = call(s3.publish_model_version, client, model, cfg.url("models/mnist"), 1)
        assert url == cfg.url("models/mnist/1")
        assert call(s3.list_model_versions, client, b, "models/mnist") == [1]
        call(s3.download_prefix, client, b, "models/mnist/1", tmp_path / "published")
        assert _tree(tmp_path / "published") == _tree(model)
        # nothing of the staging dance is left behind, even with retried deletes and copies
        assert [o["Key"] for o in s3.list_keys(client, b, "models/mnist/.staging")] == []
        st = proxy.stats
    print(f"FIGURE s3_faults_transfers calls={calls} succeeded={ok} success_rate={ok / calls:.3f} "
          f"requests={st.requests} slowdowns={st.slowdowns} drops={st.drops} lost_responses={st.lost_responses} "
          f"attempts_per_call={st.attempts_per_call():.2f}")
    assert ok == calls
    assert st.slowdowns > 0 and st.drops > 0 and st.lost_responses > 0, "a fault kind never happened: proves nothing"


_UPLOADER = """
import sys
from mnistkit import s3
from mnistkit.config import S3Config
cfg = S3Config(bucket=sys.argv[1], endpoint_url=sys.argv[2], access_key_id="k", secret_access_key="s",
               use_https=False)
print("start", flush=True)
s3.upload_file(s3.make_client(cfg), sys.argv[3], cfg.bucket, "big/file.bin")
print("done", flush=True)
"""


@pytest.mark.slow
def test_killed_multipart_upload_leaves_no_orphan_parts(s3_config: S3Config, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024 * 1024))  # > 16 MiB threshold: 5 parts of 8 MiB
    client = s3.make_client(s3_config)
    # Each stored part's answer is held 1 s: the upload is surely still running when a part shows up.
    part_delay = (lambda command, path: 1.0 if command == "PUT" and "partNumber=" in path else 0.0)
    with FaultProxy(s3_config.endpoint_url, fault_rate=0.0, answer_delay=part_delay) as proxy:
        proc = subprocess.Popen(
            [sys.executable, "-c", _UPLOADER, s3_config.bucket, proxy.url, str(big)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        uploads: list[dict] = []
        while time.monotonic() < deadline and proc.poll() is None:
            uploads = client.list_multipart_uploads(Bucket=s3_config.bucket).get("Uploads", [])
            if uploads:
                parts = client.list_parts(Bucket=s3_config.bucket, Key="big/file.bin",
                                          UploadId=uploads[0]["UploadId"]).get("Parts", [])
                if parts:
                    break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the upload finished before it could be killed mid-way"
    before = len(client.list_multipart_uploads(Bucket=s3_config.bucket).get("Uploads", []))
    parts_before = sum(
        len(client.list_parts(Bucket=s3_config.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
        for u in client.list_multipart_uploads(Bucket=s3_config.bucket).get("Uploads", [])
    )
    aborted = s3.abort_incomplete_uploads(client, s3_config.bucket)
    after = len(client.list_multipart_uploads(Bucket=s3_config.bucket).get("Uploads", []))
    visible = [o["Key"] for o in s3.list_keys(client, s3_config.bucket, "big/")]
    print(f"FIGURE s3_killed_multipart uploads_left_by_kill={before} parts_left={parts_before} aborted={aborted} "
          f"orphans_after_abort={after} half_objects_visible={len(visible)}")
    assert before >= 1 and parts_before >= 1
    assert aborted == before
    assert after == 0
    assert visible == []  # a killed multipart upload never shows as a (short) object


def test_bytes_flipped_in_transit_are_detected_and_redownloaded(s3_config: S3Config, tmp_path: Path) -> None:
    model = cached_small_saved_model()
    client = s3.make_client(s3_config)
    s3.upload_dir(client, model, s3_config.bucket, "m")
    keys = [o["Key"] for o in s3.list_keys(client, s3_config.bucket, "m/")]
    with FaultProxy(s3_config.endpoint_url, fault_rate=0.0, corrupt_rate=0.3, seed=3) as proxy:
        pclient = s3.make_client(proxy.config(s3_config))
        # What boto3 alone does (checksum validation "when_required"): flipped bytes land on disk silently.
        raw_slipped = 0
        for i, key in enumerate(keys * 3):
            target = tmp_path / "raw" / f"{i}"
            pclient.download_file(s3_config.bucket, key, str(target)) if target.parent.mkdir(
                parents=True, exist_ok=True) is None else None
            raw_slipped += target.read_bytes() != (model / key[2:]).read_bytes()
        injected_raw = proxy.stats.corruptions
        # mnistkit.s3.download_prefix verifies each file against its ETag and downloads a bad one again.
        # (repeated until the proxy has corrupted at least one of its GETs: the draw is random per request)
        injected = 0
        for attempt in range(8):
            s3.download_prefix(pclient, s3_config.bucket, "m", tmp_path / f"checked-{attempt}")
            assert _tree(tmp_path / f"checked-{attempt}") == _tree(model)
            injected = proxy.stats.corruptions - injected_raw
            if injected:
                break
        # A link that corrupts every GET: an error naming the object, and no corrupt file left in place.
        proxy.corrupt_rate = 1.0
        with pytest.raises(S3Error, match="saved_model.pb") as err:
            s3.download_file(pclient, s3_config.bucket, "m/saved_model.pb", tmp_path / "bad" / "saved_model.pb")
        assert "corrupted in transit" in str(err.value) and err.value.field == "key"
        assert not (tmp_path / "bad" / "saved_model.pb").exists()
        assert list((tmp_path / "bad").iterdir()) == []  # no .part file left either
    print(f"FIGURE s3_corruption raw_boto3_injected={injected_raw} raw_boto3_slipped={raw_slipped} "
          f"mnistkit_injected={injected} mnistkit_slipped=0 always_corrupt_link_error=1")
    assert injected_raw > 0 and raw_slipped > 0, "documents why the product verifies: boto3 alone lets it through"
    assert injected > 0


@pytest.mark.slow
def test_corrupt_dataset_at_rest_is_a_data_error(s3_config: S3Config, tmp_path: Path) -> None:
    # Corruption at rest (ETag matches the bad bytes): only the gzip CRC and IDX header checks can see it.
    sample = data.offline_sample()
    data.upload_dataset(sample, s3_config.url("data/mnist"), s3_config)
    client = s3.make_client(s3_config)
    rng = np.random.default_rng(1)
    detected, tried = 0, 0
    for filename in sorted(data.FILES.values()):
        key = f"data/mnist/{filename}"
        original = client.get_object(Bucket=s3_config.bucket, Key=key)["Body"].read()
        for _ in range(2):
            bad = bytearray(original)
            i = int(rng.integers(10, len(bad) - 8))  # past the gzip header, inside the deflate stream
            bad[i] ^= 0xFF
            client.put_object(Bucket=s3_config.bucket, Key=key, Body=bytes(bad))
            tried += 1
            with pytest.raises(DataError) as err:
                data.load_data_dir(s3_config.url("data/mnist"), s3_config)
            assert err.value.field == "path" and filename in str(err.value)
            detected += 1
        # truncated in the middle, as a killed writer leaves it
        client.put_object(Bucket=s3_config.bucket, Key=key, Body=original[: len(original) // 2])
        tried += 1
        with pytest.raises(DataError, match="corrupt or truncated"):
            data.load_data_dir(s3_config.url("data/mnist"), s3_config)
        detected += 1
        client.put_object(Bucket=s3_config.bucket, Key=key, Body=original)
    print(f"FIGURE dataset_corruption_at_rest tried={tried} detected={detected} slipped={tried - detected}")
    assert detected == tried


def test_publish_over_the_debris_of_a_killed_publish(s3_config: S3Config, tmp_path: Path) -> None:
    # A publish killed during its copy phase leaves <base>/<N>/ without saved_model.pb; servers ignore it, and
    # the trainer (next version = highest listed + 1) picks N again, so that publish must not be refused.
    model = cached_small_saved_model()
    client = s3.make_client(s3_config)
    client.put_object(Bucket=s3_config.bucket, Key="m/3/variables/variables.index", Body=b"half")
    client.put_object(Bucket=s3_config.bucket, Key="m/3/fingerprint.pb", Body=b"half")
    assert s3.list_model_versions(client, s3_config.bucket, "m") == []
    s3.publish_model_version(client, model, s3_config.url("m"), 3)
    assert s3.list_model_versions(client, s3_config.bucket, "m") == [3]
    s3.download_prefix(client, s3_config.bucket, "m/3", tmp_path / "v3")
    assert _tree(tmp_path / "v3") == _tree(model)
    with pytest.raises(S3Error, match="immutable") as err:  # a complete version stays immutable
        s3.publish_model_version(client, model, s3_config.url("m"), 3)
    assert err.value.field == "version"
