"""Keeping a local model dir in step with an ``s3://`` one (TF 2.21 has no S3 filesystem)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from mnistkit.trainspec import RunLayout

__all__ = ["S3Mirror", "log"]


def log(msg: str) -> None:
    print(f"[trainer] {msg}", flush=True)


class S3Mirror:
    """Restores ``local`` from an ``s3://`` model dir on start, syncs it back periodically and at the end.

    ``lock`` is held while a sync reads the local dir, and by the trainer while ``BackupAndRestore``
    writes or rotates checkpoints (``trainer.callbacks.GuardedBackup``): a sync never uploads a half
    written checkpoint, nor fails on a file the rotation deleted between listing and upload.
    """

    def __init__(self, model_url: str, local: Path, every: float) -> None:
        from mnistkit import s3
        from mnistkit.config import S3Config, split_s3_url

        self.bucket, self.prefix = split_s3_url(model_url, "tf_model_dir")
        self.client = s3.make_client(S3Config.from_env(bucket=self.bucket))
        self.local, self.every = local, every
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> None:
        from mnistkit import s3

        # Every worker resumes from what S3 holds, never from a newer backup on one worker's own disk:
        # workers that disagree on the epoch would run different numbers of steps and hang in a collective.
        shutil.rmtree(self.local / RunLayout.BACKUP, ignore_errors=True)
        got = s3.download_prefix(
            self.client, self.bucket, f"{self.prefix}/{RunLayout.BACKUP}", self.local / RunLayout.BACKUP
        )
        if got:
            log(f"restored {len(got)} checkpoint files from s3://{self.bucket}/{self.prefix}/{RunLayout.BACKUP}")

    def sync(self) -> None:
        from mnistkit import s3

        with self.lock:
            for sub in (RunLayout.LOGS, RunLayout.BACKUP):
                if (self.local / sub).exists():
                    # The "checkpoint" index last: a sync cut short never leaves it naming files not uploaded.
                    s3.upload_dir(
                        self.client,
                        self.local / sub,
                        self.bucket,
                        f"{self.prefix}/{sub}",
                        only_changed=True,
                        last=("checkpoint",),
                    )
            for name in (RunLayout.METRICS, RunLayout.RESULT):
                if (self.local / name).exists():
                    s3.upload_file(self.client, self.local / name, self.bucket, f"{self.prefix}/{name}")

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sync()
            except Exception as exc:  # noqa: BLE001 - a failed sync must not kill training; the next one retries
                log(f"warning: sync to s3://{self.bucket}/{self.prefix} failed: {exc}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="s3-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.sync()
