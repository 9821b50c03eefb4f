"""Time to live after finishing, as Argo, the training operator and JobSet apply it (``mnistkit/rehearsal/ttl.py``).

The controllers are driven directly on the objects mnistkit renders (the TFJob's
``runPolicy.ttlSecondsAfterFinished``, the runtime's JobSet ``ttlSecondsAfterFinished``; both from
``ManifestParams.ttl_seconds_after_finished``), with the finish time moved into the past instead of waiting for a
clock. One test runs workflows with a ``ttlStrategy`` in the rehearsal until Argo's TTL deletes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistkit.manifests import ManifestParams, tfjob, training_runtime, trainjob
from mnistkit.rehearsal.cluster import Rehearsal
from mnistkit.rehearsal.pods import Addresses
from mnistkit.rehearsal.store import ObjectStore
from mnistkit.rehearsal.tfjob import TFJobController
from mnistkit.rehearsal.trainjob import TrainJobController
from mnistkit.rehearsal.ttl import expire_workflows, workflow_ttl

NS = "kubeflow-user-jane"
JOB = "mnist-ttl"
TTL = 60
SH = "docker.io/library/busybox:1.36"


def _ago(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finish_pods(store: ObjectStore) -> None:
    for pod in store.list("Pod", NS):
        store.patch("Pod", NS, pod["metadata"]["name"], {"status": {"phase": "Succeeded"}})


def _backdate(store: ObjectStore, kind: str, seconds: float, fn: Callable[[dict[str, Any], str], None]) -> None:
    store.update(kind, NS, JOB, lambda o: fn(o["status"], _ago(seconds)))


def _reconcile(store: ObjectStore, ctl: TFJobController | TrainJobController, kind: str) -> dict[str, Any] | None:
    """One pass of the job's controller; the job afterwards (None once its TTL deleted it)."""
    if (job := store.get(kind, NS, JOB)) is not None:
        ctl.reconcile(job)
    return store.get(kind, NS, JOB)


def _kinds(store: ObjectStore) -> list[str]:
    return sorted(o["kind"] for o in store.list(namespace=NS))


def test_a_finished_tfjob_goes_with_its_pods_and_services_after_ttl_seconds_after_finished() -> None:
    store = ObjectStore()
    job = tfjob(ManifestParams(namespace=NS, job_name=JOB, tf_worker="1", ttl_seconds_after_finished=TTL))
    assert job["spec"]["runPolicy"]["ttlSecondsAfterFinished"] == TTL  # what the rendered TFJob asks for
    store.create(job)
    ctl = TFJobController(store, Addresses())

    def reconcile() -> dict[str, Any] | None:
        return _reconcile(store, ctl, "TFJob")

    reconcile()
    assert _kinds(store) == ["Pod", "Pod", "Service", "Service", "TFJob"]
    _finish_pods(store)
    done = reconcile()
    assert done is not None and done["status"]["conditions"][-1]["type"] == "Succeeded"
    assert reconcile() is not None  # just finished: it stays, and so do its pods (their logs)
    _backdate(store, "TFJob", TTL - 10, lambda st, t: st.__setitem__("completionTime", t))
    assert reconcile() is not None and len(store.list("Pod", NS)) == 2
    _backdate(store, "TFJob", TTL + 1, lambda st, t: st.__setitem__("completionTime", t))
    assert reconcile() is None  # CleanupJob deleted it, and the garbage collector what it owned
    assert _kinds(store) == []


def test_jobset_ttl_deletes_a_finished_trainjobs_pods_and_keeps_the_trainjob() -> None:
    store = ObjectStore()
    p = ManifestParams(namespace=NS, job_name=JOB, tf_worker="1", ttl_seconds_after_finished=TTL)
    runtime = training_runtime(p)
    assert runtime["spec"]["template"]["spec"]["ttlSecondsAfterFinished"] == TTL
    store.create(runtime)
    store.create(trainjob(p))
    ctl = TrainJobController(store, Addresses())

    def reconcile() -> dict[str, Any]:
        tj = _reconcile(store, ctl, "TrainJob")
        assert tj is not None  # a TrainJob outlives its JobSet's TTL
        return tj

    reconcile()
    _finish_pods(store)
    assert [c["type"] for c in reconcile()["status"]["conditions"]] == ["Complete"]

    def complete_at(status: dict[str, Any], stamp: str) -> None:
        status["conditions"][0]["lastTransitionTime"] = stamp

    _backdate(store, "TrainJob", TTL - 10, complete_at)
    reconcile()
    assert len(store.list("Pod", NS)) == 2  # finished pods and their logs stay until the TTL
    _backdate(store, "TrainJob", TTL + 1, complete_at)
    tj = reconcile()
    assert store.list("Pod", NS) == [] and tj["status"]["conditions"][0]["type"] == "Complete"
    reconcile()
    assert store.list("Pod", NS) == []  # a finished TrainJob's JobSet is not made again


def _workflow(name: str, script: str, ttl: dict[str, int | None] | None = None, **spec: Any) -> dict[str, Any]:
    owned = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-cm"}, "data": {}}
    body: dict[str, Any] = {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "steps": [[{"name": "make", "template": "make"}], [{"name": "run", "template": "run"}]],
            },
            {
                "name": "make",
                "resource": {"action": "create", "setOwnerReference": True, "manifest": json.dumps(owned)},
            },
            {"name": "run", "container": {"image": SH, "command": ["/bin/sh", "-c", script]}},
        ],
        **spec,
    }
    if ttl is not None:
        body["ttlStrategy"] = ttl
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name, "namespace": NS},
            "spec": body}  # fmt: skip


def test_argo_picks_the_ttl_by_phase_as_its_gc_controller_does() -> None:
    store = ObjectStore()
    strategy = {"secondsAfterSuccess": 5, "secondsAfterFailure": 7, "secondsAfterCompletion": 9}

    def ttl(phase: str, strategy: dict[str, int | None] | None, **spec: Any) -> int | None:
        wf = _workflow("w", "true", strategy, **spec)
        return workflow_ttl(store, {**wf, "status": {"phase": phase}})

    assert [ttl(p, strategy) for p in ("Succeeded", "Failed", "Error", "Running")] == [5, 7, 9, None]
    assert ttl("Failed", {"secondsAfterSuccess": 5}) is None  # no TTL for that phase, none for completion
    # a phase's field present but null is unset (Argo's *int32 nil): secondsAfterCompletion applies
    assert ttl("Failed", {"secondsAfterFailure": None, "secondsAfterCompletion": 9}) == 9
    assert ttl("Succeeded", {"secondsAfterSuccess": None, "secondsAfterCompletion": 9}) == 9
    assert ttl("Error", {"secondsAfterError": 1, "secondsAfterCompletion": 9}) == 9  # no such field in Argo
    assert ttl("Succeeded", None) is None
    store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "tmpl", "namespace": NS},
            "spec": {"ttlStrategy": {"secondsAfterCompletion": 3}},
        }
    )
    assert ttl("Failed", None, workflowTemplateRef={"name": "tmpl"}) == 3  # the template's, unless its own
    assert ttl("Failed", {"secondsAfterFailure": 4}, workflowTemplateRef={"name": "tmpl"}) == 4
    wf = {**_workflow("old", "true", {"secondsAfterCompletion": TTL}), "status": {"phase": "Succeeded"}}
    store.create(wf)
    for age, left in ((TTL - 10, ["old"]), (TTL + 2, [])):
        store.update("Workflow", NS, "old", lambda o, a=age: o["status"].__setitem__("finishedAt", _ago(a)))
        expire_workflows(store)
        assert [w["metadata"]["name"] for w in store.list("Workflow", NS)] == left


def test_the_rehearsal_deletes_finished_workflows_by_their_ttl_strategy(tmp_path: Path) -> None:
    with Rehearsal(tmp_path / "r", poll=0.2) as r:
        r.store.create(_workflow("ok", "true", {"secondsAfterSuccess": 1, "secondsAfterFailure": 600}))
        r.store.create(_workflow("bad", "exit 3", {"secondsAfterSuccess": 1}))  # Failed: no TTL applies
        r.store.create(_workflow("kept", "true"))  # no ttlStrategy
        gone = r.store.wait_for(lambda: r.store.get("Workflow", NS, "ok") is None, 60)
        assert gone and r.store.get("ConfigMap", NS, "ok-cm") is None  # what it owned went with it
        r.wait("Workflow", NS, "bad", lambda o: (o.get("status") or {}).get("phase") == "Failed", 60)
        r.wait("Workflow", NS, "kept", lambda o: (o.get("status") or {}).get("phase") == "Succeeded", 60)
        r.reconcile_once()
        assert {w["metadata"]["name"] for w in r.store.list("Workflow", NS)} == {"bad", "kept"}
        assert r.store.get("ConfigMap", NS, "kept-cm") is not None
