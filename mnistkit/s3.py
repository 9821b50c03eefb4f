"""S3 I/O with boto3: a client that works with AWS, MinIO, Ceph and moto; files and prefixes up and
down with progress. ``publish_model_version`` (re-exported from ``mnistkit.publish``, which says how)
makes a SavedModel version visible only when it is complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.config import S3Config
from mnistkit.errors import S3Error

if TYPE_CHECKING:  # boto3 is a core dependency, but its import costs ~0.3 s: load on first use.
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client  # the stubs (dev extra): every S3 call is checked

__all__ = [
    "Progress",
    "make_client",
    "ensure_bucket",
    "upload_file",
    "download_file",
    "upload_dir",
    "download_prefix",
    "list_keys",
    "delete_prefix",
    "publish_model_version",
    "list_model_versions",
    "abort_incomplete_uploads",
    "sweep_stale_staging",
    "probe_bucket",
]

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a transfer runs."""

STAGING_PREFIX = ".staging"
STALE_STAGING_S = 24 * 3600
"""A staging prefix untouched this long belongs to a killed publish (a live one writes every few seconds)."""


def make_client(cfg: S3Config, *, max_attempts: int = 8, connect_timeout: float = 5.0) -> S3Client:
    """A boto3 S3 client for ``cfg``.

    * retry mode ``standard`` (retries 5xx, SlowDown, throttling and dropped connections with backoff);
    * checksums only "when required": boto3 >= 1.36 sends CRC32 trailers by default, which older MinIO,
      Ceph and some proxies reject (``XAmzContentSHA256Mismatch`` / ``InvalidArgument``);
    * path-style addressing, since self-hosted stores rarely have wildcard DNS.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        connect_timeout=connect_timeout,
        read_timeout=60,
        signature_version="s3v4",
    )
    kwargs: dict[str, Any] = {"region_name": cfg.region, "config": config, "verify": cfg.verify_ssl}
    if cfg.endpoint_url:
        kwargs["endpoint_url"] = cfg.endpoint_url
    if cfg.access_key_id:
        kwargs["aws_access_key_id"] = cfg.access_key_id
        kwargs["aws_secret_access_key"] = cfg.secret_access_key
    return boto3.session.Session().client("s3", **kwargs)


def _wrap(op: str, target: str, exc: Exception) -> S3Error:
    # botocore messages never contain the secret key; they may contain the access key id, which is not secret.
    return S3Error(f"S3 {op} failed for {target}: {exc}", field="s3", value=target)


def ensure_bucket(client: S3Client, bucket: str, region: str = "us-east-1") -> bool:
    """Create ``bucket`` unless it exists. Returns True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise _wrap("head_bucket", f"s3://{bucket}", exc) from None
    except Exception as exc:  # noqa: BLE001 - EndpointConnectionError, NoCredentialsError...: not ClientErrors, same story
        raise _wrap("head_bucket", f"s3://{bucket}", exc) from None
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise _wrap("create_bucket", f"s3://{bucket}", exc) from None
        return False
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise _wrap("create_bucket", f"s3://{bucket}", exc) from None
    return True


MULTIPART_THRESHOLD = 16 * 1024 * 1024


def _transfer_config() -> TransferConfig:
    from boto3.s3.transfer import TransferConfig

    # Threads help a remote store; on loopback they mostly add overhead, but 4 keeps large files fast.
    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4, use_threads=True)


class _Counter:
    """Adapts boto3's per-chunk byte callbacks to ``progress(done, total)``."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def upload_file(
    client: S3Client, path: str | os.PathLike[str], bucket: str, key: str, progress: Progress | None = None
) -> None:
    """Upload one file; a missing local file or an S3 failure is an error naming both ends."""
    path = Path(path)
    if not path.is_file():
        raise S3Error(f"cannot upload {path}: no such file", field="path", value=str(path))
    size = path.stat().st_size
    try:
        if size < MULTIPART_THRESHOLD:
            # One PUT, as the transfer manager would send, without starting its thread pool for each file
            # (most of the time of a small upload: the dataset's four files, checkpoints, event files).
            with path.open("rb") as body:
                client.put_object(Bucket=bucket, Key=key, Body=body)
            _Counter(size, progress)(size)
        else:
            client.upload_file(str(path), bucket, key, Callback=_Counter(size, progress), Config=_transfer_config())
    except Exception as exc:  # noqa: BLE001 - boto3 raises S3UploadFailedError, ClientError, EndpointConnectionError...
        raise _wrap("upload", f"s3://{bucket}/{key}", exc) from None


def _etag_check(client: S3Client, bucket: str, key: str, head: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(etag, part_size)`` to verify a download against, or None when the ETag is not an MD5.

    boto3 checks downloads against nothing (``response_checksum_validation="when_required"`` and most
    objects carry no CRC), so a byte flipped by a proxy or a bad NIC would land on disk unnoticed. A
    plain upload's ETag is the MD5 of its bytes (``part_size`` 0); a multipart one is the MD5 of the
    parts' MD5s plus ``-<parts>``, recomputed with the part size read from part 1. SSE-KMS and SSE-C
    ETags are no MD5s at all, so those objects keep the size check only.
    """
    etag = str(head.get("ETag", "")).strip('"').lower()
    if head.get("SSECustomerAlgorithm") or "kms" in str(head.get("ServerSideEncryption", "")):
        return None
    if re.fullmatch(r"[0-9a-f]{32}", etag):
        return etag, 0
    if not re.fullmatch(r"[0-9a-f]{32}-\d+", etag):
        return None
    try:
        part_size = int(client.head_object(Bucket=bucket, Key=key, PartNumber=1)["ContentLength"])
    except Exception:  # noqa: BLE001 - a store without per-part HEAD: the size check still applies
        return None
    return (etag, part_size) if part_size > 0 else None


def _local_etag(path: Path, part_size: int) -> str:
    """The ETag S3 computes for ``path`` uploaded whole (``part_size`` 0) or in parts of ``part_size``."""
    if part_size == 0:
        h = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    digests = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(part_size):
            digests += hashlib.md5(chunk, usedforsecurity=False).digest()
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(digests) // 16}"


def download_file(
    client: S3Client,
    bucket: str,
    key: str,
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    *,
    attempts: int = 3,
    listed: dict[str, Any] | None = None,
) -> Path:
    """Download one object to ``path`` atomically (a temp file renamed into place) and verify it.

    ``listed`` (an entry of ``list_keys``: ``Size`` and ``ETag``) saves the HEAD request on the first try,
    which halves the requests of a prefix download; a retry always asks the object itself.

    The size must match and, where the ETag is an MD5 (plain or multipart uploads), the content too; a
    mismatch is downloaded again (corruption in transit is usually transient) up to ``attempts`` times,
    then it is an ``S3Error`` naming the key. A corrupt file never replaces ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    problem = ""
    try:
        for attempt in range(max(1, attempts)):
            if attempt == 0 and listed is not None and "Size" in listed and "ETag" in listed:
                head: Mapping[str, Any] = {"ContentLength": listed["Size"], "ETag": listed["ETag"]}
            else:
                head = client.head_object(Bucket=bucket, Key=key)
            size = head["ContentLength"]
            client.download_file(bucket, key, str(tmp), Callback=_Counter(size, progress), Config=_transfer_config())
            got = tmp.stat().st_size
            if got != size:
                problem = f"got {got} bytes, expected {size}"
                continue
            check = _etag_check(client, bucket, key, head)
            if check is not None and _local_etag(tmp, check[1]) != check[0]:
                problem = f"content does not match its ETag {check[0]} (corrupted in transit)"
                continue
            os.replace(tmp, path)
            return path
        raise S3Error(f"s3://{bucket}/{key}: {problem} after {attempts} attempts", field="key", value=key)
    except S3Error:
        raise
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise _wrap("download", f"s3://{bucket}/{key}", exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def list_keys(client: S3Client, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    """Every object under ``prefix`` (dicts with ``Key``, ``Size``, ``ETag``), paginated."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise _wrap("list", f"s3://{bucket}/{prefix}", exc) from None


def _offset(progress: Progress | None, base: int, total: int) -> Progress | None:
    """Report one file's progress as part of a multi-file transfer."""
    if progress is None:
        return None
    return lambda done, _total: progress(base + done, total)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def upload_dir(
    client: S3Client,
    root: str | os.PathLike[str],
    bucket: str,
    prefix: str,
    progress: Progress | None = None,
    *,
    only_changed: bool = False,
    last: Collection[str] = (),
) -> list[str]:
    """Upload every file under ``root`` to ``prefix``; returns the keys written, in upload order.

    ``only_changed`` skips files the store already holds byte for byte: same size and, where the ETag
    is an MD5 (plain or multipart, as downloads verify), same content (used by the trainer's periodic
    sync of TensorBoard events and checkpoints, where most files are unchanged between syncs; a checkpoint's
    ``checkpoint`` index changes from ``ckpt-2`` to ``ckpt-3`` without changing size). Files named in
    ``last`` go after all others, so an index is never in the store before the files it points to.
    """
    root = Path(root)
    files = sorted(_files(root), key=lambda f: f.name in last)  # stable: the others keep their order
    existing: dict[str, dict[str, Any]] = {}
    if only_changed:
        existing = {o["Key"]: o for o in list_keys(client, bucket, prefix.rstrip("/") + "/")}
    total = sum(p.stat().st_size for p in files)
    done = 0
    written = []
    for p in files:
        key = f"{prefix.rstrip('/')}/{p.relative_to(root).as_posix()}".lstrip("/")
        size = p.stat().st_size
        if not (only_changed and _same_content(client, bucket, key, p, existing.get(key))):
            upload_file(client, p, bucket, key, progress=_offset(progress, done, total))
            written.append(key)
        done += size
    if progress:
        progress(total, total)
    return written


def _same_content(client: S3Client, bucket: str, key: str, path: Path, listed: dict[str, Any] | None) -> bool:
    """Whether the object ``listed`` (a ``list_keys`` entry) holds ``path``'s bytes; unsure means no."""
    if listed is None or listed["Size"] != path.stat().st_size:
        return False
    check = _etag_check(client, bucket, key, listed)
    return check is not None and _local_etag(path, check[1]) == check[0]


def download_prefix(
    client: S3Client, bucket: str, prefix: str, root: str | os.PathLike[str], progress: Progress | None = None
) -> list[Path]:
    """Download every object under ``prefix`` into ``root`` keeping relative paths."""
    root = Path(root)
    prefix = prefix.strip("/")
    objs = [o for o in list_keys(client, bucket, prefix + "/" if prefix else "") if not o["Key"].endswith("/")]
    total = sum(o["Size"] for o in objs)
    done = 0
    paths = []
    for o in objs:
        rel = o["Key"][len(prefix) :].lstrip("/") if prefix else o["Key"]
        target = root / rel
        if ".." in Path(rel).parts:
            raise S3Error(f"refusing to write outside {root}: key {o['Key']!r}", field="key", value=o["Key"])
        download_file(client, bucket, o["Key"], target, progress=_offset(progress, done, total), listed=o)
        done += o["Size"]
        paths.append(target)
    if progress:
        progress(total, total)
    return paths


def delete_prefix(client: S3Client, bucket: str, prefix: str) -> int:
    """Delete every object under ``prefix``; returns how many."""
    keys = [o["Key"] for o in list_keys(client, bucket, prefix)]
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        try:
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
        except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
            raise _wrap("delete", f"s3://{bucket}/{prefix}", exc) from None
    return len(keys)


def abort_incomplete_uploads(client: S3Client, bucket: str, prefix: str = "") -> int:
    """Abort multipart uploads left behind by a killed process, so no orphan parts cost storage."""
    aborted = 0
    try:
        # paginated: one listing returns at most 1000 uploads, and a crash loop can leave more
        uploads = [
            up
            for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
            for up in page.get("Uploads", [])
        ]
        for up in uploads:
            client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
            aborted += 1
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise _wrap("abort multipart uploads", f"s3://{bucket}/{prefix}", exc) from None
    return aborted


def list_model_versions(client: S3Client, bucket: str, base_prefix: str) -> list[int]:
    """Numeric version directories under ``base_prefix`` that hold a ``saved_model.pb``, ascending."""
    from mnistkit.versions import versions_from_keys

    base = base_prefix.strip("/") + "/"
    return versions_from_keys((o["Key"] for o in list_keys(client, bucket, base)), base)


def sweep_stale_staging(client: S3Client, bucket: str, base_prefix: str, older_than_s: float | None = None) -> int:
    """Delete ``<base>/.staging/<N>-<id>/`` prefixes left by killed publishes; returns how many.

    Only prefixes whose newest object is older than ``older_than_s`` (default ``STALE_STAGING_S``, a day)
    go: a publish still uploading keeps writing, so it is never swept from under its feet. Every
    successful ``publish_model_version`` calls this, so debris lasts at most a day past the next publish.
    """
    import datetime as dt

    limit = STALE_STAGING_S if older_than_s is None else older_than_s
    root = f"{base_prefix.strip('/')}/{STAGING_PREFIX}/".lstrip("/")
    newest: dict[str, dt.datetime] = {}
    for o in list_keys(client, bucket, root):
        name = o["Key"][len(root) :].split("/", 1)[0]
        if name not in newest or o["LastModified"] > newest[name]:
            newest[name] = o["LastModified"]
    now = dt.datetime.now(dt.timezone.utc)
    stale = [name for name, when in newest.items() if (now - when).total_seconds() >= limit]
    for name in stale:
        delete_prefix(client, bucket, f"{root}{name}/")
    return len(stale)


def probe_bucket(client: S3Client, bucket: str) -> None:
    """Check that ``bucket`` is reachable and writable: put, read back and delete a small probe object."""
    key = f".mnistkit-probe-{uuid.uuid4().hex[:12]}"
    body = b"mnistkit probe"
    try:
        client.head_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=key, Body=body)
        if client.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
            raise S3Error(f"s3://{bucket}: probe object read back differently", field="bucket", value=bucket)
        client.delete_object(Bucket=bucket, Key=key)
    except S3Error:
        raise
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise _wrap("probe", f"s3://{bucket}", exc) from None


def publish_model_version(
    client: S3Client,
    local_dir: str | os.PathLike[str],
    base_url: str,
    version: int | None = None,
    progress: Progress | None = None,
) -> str:
    """See ``mnistkit.publish.publish_model_version`` (claimed, verified, complete or not at all)."""
    from mnistkit.publish import publish_model_version as publish

    return publish(client, local_dir, base_url, version, progress)
