"""The instructor's view of a room, as plain Python: every participant's runs and a leaderboard.

``Leaderboard.refresh()`` reads the room's run records from the shared bucket (see ``runs.list_runs``)
and times itself; ``standings()`` ranks participants by their best drawing-pad score (test accuracy
breaks ties). ``participant_view(name)`` is what a participant may see: their own runs in full and,
for everyone else, only aggregates (how many, the median and the best score) with no names, so
nobody is shamed on a projector. ``InstructorPanel`` (``mnistkit.workshop.panel``) is the widget view.
"""

from __future__ import annotations

import html
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistkit.workshop.names import validate_participant, validate_room
from mnistkit.workshop.runs import (
    MAX_RECORD_BYTES,
    RunListing,
    RunRecord,
    cache_folder,
    list_runs,
    owned_export,
    participant_prefix,
    shared_client,
)

if TYPE_CHECKING:
    from mnistkit.config import S3Config
    from mnistkit.s3 import S3Client
    from mnistkit.workshop.digits import DigitSet
    from mnistkit.workshop.exercises import CheckResult

__all__ = ["Leaderboard", "Standing", "RoomAggregate", "ParticipantView"]


@dataclass(frozen=True)
class Standing:
    rank: int | None  # None: no scored run yet
    participant: str
    runs: int
    best_score: float | None  # best drawing-pad score
    best_test_accuracy: float | None
    last_state: str


@dataclass(frozen=True)
class RoomAggregate:
    """Everyone else, without names."""

    participants: int
    runs: int
    scored: int  # participants with at least one drawing-pad score
    median_best_score: float | None
    best_score: float | None


@dataclass(frozen=True)
class ParticipantView:
    participant: str
    runs: tuple[RunRecord, ...]
    best_score: float | None
    rank: int | None
    of: int  # participants ranked
    others: RoomAggregate

    def to_dict(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "runs": [r.__dict__ for r in self.runs],
            "best_score": self.best_score,
            "rank": self.rank,
            "of": self.of,
            "others": self.others.__dict__,
        }

    def to_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(r.created)}</td><td>{html.escape(r.job_name)}</td><td>{html.escape(r.state)}</td>"
            f"<td>{_fmt(r.test_accuracy)}</td><td>{_fmt(r.drawing_pad_score)}</td></tr>"
            for r in self.runs
        )
        o = self.others
        if self.rank:
            rank = f"rank {self.rank} of {self.of}"
        else:
            rank = "no scored run yet" if self.best_score is None else "ranked once the instructor scores the models"
        return (
            f"<div class='mnistkit-participant-view'><b>{html.escape(self.participant)}</b>: "
            f"best drawing-pad score {_fmt(self.best_score)} ({rank})"
            "<table><tr><th>time</th><th>job</th><th>state</th><th>test accuracy</th><th>drawing-pad score</th></tr>"
            f"{rows}</table>"
            f"<p>The rest of the room: {o.participants} people, {o.runs} runs; median best score "
            f"{_fmt(o.median_best_score)}, best {_fmt(o.best_score)}.</p></div>"
        )

    _repr_html_ = to_html


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _best(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


class Leaderboard:
    """Reads room ``room`` of ``cfg.bucket``. ``digit_set`` (e.g. ``"offline-50-s20180808"``) ranks only
    scores made on that set; None ranks every score."""

    def __init__(
        self,
        cfg: S3Config,
        room: str,
        *,
        digit_set: str | None = None,
        client: S3Client | None = None,
        rank_reported: bool = False,
    ) -> None:
        self.cfg = cfg
        self.room = validate_room(room)
        self.digit_set = digit_set
        # Scores in run records are what participants wrote: they rank only where the room trusts itself
        # (rank_reported=True). Otherwise only scores the instructor measured with verify() rank.
        self.rank_reported = rank_reported
        self.verified: dict[str, float] = {}
        self.verify_errors: dict[str, str] = {}
        self._client = client
        self.listing = RunListing((), ())
        self.checks: dict[str, dict[str, bool]] = {}
        self.refresh_s: float | None = None
        self.refreshed_at: str = ""
        self.error = ""
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Leaderboard], None]] = []

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = shared_client(self.cfg)
        return self._client

    def on_change(self, callback: Callable[[Leaderboard], None]) -> None:
        self._listeners.append(callback)

    def refresh(self, *, checks: bool = True) -> RunListing:
        """Read the room again. On failure keep the last good data and set ``error`` (a sentence)."""
        from mnistkit.widgets.job_monitor import describe_error

        t0 = time.monotonic()
        try:
            listing = list_runs(self.cfg, self.room, client=self.client)
            grid = self._read_checks(listing.participants) if checks else self.checks
        except Exception as exc:  # noqa: BLE001 - a panel shows the sentence; the kernel keeps running
            self.error = describe_error(exc)
        else:
            with self._lock:
                self.listing, self.checks, self.error = listing, grid, ""
        self.refresh_s = time.monotonic() - t0
        self.refreshed_at = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        for cb in list(self._listeners):
            cb(self)
        return self.listing

    def _read_checks(self, participants: tuple[str, ...]) -> dict[str, dict[str, bool]]:
        import json

        from mnistkit import s3

        def read(person: str) -> tuple[str, dict[str, bool]]:
            got: dict[str, bool] = {}
            for obj in s3.list_keys(self.client, self.cfg.bucket, participant_prefix(self.room, person) + "checks/"):
                if int(obj.get("Size", 0)) > MAX_RECORD_BYTES:  # by its listed size: never downloaded
                    continue
                try:
                    raw = json.loads(self.client.get_object(Bucket=self.cfg.bucket, Key=obj["Key"])["Body"].read())
                    got[str(raw["name"])] = bool(raw["passed"])
                except Exception:  # noqa: BLE001 - a half-written or hand-made object: skip it, the grid is advisory
                    continue
            return person, got

        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(pool.map(read, participants))

    # -- views -----------------------------------------------------------------------------------
    def runs(self, participant: str | None = None) -> list[RunRecord]:
        runs = list(self.listing.runs)
        return [r for r in runs if r.participant == participant] if participant else runs

    def _score(self, run: RunRecord) -> float | None:
        if self.digit_set and run.digit_set != self.digit_set:
            return None
        return run.drawing_pad_score

    def verify(
        self,
        held_back: DigitSet | None = None,
        *,
        scorer: Callable[[Path, DigitSet], float] | None = None,
        cache_dir: str | None = None,
    ) -> dict[str, float]:
        """Score every participant's latest exported model on ``held_back`` digits (default: a set drawn from a
        seed nobody in the room knows), each in a sandboxed process (``scorer.score_in_sandbox``). Only
        exports under the participant's own prefix and under ``scorer.MAX_EXPORT_BYTES`` (by listed size)
        are downloaded. Returns and keeps ``verified`` (participant -> score); failures go to
        ``verify_errors``."""
        import tempfile

        from mnistkit import s3
        from mnistkit.workshop import scorer as sandbox

        held_back = held_back if held_back is not None else sandbox.held_back_digit_set()
        score = scorer or (lambda path, digits: sandbox.score_in_sandbox(path, digits))
        tmp = Path(cache_dir or tempfile.mkdtemp(prefix="mnistkit-verify-"))
        verified: dict[str, float] = {}
        errors: dict[str, str] = {}
        for person in sorted({r.participant for r in self.listing.runs}):
            exported = [r for r in self.runs(person) if r.state == "Succeeded" and r.extra.get("export")]
            if not exported:
                continue
            export = str(exported[-1].extra["export"])
            try:
                prefix = owned_export(export, self.cfg.bucket, self.room, person)
                objs = list(s3.list_keys(self.client, self.cfg.bucket, prefix + "/"))
                size = sum(int(o["Size"]) for o in objs)
                if not objs or size > sandbox.MAX_EXPORT_BYTES:
                    raise ValueError(
                        f"export {export} holds {size} bytes in {len(objs)} objects; "
                        f"a model must be 1 to {sandbox.MAX_EXPORT_BYTES} bytes"
                    )
                target = cache_folder(tmp, export)
                s3.download_prefix(self.client, self.cfg.bucket, prefix, target)
                verified[person] = float(score(target, held_back))
            except Exception as exc:  # noqa: BLE001 - one participant's bad export must not stop the pass over the room
                from mnistkit.widgets.job_monitor import describe_error

                errors[person] = describe_error(exc)
        with self._lock:
            self.verified, self.verify_errors = verified, errors
        return dict(verified)

    def standings(self) -> list[Standing]:
        """Best score first (the instructor's verified one unless ``rank_reported``), then best test accuracy,
        then name; unscored people last, unranked."""
        people = sorted({*self.listing.participants, *(r.participant for r in self.listing.runs)})
        rows = []
        for person in people:
            mine = self.runs(person)
            best = _best([self._score(r) for r in mine]) if self.rank_reported else self.verified.get(person)
            rows.append(
                Standing(
                    None,
                    person,
                    len(mine),
                    best,
                    _best([r.test_accuracy for r in mine]),
                    mine[-1].state if mine else "",
                )
            )
        rows.sort(
            key=lambda s: (s.best_score is None, -(s.best_score or 0.0), -(s.best_test_accuracy or 0.0), s.participant)
        )
        out, rank = [], 0
        for i, s in enumerate(rows):
            if s.best_score is None:
                out.append(s)
                continue
            # Equal scores share a rank (competition ranking: 1, 1, 3).
            if (
                i == 0
                or s.best_score != rows[i - 1].best_score
                or s.best_test_accuracy != rows[i - 1].best_test_accuracy
            ):
                rank = i + 1
            out.append(Standing(rank, s.participant, s.runs, s.best_score, s.best_test_accuracy, s.last_state))
        return out

    def check_grid(self) -> dict[str, dict[str, bool]]:
        """participant -> {check name: passed} from the results participants stored."""
        return {p: dict(v) for p, v in self.checks.items()}

    def check_models(
        self, load: Callable[[str], object] | None = None, *, cache_dir: str | None = None
    ) -> dict[str, CheckResult]:
        """The teacher's pass over the room: ``check_model`` on each participant's latest exported model.

        ``load(export)`` turns a run's ``export`` (local or ``s3://``) into something ``check_model`` takes;
        the default copies an ``s3://`` export into ``cache_dir`` (a temp dir) and checks the SavedModel.
        People without an exported run get a failed result saying so.
        """
        import tempfile
        from pathlib import Path

        from mnistkit.workshop.exercises import CheckResult, check_model

        tmp = Path(cache_dir or tempfile.mkdtemp(prefix="mnistkit-room-"))

        def default_load(export: str) -> object:
            from mnistkit import s3

            # owned_export (below) has checked the URL; the local folder's name is a hash, never remote text.
            prefix = export.split("/", 3)[3].rstrip("/")
            target = cache_folder(tmp, export)
            s3.download_prefix(self.client, self.cfg.bucket, prefix, target)
            return str(target)

        load = load or default_load
        people = sorted({*self.listing.participants, *(r.participant for r in self.listing.runs)})
        out: dict[str, CheckResult] = {}
        for person in people:
            exported = [r for r in self.runs(person) if r.state == "Succeeded" and r.extra.get("export")]
            if not exported:
                out[person] = CheckResult(
                    False, "no exported model recorded yet", "finish a training, then ws.record_job(job)", "model"
                )
                continue
            try:
                export = str(exported[-1].extra["export"])
                if load is default_load:  # a caller's own ``load`` decides for itself what it accepts
                    owned_export(export, self.cfg.bucket, self.room, person)
                model = load(export)
            except Exception as exc:  # noqa: BLE001 - one unreadable export must not stop the pass over the room
                from mnistkit.widgets.job_monitor import describe_error

                out[person] = CheckResult(
                    False,
                    f"could not load {exported[-1].extra['export']}: {describe_error(exc)}",
                    "train and export again",
                    "model",
                )
                continue
            out[person] = check_model(model)
        return out

    def participant_view(self, participant: str) -> ParticipantView:
        """What ``participant`` may see: their runs in full, everyone else only as aggregates (no names)."""
        validate_participant(participant)
        table = self.standings()
        mine = next((s for s in table if s.participant == participant), None)
        others = [s for s in table if s.participant != participant]
        scores = [s.best_score for s in others if s.best_score is not None]
        aggregate = RoomAggregate(
            participants=len(others),
            runs=sum(s.runs for s in others),
            scored=len(scores),
            median_best_score=statistics.median(scores) if scores else None,
            best_score=max(scores) if scores else None,
        )
        # Their own best: the instructor's score once measured, else the best they recorded (it is theirs to see,
        # it only does not rank).
        own_best = (
            mine.best_score
            if mine and mine.best_score is not None
            else _best([self._score(r) for r in self.runs(participant)])
        )
        return ParticipantView(
            participant,
            tuple(self.runs(participant)),
            own_best,
            mine.rank if mine else None,
            sum(1 for s in table if s.rank is not None),
            aggregate,
        )

    def summary(self) -> str:
        listing = self.listing
        timing = f" in {self.refresh_s:.2f} s at {self.refreshed_at}" if self.refresh_s is not None else ""
        bad = f"; {len(listing.errors)} unreadable" if listing.errors else ""
        return f"{len(listing.runs)} runs from {len(listing.participants)} participants{timing}{bad}"

    def format_table(self, top: int | None = None) -> str:
        """The leaderboard as text (``mnistkit workshop leaderboard``)."""
        lines = [f"{'rank':>4}  {'participant':<30} {'runs':>4}  {'score':>6}  {'test acc':>8}  state"]
        for s in self.standings()[:top]:
            lines.append(
                f"{s.rank or '-':>4}  {s.participant:<30} {s.runs:>4}  {_fmt(s.best_score):>6}  "
                f"{_fmt(s.best_test_accuracy):>8}  {s.last_state}"
            )
        return "\n".join(lines)
