"""Run records: one small JSON object per training a participant finished, under their own prefix.

``record_run`` writes ``workshop/<room>/<participant>/runs/<run-id>.json`` with a single ``PutObject``
(S3 makes a single put atomic: readers see the whole record or none of it). The run id is a UTC
timestamp plus 96 random bits, and the put is conditional (``If-None-Match: *``) where the store
supports it, so thirty people finishing in the same second never overwrite each other.
``list_runs`` reads a room back: one listing for the participants, one per participant for their
runs, the records fetched in parallel (a room is ~30 people, each with a handful of runs).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.errors import ConfigError, S3Error
from mnistkit.workshop.names import validate_participant, validate_room

if TYPE_CHECKING:
    from mnistkit._types import JsonValue, UserValue
    from mnistkit.config import S3Config
    from mnistkit.s3 import S3Client

__all__ = [
    "RunRecord",
    "RunListing",
    "record_run",
    "list_runs",
    "room_prefix",
    "participant_prefix",
    "STATES",
    "shared_client",
    "owned_export",
    "cache_folder",
]

STATES = ("Pending", "Running", "Succeeded", "Failed", "Stopped")
MAX_RECORD_BYTES = 64 * 1024  # a record is ~500 bytes; a bigger object is someone filling the instructor's memory
_KNOWN = ("job_name", "state", "test_accuracy", "drawing_pad_score", "digit_set", "created", "run_id")


_CLIENTS: dict[S3Config, S3Client] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(cfg: S3Config) -> S3Client:
    """One boto3 client per S3 settings in this process (clients are thread-safe; making one costs ~0.3 s).

    The lock matters: thirty threads asking at once would otherwise each build their own client.
    """
    from mnistkit import s3

    with _CLIENTS_LOCK:
        client = _CLIENTS.get(cfg)
        if client is None:
            if len(_CLIENTS) >= 8:
                _CLIENTS.pop(next(iter(_CLIENTS)))
            client = _CLIENTS[cfg] = s3.make_client(cfg)
        return client


def room_prefix(room: str) -> str:
    return f"workshop/{validate_room(room)}/"


def participant_prefix(room: str, participant: str) -> str:
    """``workshop/<room>/<participant>/`` (the trailing slash matters: ``ada`` must not match ``ada2``)."""
    return f"{room_prefix(room)}{validate_participant(participant)}/"


def owned_export(export: str, bucket: str, room: str, participant: str) -> str:
    """The key prefix of ``export`` if it is an ``s3://`` URL under ``participant``'s own prefix in ``bucket``.

    A run record is text the participant wrote: its export could name another's model (to borrow its score),
    the whole bucket, or climb out with ``..``. Anything else is a ``ConfigError`` naming ``export``.
    """
    from mnistkit.config import split_s3_url

    own = participant_prefix(room, participant)
    if not export.startswith("s3://"):
        raise ConfigError(
            f"export {export!r} is not an s3:// URL under s3://{bucket}/{own}", field="export", value=export
        )
    got_bucket, prefix = split_s3_url(export, "export")
    prefix = prefix.rstrip("/")
    below = prefix[len(own) :].split("/") if prefix.startswith(own) else [""]
    if got_bucket != bucket or any(part in ("", ".", "..") or "\\" in part for part in below):
        raise ConfigError(
            f"export {export!r} is not under the participant's own prefix s3://{bucket}/{own}",
            field="export",
            value=export,
        )
    return prefix


def cache_folder(root: str | os.PathLike[str], remote: str) -> Path:
    """A local folder under ``root`` for a copy of ``remote``: its name is a hash, never remote text."""
    import hashlib

    return Path(root) / hashlib.sha256(remote.encode("utf-8")).hexdigest()[:32]


def _fraction(name: str, value: UserValue) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number between 0 and 1, got {value!r}", field=name, value=value) from None
    if math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {value!r}", field=name, value=value)
    return number


def _jsonable(value: object) -> JsonValue:
    """Keep what JSON can hold (numpy scalars become numbers); anything else becomes its ``str``."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class RunRecord:
    """What the leaderboard knows about one run."""

    run_id: str
    room: str
    participant: str
    job_name: str
    state: str
    test_accuracy: float | None
    drawing_pad_score: float | None
    digit_set: str
    created: str  # ISO 8601, UTC
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{participant_prefix(self.room, self.participant)}runs/{self.run_id}.json"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRecord:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("a run record must be a JSON object")
        return cls(
            run_id=str(raw["run_id"]),
            room=validate_room(str(raw["room"])),
            participant=validate_participant(str(raw["participant"])),
            job_name=str(raw.get("job_name", "")),
            state=str(raw.get("state", "")),
            test_accuracy=_fraction("test_accuracy", raw.get("test_accuracy")),
            drawing_pad_score=_fraction("drawing_pad_score", raw.get("drawing_pad_score")),
            digit_set=str(raw.get("digit_set", "")),
            created=str(raw.get("created", "")),
            extra=dict(raw.get("extra") or {}),
        )


def _new_run_id(now: datetime) -> str:
    # Sortable by time; 96 random bits make two ids in the same microsecond as good as impossible.
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{secrets.token_hex(12)}"


def _state(result: dict[str, Any]) -> str:
    raw = result.get("state")
    if raw is None:
        return "Succeeded" if result.get("test_accuracy") is not None else "Pending"
    raw = getattr(raw, "value", raw)  # a JobState
    for state in STATES:
        if str(raw).lower() == state.lower():
            return state
    raise ConfigError(f"state must be one of {', '.join(STATES)}, got {raw!r}", field="state", value=raw)


def make_record(room: str, participant: str, result: dict[str, Any], now: datetime | None = None) -> RunRecord:
    """Validate ``result`` (the trainer's ``result.json`` plus ``job_name``/``state``/``drawing_pad_score``)."""
    now = now or datetime.now(timezone.utc)
    validate_room(room)
    validate_participant(participant)
    return RunRecord(
        run_id=_new_run_id(now),
        room=room,
        participant=participant,
        job_name=str(result.get("job_name") or result.get("job") or ""),
        state=_state(result),
        test_accuracy=_fraction("test_accuracy", result.get("test_accuracy")),
        drawing_pad_score=_fraction("drawing_pad_score", result.get("drawing_pad_score")),
        digit_set=str(result.get("digit_set") or ""),
        created=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        extra={k: _jsonable(v) for k, v in result.items() if k not in _KNOWN and k != "job"},
    )


def _put_once(client: S3Client, bucket: str, key: str, body: bytes) -> bool:
    """Put ``key`` unless it exists. Returns False when the store said it exists (a collision)."""
    from botocore.exceptions import ClientError

    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        if code in ("NotImplemented", "501"):  # an older MinIO/Ceph: the random id alone keeps keys apart
            client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
            return True
        raise


def record_run(
    cfg: S3Config, room: str, participant: str, result: dict[str, Any], *, client: S3Client | None = None
) -> RunRecord:
    """Write one run record under the participant's prefix and return it (``record.key`` is where).

    ``result`` may carry: ``job_name``, ``state`` (a ``JobState`` or its name; default Succeeded when
    there is a test accuracy), ``test_accuracy``, ``drawing_pad_score``, ``digit_set``; anything else
    (``export``, ``version``, ``model_type``...) is kept under ``extra``.
    """
    client = client or shared_client(cfg)
    for _attempt in range(3):
        record = make_record(room, participant, result)
        try:
            if _put_once(client, cfg.bucket, record.key, record.to_json().encode("utf-8")):
                return record
        except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
            raise S3Error(
                f"could not record the run at s3://{cfg.bucket}/{record.key}: {exc}",
                field="s3",
                value=f"s3://{cfg.bucket}/{record.key}",
            ) from None
    raise S3Error(
        f"could not find a free run id under s3://{cfg.bucket}/{participant_prefix(room, participant)}", field="run_id"
    )


@dataclass(frozen=True)
class RunListing:
    """A room read back: the records, the participants seen, and what could not be read (as sentences)."""

    runs: tuple[RunRecord, ...]
    participants: tuple[str, ...]
    errors: tuple[str, ...] = ()
    keys_listed: int = 0


def _list_participants(client: S3Client, bucket: str, room: str) -> list[str]:
    names = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=room_prefix(room), Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
            try:
                names.append(validate_participant(name))
            except ConfigError:
                continue  # the room's _shared prefix, or something a person put there by hand
    return sorted(names)


def list_runs(
    cfg: S3Config, room: str, participant: str | None = None, *, client: S3Client | None = None, workers: int = 8
) -> RunListing:
    """Every run record in ``room`` (or of one participant), oldest first."""
    from mnistkit import s3

    client = client or shared_client(cfg)
    try:
        people = [validate_participant(participant)] if participant else _list_participants(client, cfg.bucket, room)
    except Exception as exc:  # noqa: BLE001 - boto3's many error types become one S3Error naming the object
        raise S3Error(
            f"could not list s3://{cfg.bucket}/{room_prefix(room)}: {exc}",
            field="s3",
            value=f"s3://{cfg.bucket}/{room_prefix(room)}",
        ) from None

    def keys_of(person: str) -> list[dict[str, Any]]:
        prefix = participant_prefix(room, person) + "runs/"
        return [o for o in s3.list_keys(client, cfg.bucket, prefix) if o["Key"].endswith(".json")]

    def fetch(obj: dict[str, Any]) -> RunRecord | str:
        key = obj["Key"]
        if int(obj.get("Size", 0)) > MAX_RECORD_BYTES:  # by its listed size: never downloaded
            return f"{key}: {obj['Size']} bytes, over the {MAX_RECORD_BYTES} bytes of a run record; skipped"
        try:
            body = client.get_object(Bucket=cfg.bucket, Key=key)["Body"].read()
            record = RunRecord.from_json(body)
        except Exception as exc:  # noqa: BLE001 - one bad record must not hide the room
            return f"{key}: {type(exc).__name__}: {exc}"
        if record.key != key:
            return f"{key}: the record names {record.participant!r} in room {record.room!r}; ignored"
        return record

    # One listing per participant and one GET per record, overlapped: a room refresh is ~60 small requests.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        keys = [k for ks in pool.map(keys_of, people) for k in ks]
        fetched = list(pool.map(fetch, keys))
    runs = sorted((r for r in fetched if isinstance(r, RunRecord)), key=lambda r: (r.created, r.run_id))
    errors = tuple(e for e in fetched if isinstance(e, str))
    return RunListing(tuple(runs), tuple(people), errors, len(keys))
