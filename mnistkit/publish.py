"""Publishing a SavedModel version to S3: claimed, verified, complete or not at all, and through outages.

Why the dance: TF Serving (and ``mnistkit serve``) poll ``<base>/`` for numeric version directories about
once a second. Uploading straight into ``<base>/<N>/`` lets them see a half-written version. So:

1. **claim** ``N`` with a conditional write of ``<base>/.claims/<N>`` (``If-None-Match: *``): of two
   publishers that picked the same number only one wins; the other gets ``VersionTaken`` (and, when it let
   mnistkit pick the number, simply takes the next free one). Without it both copied into ``<base>/<N>/``:
   a server could load one graph with the other's weights, and one's clean-up deleted the other's files;
2. upload under a non-numeric staging prefix (ignored by every server) and **verify** every staged object
   by size and ETag against the local file's MD5 (a byte flipped on the way is caught here, not served);
3. copy server-side into ``<base>/<N>/`` with ``saved_model.pb`` last, checking each copy's ETag;
4. delete the staging prefix. A failure deletes what it copied and releases the claim, unless
   ``saved_model.pb`` is there: a version whose marker exists is never deleted.

``publish_with_retries`` repeats a publish that failed for want of a store (an outage of minutes) with
backoff, keeping the same claim number when it holds one.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.config import split_s3_url
from mnistkit.errors import S3Error
from mnistkit.s3 import (
    STAGING_PREFIX,
    Progress,
    _etag_check,
    _files,
    _local_etag,
    _wrap,
    delete_prefix,
    list_keys,
    list_model_versions,
    sweep_stale_staging,
    upload_dir,
)
from mnistkit.versions import MARKER_FILE, is_version_name

if TYPE_CHECKING:
    from mnistkit.s3 import S3Client

__all__ = ["CLAIMS_PREFIX", "VersionTaken", "publish_model_version", "publish_with_retries"]

CLAIMS_PREFIX = ".claims"
_log = logging.getLogger(__name__)


class VersionTaken(S3Error):
    """The version number is published already, or claimed by another publisher."""


def _claim(client: S3Client, bucket: str, base: str, version: int, owner: str) -> None:
    from botocore.exceptions import ClientError

    key = f"{base}/{CLAIMS_PREFIX}/{version}".lstrip("/")
    try:
        client.put_object(Bucket=bucket, Key=key, Body=owner.encode(), IfNoneMatch="*")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise VersionTaken(
                f"s3://{bucket}/{base}/{version}/ is claimed by another publish; versions are immutable, pick another",
                field="version",
                value=version,
            ) from None
        raise _wrap("claim", f"s3://{bucket}/{key}", exc) from None
    except Exception as exc:  # noqa: BLE001 - connection errors of every kind become one S3Error
        raise _wrap("claim", f"s3://{bucket}/{key}", exc) from None


def _claimed_versions(client: S3Client, bucket: str, base: str) -> set[int]:
    root = f"{base}/{CLAIMS_PREFIX}/".lstrip("/")
    names = (o["Key"][len(root) :] for o in list_keys(client, bucket, root))
    return {int(n) for n in names if is_version_name(n)}


def next_free_version(client: S3Client, bucket: str, base: str) -> int:
    """One past the highest version published or claimed (a killed publish's number is never reused)."""
    taken = set(list_model_versions(client, bucket, base)) | _claimed_versions(client, bucket, base)
    return max(taken, default=0) + 1


def _has_marker(client: S3Client, bucket: str, final: str) -> bool:
    return any(o["Key"] == f"{final}/{MARKER_FILE}" for o in list_keys(client, bucket, f"{final}/{MARKER_FILE}"))


def _staged_ok(client: S3Client, bucket: str, key: str, path: Path, listed: dict[str, Any] | None) -> str:
    """'' when the staged object ``listed`` holds ``path``'s bytes, else what differs."""
    if listed is None:
        return "missing"
    if listed["Size"] != path.stat().st_size:
        return f"{listed['Size']} bytes, expected {path.stat().st_size}"
    check = _etag_check(client, bucket, key, listed)
    if check is not None and _local_etag(path, check[1]) != check[0]:
        return f"ETag {check[0]} is not the local file's MD5"
    return ""


def publish_model_version(
    client: S3Client,
    local_dir: str | os.PathLike[str],
    base_url: str,
    version: int | None = None,
    progress: Progress | None = None,
) -> str:
    """Publish the SavedModel in ``local_dir`` as ``<base_url>/<version>/``, complete or not at all.

    ``version`` None picks the next free number (claimed atomically, so concurrent publishers get different
    ones). Returns the version URL. A version published or claimed already is a ``VersionTaken`` error:
    versions are immutable, since a server may have loaded it already.
    """
    local = Path(local_dir)
    if not (local / MARKER_FILE).is_file():
        raise S3Error(f"{local} is not a SavedModel (no {MARKER_FILE})", field="local_dir", value=str(local))
    if version is not None and int(version) < 0:
        raise S3Error(f"version must be a non-negative integer, got {version!r}", field="version", value=version)
    bucket, base = split_s3_url(base_url, "base_url")
    owner = uuid.uuid4().hex
    for _attempt in range(20):
        number = int(version) if version is not None else next_free_version(client, bucket, base)
        final = f"{base}/{number}".lstrip("/")
        if _has_marker(client, bucket, final):
            if version is None:
                continue
            raise VersionTaken(
                f"s3://{bucket}/{final}/ exists already; versions are immutable", field="version", value=number
            )
        try:
            _claim(client, bucket, base, number, owner)
        except VersionTaken:
            if version is None:
                continue  # another publisher took this number between our listing and our claim: take the next
            raise
        return _publish_claimed(client, local, bucket, base, number, progress)
    raise VersionTaken(f"no free version number under s3://{bucket}/{base}/ after 20 tries", field="version")


def _publish_claimed(
    client: S3Client, local: Path, bucket: str, base: str, version: int, progress: Progress | None
) -> str:
    final = f"{base}/{version}".lstrip("/")
    claim = f"{base}/{CLAIMS_PREFIX}/{version}".lstrip("/")
    staging = f"{base}/{STAGING_PREFIX}/{version}-{uuid.uuid4().hex[:12]}".lstrip("/")
    try:
        # Files under <final>/ without a marker are a killed publish's debris from before claims existed (or a
        # hand copy): we hold the claim, so they are nobody else's, and no server loads a version without a marker.
        delete_prefix(client, bucket, final + "/")
        upload_dir(client, local, bucket, staging, progress)
        files = {p.relative_to(local).as_posix(): p for p in _files(local)}
        staged = {o["Key"][len(staging) + 1 :]: o for o in list_keys(client, bucket, staging + "/")}
        wrong = {
            rel: why
            for rel, p in files.items()
            if (why := _staged_ok(client, bucket, f"{staging}/{rel}", p, staged.get(rel)))
        }
        extra = set(staged) - set(files)
        if wrong or extra:
            detail = "; ".join([f"{rel}: {why}" for rel, why in sorted(wrong.items())] + [f"{r}: extra" for r in extra])
            raise S3Error(
                f"staged upload of version {version} does not match {local} ({detail})", field="version", value=version
            )
        # saved_model.pb last: a poller that sees it knows every other file is in place.
        for rel in sorted(files, key=lambda r: (r == MARKER_FILE, r)):
            try:
                out = client.copy_object(
                    Bucket=bucket, Key=f"{final}/{rel}", CopySource={"Bucket": bucket, "Key": f"{staging}/{rel}"}
                )
            except Exception as exc:  # noqa: BLE001 - connection errors of every kind become one S3Error
                raise _wrap("copy", f"s3://{bucket}/{final}/{rel}", exc) from None
            copied = str(out.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
            if copied and copied != str(staged[rel]["ETag"]).strip('"'):
                raise S3Error(f"copy of {rel} into version {version} changed its ETag", field="version", value=version)
    except BaseException:
        # Leave nothing half-visible, and never delete a version whose marker made it visible.
        try:
            if not _has_marker(client, bucket, final):
                delete_prefix(client, bucket, final + "/")
                client.delete_object(Bucket=bucket, Key=claim)  # ours: free the number again
        except Exception as exc:  # noqa: BLE001 - best effort: the store may be the thing that failed
            _log.warning("could not clean up the failed publish of s3://%s/%s: %s", bucket, final, exc)
        try:
            delete_prefix(client, bucket, staging + "/")
        except Exception as exc:  # noqa: BLE001 - a stale staging prefix is swept by a later publish
            _log.warning("could not delete s3://%s/%s: %s", bucket, staging, exc)
        raise
    delete_prefix(client, bucket, staging + "/")
    try:
        sweep_stale_staging(client, bucket, base)
    except Exception as exc:  # noqa: BLE001 - tidying only: the version is published whatever happens here
        _log.warning("could not sweep old staging prefixes under s3://%s/%s: %s", bucket, base, exc)
    return f"s3://{bucket}/{final}"


def publish_with_retries(
    client: S3Client,
    local_dir: str | os.PathLike[str],
    base_url: str,
    version: int | None = None,
    *,
    retry_for_s: float = 600.0,
    on_retry: Callable[[float, BaseException], None] | None = None,
) -> str:
    """``publish_model_version``, repeated with backoff (1 s doubling to 30 s, jittered) for up to
    ``retry_for_s`` while the store fails (unreachable, 5xx, a staged file corrupted on the way).

    ``VersionTaken`` and a ``local_dir`` that is no SavedModel are not retried: they would fail again.
    """
    deadline = time.monotonic() + retry_for_s
    delay = 1.0
    while True:
        try:
            return publish_model_version(client, local_dir, base_url, version)
        except VersionTaken:
            raise
        except S3Error as exc:
            if exc.field == "local_dir" or time.monotonic() + delay > deadline:
                raise
            if on_retry:
                on_retry(delay, exc)
            time.sleep(delay * random.uniform(0.8, 1.2))  # backoff between attempts, not a wait for an event
            delay = min(delay * 2, 30.0)
