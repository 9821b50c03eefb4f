"""Version management: follow a base path as TF Serving does and keep the latest loadable version serving.

TF Serving's default version policy is "latest": serve the highest numeric version directory under the
base path, load a newer one when it appears, and only then drop the old one. ``ModelManager`` does the
same with a polling thread. What it never does is serve something half-written: directories whose name
is not ASCII digits (``.tmp-*``, ``.staging``, ``²``) are ignored, a version counts only once its
``saved_model.pb`` exists (``publish_local`` and ``mnistkit.s3.publish_model_version`` write it last), and
a version whose load fails is retried on later polls while the old one keeps serving.

For an ``s3://`` base path, new versions are downloaded with ``mnistkit.s3`` into a local cache first
(TensorFlow 2.21 has no S3 filesystem), each into a temp directory renamed into place once complete, in a
folder of the cache named after the base URL (two models never share a "version 1"). A version whose
download fails is retried at most every ``RETRY_SECONDS`` and does not keep older ones from loading.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnistkit.config import S3Config
from mnistkit.errors import MnistkitError
from mnistkit.serving import loading
from mnistkit.serving.loading import LoadedModel
from mnistkit.serving.status import RequestError
from mnistkit.versions import local_versions

Fingerprint = tuple[tuple[str, int, int], ...]  # (path, size, mtime_ns) of each file of a version

if TYPE_CHECKING:
    from mnistkit.s3 import S3Client

__all__ = ["RETRY_SECONDS", "ModelManager", "VersionStatus", "cache_folder"]

log = logging.getLogger("mnistkit.serving")

RETRY_SECONDS = 30.0  # a failed version whose files do not change is retried this often


def cache_folder(cache_dir: Path, base_url: str) -> Path:
    """The cache's folder for ``base_url``: readable, and distinct per URL."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", base_url.removeprefix("s3://")).strip("._")[:60]
    return cache_dir / f"{readable}-{hashlib.sha256(base_url.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class VersionStatus:
    """One version's state as TF Serving reports it (``AVAILABLE``, ``LOADING``, ``END``)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


class ModelManager:
    """Follows ``base_path`` (a directory or ``s3://`` URL) and keeps the latest loadable version serving."""

    def __init__(
        self,
        name: str,
        base_path: str | os.PathLike[str],
        *,
        poll_wait_seconds: float = 1.0,
        s3_config: S3Config | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.base_path = str(base_path)
        self.poll_wait_seconds = max(0.05, float(poll_wait_seconds))
        self._is_s3 = self.base_path.startswith("s3://")
        self._s3_config = s3_config
        self._s3_client: S3Client | None = None
        self._own_cache = False
        if self._is_s3:
            from mnistkit.config import split_s3_url

            self._bucket, self._prefix = split_s3_url(self.base_path, "model_base_path")
            if cache_dir is None:
                cache_dir = tempfile.mkdtemp(prefix=f"mnistkit-serve-{name}-")
                self._own_cache = True
            self._cache_root = Path(cache_dir)
            self.local_dir = cache_folder(self._cache_root, self.base_path)
            self.local_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.local_dir = Path(self.base_path)
        self._current: LoadedModel | None = None
        self._history: dict[int, VersionStatus] = {}
        # version -> (error message, files fingerprint at the failed attempt, monotonic time of it)
        self._failures: dict[int, tuple[str, Fingerprint, float]] = {}
        self._download_failures: dict[int, float] = {}  # s3: version -> monotonic time of its failed download
        self._warned: set[str] = set()
        self._lock = threading.Lock()  # one poll at a time (the thread and explicit poll_once calls)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    # -- serving side -------------------------------------------------------------------------------

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def get(self, version: int | None = None) -> LoadedModel:
        """The model for ``version`` (``None``: the latest); NOT_FOUND / UNAVAILABLE otherwise."""
        model = self._current  # one read: a concurrent swap cannot change it under this request
        if model is None:
            raise RequestError(
                f"model {self.name!r} has no version loaded yet",
                "UNAVAILABLE",
                field="model_name",
                value=self.name,
            )
        if version is not None and version != model.version:
            raise RequestError(
                f"Servable not found for request: Specific({self.name}, {version}) "
                f"(version {model.version} is the one being served)",
                "NOT_FOUND",
                field="version",
                value=version,
            )
        return model

    def status(self, version: int | None = None) -> list[VersionStatus]:
        """Every version this manager knows of, newest first, or just ``version`` (NOT_FOUND if unknown)."""
        entries = dict(self._history)
        for v, (msg, _fp, _t) in list(self._failures.items()):  # list(): the poller may change it meanwhile
            if v not in entries or entries[v].state != "AVAILABLE":
                entries[v] = VersionStatus(v, "END", "UNKNOWN", msg)
        if version is not None:
            if version not in entries:
                raise RequestError(
                    f"Could not find version {version} of model {self.name}",
                    "NOT_FOUND",
                    field="version",
                    value=version,
                )
            return [entries[version]]
        if not entries:
            raise RequestError(
                f"Could not find any versions of model {self.name}",
                "NOT_FOUND",
                field="model_name",
                value=self.name,
            )
        return [entries[v] for v in sorted(entries, reverse=True)]

    # -- polling ------------------------------------------------------------------------------------

    def start(self) -> ModelManager:
        """Poll once now (so a server answers as soon as ``start`` returns), then in a thread."""
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"mnistkit-poll-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._own_cache:
            shutil.rmtree(self._cache_root, ignore_errors=True)

    def wait_for_version(self, version: int, timeout: float = 30.0) -> bool:
        """Block until ``version`` (or a newer one) is serving; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                cur = self._current
                if cur is not None and cur.version >= version:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))

    def _run(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # never let the poller die: the old version must keep serving
                log.exception("model %s: polling %s failed; will retry", self.name, self.base_path)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def _local_versions(self) -> list[int]:
        """Complete version directories (``mnistkit.versions``), newest first."""
        if not self.local_dir.is_dir():
            self._warn_once(f"model {self.name}: base path {self.local_dir} does not exist yet; waiting for it")
            return []
        try:
            return local_versions(self.local_dir)[::-1]
        except OSError as exc:
            self._warn_once(f"model {self.name}: cannot list {self.local_dir}: {exc.strerror}")
            return []

    def _sync_s3(self) -> None:
        """Download the newest remote version worth trying into the cache (one per poll).

        A version whose download failed is skipped for ``RETRY_SECONDS`` (older ones are tried meanwhile),
        so a broken newest version neither blocks the others nor is downloaded again on every poll.
        """
        from mnistkit import s3

        try:
            if self._s3_client is None:
                cfg = self._s3_config or S3Config.from_env(bucket=self._bucket)
                self._s3_client = s3.make_client(cfg)
            remote = s3.list_model_versions(self._s3_client, self._bucket, self._prefix)
        except MnistkitError as exc:
            self._warn_once(f"model {self.name}: cannot list {self.base_path}: {exc}; will retry")
            return
        cur = self._current
        now = time.monotonic()
        for v in sorted(remote, reverse=True):
            if cur is not None and v <= cur.version:
                return
            target = self.local_dir / str(v)
            if not target.exists():
                failed_at = self._download_failures.get(v)
                if failed_at is not None and now - failed_at < RETRY_SECONDS:
                    continue
                tmp = self.local_dir / f".download-{v}-{uuid.uuid4().hex[:8]}"
                prefix = f"{self._prefix}/{v}".strip("/")
                log.info("model %s: downloading version %d from %s/%d", self.name, v, self.base_path, v)
                try:
                    s3.download_prefix(self._s3_client, self._bucket, prefix, tmp)
                    os.rename(tmp, target)
                except (MnistkitError, OSError) as exc:
                    shutil.rmtree(tmp, ignore_errors=True)
                    self._download_failures[v] = time.monotonic()
                    self._warn_once(
                        f"model {self.name}: downloading version {v} failed: {exc}; trying older versions, and "
                        f"this one again in {RETRY_SECONDS:g} s"
                    )
                    continue
                self._download_failures.pop(v, None)
                return
            if v not in self._failures:
                return  # cached and not known bad: the local policy will load it

    def poll_once(self) -> LoadedModel | None:
        """Look for a newer version and load it; returns the model serving afterwards."""
        with self._lock:
            if self._is_s3:
                self._sync_s3()
            versions = self._local_versions()
            cur = self._current
            if cur is not None and cur.version not in versions:
                self._warn_once(
                    f"model {self.name}: version {cur.version} disappeared from {self.local_dir}; serving it "
                    "from memory until an older or newer version loads"
                )
            for v in versions:  # newest first: stop at the one serving, or at the first that loads
                if cur is not None and v == cur.version:
                    break
                if not self._worth_trying(v):
                    continue
                if self._try_load(v, cur):
                    break
            return self._current

    def _fingerprint(self, version: int) -> Fingerprint:
        """Names, sizes and mtimes of a version's files: changes when someone finishes or fixes it."""
        items = []
        for root, _dirs, files in os.walk(self.local_dir / str(version)):
            for f in files:
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                items.append((os.path.join(root, f), st.st_size, st.st_mtime_ns))
        return tuple(sorted(items))

    def _worth_trying(self, version: int) -> bool:
        """A version that failed is retried when its files change, else at most every RETRY_SECONDS.

        Re-loading a broken model on every poll would burn CPU for as long as it sits there.
        """
        failed = self._failures.get(version)
        if failed is None:
            return True
        _msg, fingerprint, when = failed
        return fingerprint != self._fingerprint(version) or time.monotonic() - when >= RETRY_SECONDS

    def _try_load(self, version: int, cur: LoadedModel | None) -> bool:
        path = self.local_dir / str(version)
        started = time.monotonic()
        fingerprint = self._fingerprint(version)
        try:
            model = loading.load_model(path, version)
        except MnistkitError as exc:
            first = version not in self._failures
            self._failures[version] = (str(exc), fingerprint, time.monotonic())
            if first:
                still = f"still serving version {cur.version}" if cur else "no version is serving yet"
                log.warning(
                    "model %s: version %d failed to load (%s); %s; will retry on later polls",
                    self.name,
                    version,
                    exc,
                    still,
                )
            return False
        self._failures.pop(version, None)
        with self._changed:
            self._current = model
            self._history[version] = VersionStatus(version, "AVAILABLE")
            if cur is not None and cur.version != version:
                self._history[cur.version] = VersionStatus(cur.version, "END")
            self._changed.notify_all()
        was = f" (was version {cur.version})" if cur else ""
        log.info(
            "model %s: loaded version %d from %s in %.2f s; now serving version %d%s",
            self.name,
            version,
            path,
            time.monotonic() - started,
            version,
            was,
        )
        return True
