"""What every training-job kind shares: the registry of job controllers, pods made from templates, conditions.

A job kind (``TFJob`` here; a ``TrainJob`` whose JobSet makes pods can be added the same way) is a class
with ``kind`` and ``reconcile(job)``, registered with ``@job_controller``. ``Rehearsal`` runs every registered
controller on every object of its kind. ``create_pod`` and ``set_condition`` are the training operator's
``createNewPod`` and ``commonutil.UpdateJobConditions`` (training-operator v1.9), for every kind to reuse.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import ApiError, Obj, StoreBase, now_rfc3339

__all__ = [
    "JOB_CONTROLLERS",
    "JobController",
    "create_pod",
    "has_condition",
    "job_controller",
    "owner_reference",
    "set_condition",
]


class JobController(Protocol):
    kind: str

    def __init__(self, store: StoreBase, addresses: Addresses) -> None: ...

    def reconcile(self, job: Obj) -> None: ...


JOB_CONTROLLERS: dict[str, Callable[[StoreBase, Addresses], JobController]] = {}
_C = TypeVar("_C", bound=JobController)


def job_controller(cls: type[_C]) -> type[_C]:
    """Register a job controller class under its ``kind``."""
    JOB_CONTROLLERS[cls.kind] = cls
    return cls


def owner_reference(owner: Mapping[str, Any], controller: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def create_pod(
    store: StoreBase,
    owner: Obj,
    name: str,
    template: Mapping[str, Any],
    labels: Mapping[str, str],
    env: Mapping[str, Mapping[str, str]] | None = None,
    restart_policy: str | None = None,
) -> Obj | None:
    """A Pod from a pod template, owned by ``owner``; ``env`` appends variables per container name."""
    tmpl = copy.deepcopy(dict(template))
    meta = tmpl.get("metadata") or {}
    spec = tmpl.get("spec") or {}
    for container in spec.get("containers", []):
        for k, v in (env or {}).get(container["name"], {}).items():
            container.setdefault("env", []).append({"name": k, "value": v})
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"].get("namespace", ""),
            "labels": {**(meta.get("labels") or {}), **labels},
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }
    try:
        return store.create(pod)
    except ApiError as exc:
        if exc.code == 409:
            return None  # the previous pod of that name is still being deleted; next reconcile
        raise


def has_condition(status: Mapping[str, Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def set_condition(status: dict[str, Any], ctype: str, reason: str, message: str, value: str = "True") -> None:
    """``UpdateJobConditions``: nothing once Failed; Running and Restarting replace each other; a finished job's
    Running condition turns False; an unchanged status keeps its ``lastTransitionTime``."""
    if has_condition(status, "Failed"):
        return
    conditions = list(status.get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == ctype), None)
    if current and current.get("status") == value and current.get("reason") == reason:
        return
    now = now_rfc3339()
    new = {
        "type": ctype,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": current["lastTransitionTime"] if current and current.get("status") == value else now,
    }
    kept = []
    for c in conditions:
        if c.get("type") == ctype or {c.get("type"), ctype} == {"Running", "Restarting"}:
            continue
        if ctype in ("Failed", "Succeeded") and c.get("type") == "Running":
            c = {**c, "status": "False"}
        kept.append(c)
    status["conditions"] = [*kept, new]
