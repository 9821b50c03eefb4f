"""Time to live after finishing: finished objects deleted when their TTL has passed, as their controllers do it.

* **Argo** (``workflow/gccontroller``): a Workflow whose phase is Failed, Error or Succeeded is deleted 1 s after
  ``status.finishedAt`` + its TTL (Argo queues it that second late, on purpose). The TTL is ``spec.ttlStrategy``
  (else the one of its ``workflowTemplateRef``): ``secondsAfterFailure`` for Failed, ``secondsAfterSuccess`` for
  Succeeded, else (also when that one is null, and always for Error: Argo has no ``secondsAfterError``)
  ``secondsAfterCompletion``. What it owns goes with it (GC).
* **Training operator** (``CleanupJob``, v1.9): a finished TFJob is deleted ``runPolicy.ttlSecondsAfterFinished``
  after ``status.completionTime``; its pods and Services go with it (``tfjob.py`` calls ``expired``).
* **JobSet** (``executeTTLAfterFinishedPolicy``): ``ttlSecondsAfterFinished`` after the Completed/Failed condition,
  the JobSet, its Jobs and pods are deleted; the TrainJob and its status stay (``trainjob.py``).

Times are the API's, whole seconds (RFC 3339), so an object may go up to a second before its TTL is over.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from mnistkit.rehearsal.store import Obj, StoreBase

if TYPE_CHECKING:
    from mnistkit._types import JsonValue

__all__ = ["expire_workflows", "expired", "seconds_since", "workflow_ttl"]

_WORKFLOW_TTL = {"Failed": "secondsAfterFailure", "Succeeded": "secondsAfterSuccess"}
_COMPLETED = ("Failed", "Error", "Succeeded")


def seconds_since(stamp: str) -> float:
    t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return (dt.datetime.now(dt.timezone.utc) - t).total_seconds()


def expired(finished_at: str | None, ttl: JsonValue) -> bool:
    """``finished_at`` + ``ttl`` seconds is past (False without either)."""
    return ttl is not None and bool(finished_at) and seconds_since(str(finished_at)) >= int(ttl)


def workflow_ttl(store: StoreBase, wf: Obj) -> int | None:
    """The TTL Argo gives this finished Workflow, if any (``ttl()`` in Argo's gc controller)."""
    spec = wf.get("spec") or {}
    strategy = spec.get("ttlStrategy")
    ref = spec.get("workflowTemplateRef")
    if strategy is None and ref:
        template = store.get("WorkflowTemplate", wf["metadata"].get("namespace", ""), ref.get("name", ""))
        strategy = ((template or {}).get("spec") or {}).get("ttlStrategy")
    phase = (wf.get("status") or {}).get("phase")
    if not strategy or phase not in _COMPLETED:
        return None
    # Argo's ttl(): the phase's field if it is set (not null), else secondsAfterCompletion
    value = strategy.get(_WORKFLOW_TTL.get(phase, ""))
    if value is None:
        value = strategy.get("secondsAfterCompletion")
    return int(value) if value is not None else None


def expire_workflows(store: StoreBase) -> list[str]:
    """Delete every finished Workflow whose TTL has passed; returns their names."""
    gone = []
    for wf in store.list("Workflow"):
        ttl = workflow_ttl(store, wf)
        if ttl is not None and expired((wf.get("status") or {}).get("finishedAt"), ttl + 1):
            meta = wf["metadata"]
            if store.delete("Workflow", meta.get("namespace", ""), meta["name"]) is not None:
                gone.append(meta["name"])
    return gone
