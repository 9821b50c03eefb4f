"""Workshop mode: a room of thirty people, one shared bucket, and a hub that just works.

* ``prepare`` / ``preflight``: the offline folder for the room and the per-laptop check
  (``mnistkit workshop prepare DIR`` / ``mnistkit workshop check [DIR]``);
* ``Workspace``: each participant's prefix ``s3://<bucket>/workshop/<room>/<participant>/`` and local
  folder, with a reset that touches nothing else;
* ``exercises``: checks the notebook calls, with hints (``CheckResult``);
* ``record_run`` / ``fixed_digit_set`` / ``drawing_pad_score``: run records and the drawing-pad score;
* ``Leaderboard`` and ``InstructorPanel``: the room's runs, ranked, and what each participant may see.

Importing this package is light: submodules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mnistkit._lazy import lazy_getattr

if TYPE_CHECKING:  # what __getattr__ imports on first use, for type checkers
    from mnistkit.workshop.digits import drawing_pad_score, fixed_digit_set
    from mnistkit.workshop.exercises import CheckResult
    from mnistkit.workshop.hub import hub_context
    from mnistkit.workshop.leaderboard import Leaderboard
    from mnistkit.workshop.names import participant_from_user, validate_participant
    from mnistkit.workshop.panel import InstructorPanel, ParticipantPanel
    from mnistkit.workshop.preflight import run_checks
    from mnistkit.workshop.prepare import prepare
    from mnistkit.workshop.runs import RunRecord, list_runs, record_run
    from mnistkit.workshop.workspace import Workspace


__all__ = [
    "Workspace",
    "record_run",
    "list_runs",
    "RunRecord",
    "fixed_digit_set",
    "drawing_pad_score",
    "Leaderboard",
    "InstructorPanel",
    "ParticipantPanel",
    "CheckResult",
    "prepare",
    "run_checks",
    "hub_context",
    "validate_participant",
    "participant_from_user",
]

_WHERE = {
    "Workspace": "mnistkit.workshop.workspace",
    "record_run": "mnistkit.workshop.runs",
    "list_runs": "mnistkit.workshop.runs",
    "RunRecord": "mnistkit.workshop.runs",
    "fixed_digit_set": "mnistkit.workshop.digits",
    "drawing_pad_score": "mnistkit.workshop.digits",
    "Leaderboard": "mnistkit.workshop.leaderboard",
    "InstructorPanel": "mnistkit.workshop.panel",
    "ParticipantPanel": "mnistkit.workshop.panel",
    "CheckResult": "mnistkit.workshop.exercises",
    "prepare": "mnistkit.workshop.prepare",
    "run_checks": "mnistkit.workshop.preflight",
    "hub_context": "mnistkit.workshop.hub",
    "validate_participant": "mnistkit.workshop.names",
    "participant_from_user": "mnistkit.workshop.names",
}


__getattr__ = lazy_getattr(__name__, _WHERE)
