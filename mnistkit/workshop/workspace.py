"""A participant's workspace: their prefix in the room's shared bucket and their local folder.

Everything a participant makes lives under ``s3://<bucket>/workshop/<room>/<participant>/`` (models,
run records, check results) and ``<local_root>/<room>/<participant>/`` (local job dirs). ``reset``
deletes exactly those two places and nothing else, so a participant can start over without touching
a neighbour's work; the room's data lives under ``workshop/<room>/_shared/`` which no participant
name can reach.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.errors import ConfigError
from mnistkit.workshop.names import SHARED_DIR, default_participant, validate_participant, validate_room
from mnistkit.workshop.runs import RunRecord, cache_folder, participant_prefix, record_run, room_prefix, shared_client

if TYPE_CHECKING:
    from mnistkit.config import S3Config, TrainConfig
    from mnistkit.engines.base import Job
    from mnistkit.engines.local import LocalEngine
    from mnistkit.s3 import S3Client
    from mnistkit.workshop.exercises import CheckResult

__all__ = ["Workspace", "ResetReport", "default_local_root"]


def default_local_root(env: Mapping[str, str] | None = None) -> Path:
    """``MNISTKIT_WORKSHOP_HOME`` or ``~/mnistkit-workshop``."""
    env = os.environ if env is None else env
    return Path(env.get("MNISTKIT_WORKSHOP_HOME") or Path.home() / "mnistkit-workshop")


@dataclass(frozen=True)
class ResetReport:
    objects_deleted: int
    local_removed: bool
    prefix: str
    local_dir: str

    def __str__(self) -> str:
        local = f"removed {self.local_dir}" if self.local_removed else f"{self.local_dir} was already empty"
        return f"deleted {self.objects_deleted} objects under {self.prefix}; {local}"


@dataclass(frozen=True)
class Workspace:
    """One participant in one room. ``s3`` may be None for a laptop without a bucket (local only)."""

    s3: S3Config | None
    room: str
    participant: str
    local_root: Path

    def __post_init__(self) -> None:
        validate_room(self.room)
        validate_participant(self.participant)
        object.__setattr__(self, "local_root", Path(self.local_root))

    @classmethod
    def from_env(
        cls,
        room: str | None = None,
        participant: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        s3: S3Config | None = None,
        local_root: str | os.PathLike[str] | None = None,
    ) -> Workspace:
        """Room from ``MNISTKIT_WORKSHOP_ROOM``, participant from ``JUPYTERHUB_USER``, S3 from the seed's variables."""
        from mnistkit.config import S3Config

        env = os.environ if env is None else env
        room = room or env.get("MNISTKIT_WORKSHOP_ROOM", "")
        if not room:
            raise ConfigError("no room: set MNISTKIT_WORKSHOP_ROOM or pass room='...'", field="room")
        if s3 is None and (env.get("BUCKET_NAME") or env.get("AWS_ENDPOINT_URL") or env.get("S3_ENDPOINT")):
            s3 = S3Config.from_env(env)
        return cls(s3, room, participant or default_participant(env), Path(local_root or default_local_root(env)))

    # -- where things are ------------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return participant_prefix(self.room, self.participant)

    @property
    def local_dir(self) -> Path:
        return self.local_root / self.room / self.participant

    def _cfg(self) -> S3Config:
        if self.s3 is None:
            raise ConfigError("this workspace has no S3 settings (set BUCKET_NAME and the S3 variables)", field="s3")
        return self.s3

    def url(self, *parts: str) -> str:
        """``s3://<bucket>/workshop/<room>/<participant>/<parts...>``."""
        return self._cfg().url(self.prefix, *parts)

    @property
    def shared_data_url(self) -> str:
        """The room's dataset, uploaded once by the instructor: ``.../workshop/<room>/_shared/data/mnist``."""
        return self._cfg().url(room_prefix(self.room), SHARED_DIR, "data", "mnist")

    def job_name(self, prefix: str = "mnist") -> str:
        """``mnist-<participant>-<yyyymmdd-hhmmss>-<4 random>``: carries the user, unique in a shared namespace."""
        from mnistkit.cluster.identity import default_job_name

        return default_job_name(user=self.participant, prefix=prefix)

    def train_config(self, job_name: str, **values: Any) -> TrainConfig:
        """A ``TrainConfig`` reading the room's data and writing the model under this workspace."""
        from mnistkit.config import TrainConfig

        if self.s3 is None:
            values.setdefault("model_dir", str(self.local_dir / "models" / job_name))
        else:
            values.setdefault("data_dir", self.shared_data_url)
            values.setdefault("model_dir", self.url("models", job_name))
        return TrainConfig(**values)

    def engine(self, **kwargs: Any) -> LocalEngine:
        """A local engine whose job dirs live in this workspace's local folder."""
        from mnistkit.engines.local import LocalEngine

        return LocalEngine(run_dir=self.local_dir / "runs", s3_config=self.s3, **kwargs)

    # -- records ---------------------------------------------------------------------------------
    def record_run(self, result: dict[str, Any], *, client: S3Client | None = None) -> RunRecord:
        return record_run(self._cfg(), self.room, self.participant, result, client=client)

    def record_job(
        self, job: Job, *, score: bool = True, model: object = None, client: S3Client | None = None
    ) -> RunRecord:
        """Record a finished (or failed) job: its state, test accuracy and drawing-pad score.

        The score comes from ``model`` when given (e.g. the ``ModelClient`` of the participant's server),
        else from the job's export (``result()["export"]``, local or ``s3://``, loaded in this process).
        """
        from mnistkit.workshop.digits import drawing_pad_score, fixed_digit_set

        state = job.state()
        result = dict(job.result())
        record: dict[str, Any] = {**result, "job_name": job.name, "state": state}
        config = job.config
        if config is not None:
            record.update(model_type=config.model_type, train_steps=config.train_steps, workers=config.workers)
        succeeded = getattr(state, "value", state) == "Succeeded"
        if score and succeeded and (model is not None or result.get("export")):
            digits = fixed_digit_set()
            if model is None:
                model = self.local_export(str(result["export"]))
            record.update(drawing_pad_score=drawing_pad_score(model, digits), digit_set=digits.id)
        return self.record_run(record, client=client)

    def local_export(self, export: str) -> str:
        """A job's export as a local path: an ``s3://`` one is copied into the workspace folder once (and
        kept, so the drawing pad and ``check_model`` reuse it); a local one is returned as is."""
        if not export.startswith("s3://"):
            return export
        from mnistkit import s3
        from mnistkit.config import split_s3_url

        bucket, prefix = split_s3_url(export, "export")
        target = cache_folder(self.local_dir / "exports", export)  # a hash: remote text never names a local path
        if not (target / "saved_model.pb").exists():
            s3.download_prefix(shared_client(self._cfg()), bucket, prefix, target)
        return str(target)

    def record_check(self, result: CheckResult, *, client: S3Client | None = None) -> str:
        """Store the latest result of one exercise check (one object per check name) for the teacher's grid."""
        import json

        cfg = self._cfg()
        import re

        name = result.name or "check"
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$", name):  # it becomes an object key
            raise ConfigError(
                f"check name {name!r} must be lowercase letters, digits and '-'", field="name", value=name
            )
        key = f"{self.prefix}checks/{name}.json"
        body = json.dumps({"participant": self.participant, **result.to_dict()}).encode("utf-8")
        (client or shared_client(cfg)).put_object(Bucket=cfg.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    # -- reset -----------------------------------------------------------------------------------
    def reset(self, *, client: S3Client | None = None, local: bool = True) -> ResetReport:
        """Delete this participant's prefix and local folder; never anything of anyone else's."""
        from mnistkit import s3

        prefix = self.prefix
        # Defence in depth: the prefix is exactly workshop/<room>/<me>/, slash included.
        if not prefix.endswith(f"/{self.participant}/") or prefix.count("/") != 3:
            raise ConfigError(f"refusing to reset an unexpected prefix {prefix!r}", field="prefix", value=prefix)
        deleted = 0
        if self.s3 is not None:
            deleted = s3.delete_prefix(client or shared_client(self.s3), self.s3.bucket, prefix)
        removed = False
        target = self.local_dir
        if local and target.exists():
            if target.resolve().parent != (self.local_root / self.room).resolve():
                raise ConfigError(
                    f"refusing to remove {target}: not a workspace folder", field="local_dir", value=str(target)
                )
            shutil.rmtree(target)
            removed = True
        where = f"s3://{self.s3.bucket}/{prefix}" if self.s3 else prefix
        return ResetReport(deleted, removed, where, str(target))

    def __repr__(self) -> str:
        bucket = self.s3.bucket if self.s3 else None
        return f"Workspace(room={self.room!r}, participant={self.participant!r}, bucket={bucket!r})"
