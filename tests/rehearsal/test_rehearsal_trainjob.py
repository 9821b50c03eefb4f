"""The rehearsal's TrainJob controller (mnistkit/rehearsal/trainjob.py) and ``mnistkit rehearse -p trainer=trainjob``.

The controller is driven directly (no processes) to check what Trainer, JobSet and the Job controller would do
with mnistkit's TrainJob and runtime: pods, labels, the env the trainer builds TF_CONFIG from, failure policy,
backoff, deadline, suspend, and the status the workflow's conditions read. The slow tests run the whole
workflow with real trainer processes: two nodes train together and export; a node that fails fails the workflow.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from mnistkit.manifests import ManifestParams, training_runtime, trainjob
from mnistkit.manifests.conditions import resource_outcome
from mnistkit.manifests.trainjob import FAILURE_CONDITION, SUCCESS_CONDITION
from mnistkit.rehearsal.expressions import substitute
from mnistkit.rehearsal.pods import Addresses, _env_value
from mnistkit.rehearsal.store import ObjectStore
from mnistkit.rehearsal.trainjob import TrainJobController, merge_named
from trainer.jobset import tf_config_from_env, worker_hosts

NS = "kubeflow-user-jane"
JOB = "mnist-tj"


def _setup(
    nodes: int = 3, *, runtime_kind: str = "ClusterTrainingRuntime", **changes: Any
) -> tuple[ObjectStore, TrainJobController, dict[str, Any]]:
    store = ObjectStore()
    p = ManifestParams(namespace=NS, job_name=JOB, tf_worker=str(nodes - 1), runtime_kind=runtime_kind)
    store.create(training_runtime(p, kind=runtime_kind))
    tj = trainjob(p)
    tj["spec"].update(changes)
    store.create(tj)
    return store, TrainJobController(store, Addresses()), tj


def _reconcile(store: ObjectStore, ctl: TrainJobController) -> dict[str, Any]:
    obj = store.get("TrainJob", NS, JOB)
    assert obj is not None
    ctl.reconcile(obj)
    out = store.get("TrainJob", NS, JOB)
    assert out is not None
    return out


def _pods(store: ObjectStore) -> list[dict[str, Any]]:
    return sorted(store.list("Pod", NS), key=lambda p: p["metadata"]["name"])


def _end(store: ObjectStore, pod: dict[str, Any], code: int) -> None:
    def fn(o: dict[str, Any]) -> None:
        o["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": "node", "ready": False, "state": {"terminated": {"exitCode": code}}}],
        }

    store.update("Pod", NS, pod["metadata"]["name"], fn)


def _run(store: ObjectStore, pod: dict[str, Any]) -> None:
    store.update(
        "Pod",
        NS,
        pod["metadata"]["name"],
        lambda o: o.__setitem__(
            "status",
            {"phase": "Running", "containerStatuses": [{"name": "node", "ready": True, "state": {"running": {}}}]},
        ),
    )


def _outcome(tj: dict[str, Any]) -> str:
    return resource_outcome(tj, SUCCESS_CONDITION, FAILURE_CONDITION)


def test_pods_carry_what_jobset_gives_and_the_trainer_builds_tf_config_from_it() -> None:
    store, ctl, _ = _setup(3)
    tj = _reconcile(store, ctl)
    pods = _pods(store)
    assert len(pods) == 3
    hosts = worker_hosts(JOB, "node", 0, 3)
    seen = []
    for pod in pods:
        labels, notes = pod["metadata"]["labels"], pod["metadata"]["annotations"]
        index = int(labels["batch.kubernetes.io/job-completion-index"])
        assert labels["mnistkit.io/job"] == JOB and labels["app.kubernetes.io/component"] == "training"  # the patch
        assert (
            notes["jobset.sigs.k8s.io/jobset-name"] == JOB and notes["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
        )
        assert pod["spec"]["hostname"] == f"{JOB}-node-0-{index}" and pod["spec"]["subdomain"] == JOB
        (c,) = pod["spec"]["containers"]
        assert c["image"] == ManifestParams().tf_model_image and c["args"] == tj["spec"]["trainer"]["args"]
        # The env the kubelet gives the process (downward API included), minus the Secret's keys.
        env = {e["name"]: _env_value(store, pod, e) for e in c["env"] if "secretKeyRef" not in e.get("valueFrom", {})}
        cfg = json.loads(tf_config_from_env({k: v for k, v in env.items() if v is not None}) or "")
        assert cfg["task"] == {"type": "worker", "index": index}
        assert set(json.loads(env["MNISTKIT_TF_HOST_MAP"] or "{}")) == {f"{h}" for h in hosts}
        seen.append(tuple(cfg["cluster"]["worker"]))
    assert len(set(seen)) == 1 and len(set(seen[0])) == 3  # one cluster, three distinct loopback addresses
    assert all(a.startswith("127.0.0.1:") for a in seen[0])
    assert tj["status"]["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 0, "failed": 0, "active": 1, "suspended": 0}
    ]
    assert _outcome(tj) == "waiting"
    for pod in pods:
        _run(store, pod)
    tj = _reconcile(store, ctl)
    assert tj["status"]["jobsStatus"][0]["ready"] == 1 and _outcome(tj) == "waiting"
    for pod in pods:
        _end(store, pod, 0)
    tj = _reconcile(store, ctl)
    assert [c["type"] for c in tj["status"]["conditions"]] == ["Complete"]
    assert tj["status"]["conditions"][0]["reason"] == "AllJobsCompleted" and _outcome(tj) == "succeeded"


def test_a_node_that_exits_1_fails_the_trainjob_and_stops_the_others() -> None:
    store, ctl, _ = _setup(3)
    _reconcile(store, ctl)
    pods = _pods(store)
    for pod in pods:
        _run(store, pod)
    _end(store, pods[1], 1)
    tj = _reconcile(store, ctl)
    failed = next(c for c in tj["status"]["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "FailedJobs"
    assert tj["status"]["jobsStatus"][0]["failed"] == 1 and _outcome(tj) == "failed"
    assert [p["metadata"]["name"] for p in _pods(store)] == [pods[1]["metadata"]["name"]]  # running ones deleted
    _reconcile(store, ctl)
    assert len(_pods(store)) == 1  # a finished TrainJob creates nothing more


def test_a_killed_node_is_recreated_with_its_index_until_the_backoff_limit() -> None:
    store, ctl, _ = _setup(2)
    _reconcile(store, ctl)
    limit = ManifestParams().backoff_limit
    for attempt in range(limit + 1):
        victim = next(
            p
            for p in _pods(store)
            if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
            and p.get("status", {}).get("phase") != "Failed"
        )
        _end(store, victim, 137)  # SIGKILL / OOM: restart, like the TFJob's ExitCode policy
        tj = _reconcile(store, ctl)
        if attempt < limit:
            assert _outcome(tj) == "waiting", attempt
            fresh = [
                p
                for p in _pods(store)
                if p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
                and p["status"]["phase"] == "Pending"
            ]
            assert len(fresh) == 1 and fresh[0]["spec"]["hostname"] == f"{JOB}-node-0-1"  # same name for peers
    assert _outcome(tj) == "failed"  # one failure more than backoffLimit


def test_deadline_fails_with_deadline_exceeded_and_deletes_the_pods() -> None:
    store, ctl, _ = _setup(2, activeDeadlineSeconds=60)
    _reconcile(store, ctl)
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.update("TrainJob", NS, JOB, lambda o: o["metadata"].__setitem__("creationTimestamp", old))
    tj = _reconcile(store, ctl)
    assert any(c["reason"] == "DeadlineExceeded" for c in tj["status"]["conditions"]) and _outcome(tj) == "failed"
    assert _pods(store) == []


def test_suspend_deletes_running_pods_and_a_missing_runtime_creates_none() -> None:
    store, ctl, _ = _setup(2)
    _reconcile(store, ctl)
    for pod in _pods(store):
        _run(store, pod)
    store.patch("TrainJob", NS, JOB, {"spec": {"suspend": True}})  # what the exit handler's cleanup-trainjob does
    tj = _reconcile(store, ctl)
    assert _pods(store) == [] and tj["status"]["conditions"][0]["type"] == "Suspended"
    store, ctl, _ = _setup(2, runtime_kind="TrainingRuntime")
    store.delete("TrainingRuntime", NS, "mnistkit-tensorflow")
    _reconcile(store, ctl)
    assert _pods(store) == []


def test_a_store_without_a_kind_does_not_stop_the_other_controllers(tmp_path: Path) -> None:
    """The Kubernetes API double once had no TrainJob resource: listing it raised and ended the controller loop,
    so no workflow ever progressed. Now the failure is recorded and the other kinds are still reconciled."""
    from mnistkit.rehearsal.cluster import Rehearsal

    class NoTrainJobs(ObjectStore):
        def list(self, kind: str | None = None, namespace: str | None = None, labels: Any = None) -> Any:
            if kind == "TrainJob":
                raise RuntimeError("no resource for kind TrainJob")
            return super().list(kind, namespace, labels)

    store = NoTrainJobs()
    store.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": NS},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}},
            },
        }
    )
    with Rehearsal(tmp_path, store=store) as r:
        r.reconcile_once()  # raised here before, and the same exception ended the controller thread
        assert r.wait("Deployment", NS, "d", lambda d: "status" in d, 30)  # the Deployment controller still runs
    assert any("TrainJob" in e and "no resource" in e for e in r.errors)


def test_merge_named_and_the_expression_tag_the_workflow_uses() -> None:
    base = [{"name": "node", "template": {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}}}]
    patch = [{"name": "node", "template": {"metadata": {"labels": {"b": "2"}}}}]
    assert merge_named(base, patch) == [
        {"name": "node", "template": {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}}
    ]
    scope = {"workflow.parameters.tf-worker": "2"}
    text = json.dumps({"m": 'numNodes: {{=asInt(workflow.parameters["tf-worker"]) + 1}}'})
    assert json.loads(substitute(text, scope)) == {"m": "numNodes: 3"}
    from mnistkit.errors import ConfigError

    with pytest.raises(ConfigError, match="needs numbers"):
        substitute('{{=workflow.parameters["tf-worker"] + 1}}', scope)  # parameters are strings, as in Argo
    with pytest.raises(ConfigError, match="workflow.parameters.nope is missing"):
        substitute('{{=asInt(workflow.parameters["nope"])}}', scope)


# ---- the whole workflow, with real trainer processes ---------------------------------------------------
def _rehearse(tmp_path: Path, **params: str) -> tuple[Any, Any, ManifestParams]:
    from mnistkit import data
    from mnistkit.embedded_s3 import EmbeddedS3
    from mnistkit.rehearsal.cluster import Rehearsal
    from mnistkit.rehearsal.run import rehearse_training

    with EmbeddedS3(bucket="mnist") as server:
        p = ManifestParams.from_s3(server.config).with_parameters(
            {
                "job-name": JOB,
                "trainer": "trainjob",
                "model-type": "small",
                "model-train-steps": "40",
                "model-serving": "false",
                **params,
            }
        )
        if "s3-data-url" not in params:
            data.upload_dataset(data.offline_sample(), p.s3_data_url, server.config)
        with Rehearsal(tmp_path / "run") as r:
            outcome = rehearse_training(r, server.config, p, timeout=240, say=lambda _: None)
            pods = r.store.list("Pod", p.namespace, {"jobset.sigs.k8s.io/jobset-name": JOB})
            logs = "".join(r.logs(p.namespace, pod["metadata"]["name"], "node") for pod in pods)
            from mnistkit.rehearsal.run import exported_versions

            versions = exported_versions(server.config, p.export_dir) if outcome.phase == "Succeeded" else []
    return outcome, (logs, versions), p


@pytest.mark.slow
def test_rehearse_trainjob_two_nodes_train_together_and_export(tmp_path: Path) -> None:
    from mnistkit.trainspec import READY_LINE

    outcome, (logs, versions), _ = _rehearse(tmp_path, **{"tf-worker": "1"})
    assert outcome.phase == "Succeeded", outcome.workflow.get("status", {}).get("message")
    assert all(f"worker {i}: {READY_LINE} (2 worker(s))" in logs for i in range(2)), logs[-2000:]
    assert versions == [1]
    nodes = outcome.workflow["status"]["nodes"].values()
    assert {n["displayName"]: n["phase"] for n in nodes}["train-model-trainjob"] == "Succeeded"
    print(f"FIGURE rehearse_trainjob_seconds={outcome.seconds:.0f}")


@pytest.mark.slow
def test_rehearse_trainjob_a_failing_node_fails_the_workflow_within_its_deadline(tmp_path: Path) -> None:
    # No dataset at that URL: every node exits 2 (1-127: the pod failure policy fails the Job at once).
    outcome, _, p = _rehearse(tmp_path, **{"tf-worker": "1", "s3-data-url": "s3://mnist/nothing-here"})
    assert outcome.phase == "Failed"
    phases = {
        n["displayName"]: (n["phase"], n.get("message", "")) for n in outcome.workflow["status"]["nodes"].values()
    }
    assert phases["train-model-trainjob"][0] == "Failed" and "failure condition" in phases["train-model-trainjob"][1]
    assert phases["cleanup-trainjob"][0] == "Succeeded" and phases["report"][0] == "Failed"
    assert outcome.seconds < p.train_deadline_seconds
    print(f"FIGURE rehearse_trainjob_failure_seconds={outcome.seconds:.0f}")
