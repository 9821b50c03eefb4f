"""The client side of Kubeflow Trainer v2 against the Kubernetes API double: doctor, picking TFJob or TrainJob,
and a TrainJob run end to end (the workflow's conditions evaluated on the status Trainer writes), logs, delete.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers.k8s_double import PODS, WF, K8sDouble
from mnistkit.cluster.client import ClusterClient
from mnistkit.errors import ClusterError
from mnistkit.manifests import ManifestParams, training_runtime
from mnistkit.manifests.conditions import resource_outcome
from helpers.schemas import substitute

NS = "kubeflow-user-jane"
TRAINJOBS = ("trainer.kubeflow.org", "trainjobs")
CLUSTER_RUNTIMES = ("trainer.kubeflow.org", "clustertrainingruntimes")
RUNTIMES = ("trainer.kubeflow.org", "trainingruntimes")


@pytest.fixture()
def k8s() -> Iterator[K8sDouble]:
    with K8sDouble() as double:
        double.enforce_crds = True  # a CRD that is not installed answers 404, as on a real cluster
        yield double


@pytest.fixture()
def client(k8s: K8sDouble) -> ClusterClient:
    from kubernetes import client as k

    return ClusterClient(k.ApiClient(k8s.configuration()), NS)


def _trainer_v2_only(k8s: K8sDouble, runtime: str | None = "ClusterTrainingRuntime") -> None:
    k8s.crds = {
        "workflows.argoproj.io",
        "workflowtemplates.argoproj.io",
        "trainjobs.trainer.kubeflow.org",
        "trainingruntimes.trainer.kubeflow.org",
        "clustertrainingruntimes.trainer.kubeflow.org",
    }
    if runtime == "ClusterTrainingRuntime":
        k8s.create(CLUSTER_RUNTIMES, "", training_runtime(ManifestParams()))
    elif runtime == "TrainingRuntime":
        k8s.create(RUNTIMES, NS, training_runtime(ManifestParams(namespace=NS), kind="TrainingRuntime"))


def _submitted(k8s: K8sDouble, name: str) -> tuple[dict[str, str], dict[str, Any]]:
    wf = k8s.get(WF, NS, name)
    assert wf is not None
    params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    tmpl = next(t for t in wf["spec"]["templates"] if t["name"] == "train-model-trainjob")
    return params, yaml.safe_load(substitute(tmpl["resource"]["manifest"], params, name))


# ---- doctor ----------------------------------------------------------------------------------------
def test_doctor_on_a_trainer_v2_cluster_reports_the_runtime_and_the_api_submit_uses(
    k8s: K8sDouble, client: ClusterClient
) -> None:
    from mnistkit.cluster.doctor import doctor, format_report

    _trainer_v2_only(k8s, runtime=None)
    k8s.denied |= {("kubeflow.org", "tfjobs", "list")}  # not needed where TFJob is not installed
    for ns, name in (("argo", "workflow-controller"), ("kubeflow-system", "kubeflow-trainer-controller-manager")):
        k8s.create(("apps", "deployments"), ns, {"metadata": {"name": name}, "status": {"readyReplicas": 1}})
    k8s.create(("", "serviceaccounts"), NS, {"metadata": {"name": "mnistkit-workflow"}})
    k8s.create(("", "secrets"), NS, {"metadata": {"name": "aws-creds"}, "data": {}})
    report = format_report(doctor(client))
    print(report)
    assert "[ok  ] CRD tfjobs.kubeflow.org: not installed (not needed: trainjobs.trainer.kubeflow.org is)" in report
    assert "[ok  ] CRD trainjobs.trainer.kubeflow.org: installed" in report
    assert "[FAIL] training runtime mnistkit-tensorflow: not installed" in report
    assert "kubectl apply -f m/training-runtime.yaml" in report
    assert "Kubeflow Trainer controller: kubeflow-system/kubeflow-trainer-controller-manager ready" in report
    assert "training operator" not in report and "1 problem(s) found" in report

    k8s.create(RUNTIMES, NS, training_runtime(ManifestParams(namespace=NS), kind="TrainingRuntime"))
    report = format_report(doctor(client))
    assert f"[ok  ] training runtime mnistkit-tensorflow: TrainingRuntime (in {NS})" in report
    assert "use TrainJob (Kubeflow Trainer v2)" in report and "all checks passed" in report


# ---- picking the training API ------------------------------------------------------------------------
def test_submit_picks_tfjob_where_it_exists_and_trainjob_where_only_trainer_v2_does(
    k8s: K8sDouble, client: ClusterClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main

    k8s.crds.add("trainjobs.trainer.kubeflow.org")  # both installed: the seed's TFJob, unless told
    assert client.with_trainer(ManifestParams()).trainer == "tfjob"
    _trainer_v2_only(k8s, runtime="TrainingRuntime")
    p = client.with_trainer(client.params_for(ManifestParams(), job_name="mnist-auto-1"))
    assert (p.trainer, p.runtime_kind) == ("trainjob", "TrainingRuntime")
    client.submit(p)
    params, job = _submitted(k8s, "mnist-auto-1")
    assert params["trainer"] == "trainjob"
    assert job["spec"]["runtimeRef"]["kind"] == "TrainingRuntime"  # the namespaced runtime is the one installed
    assert job["spec"]["trainer"]["numNodes"] == int(params["tf-worker"]) + 1
    # The CLI picks the same way and says which one it used.
    assert (
        main(
            [
                "submit",
                "-n",
                NS,
                "--kubeconfig",
                str(k8s.kubeconfig(tmp_path / "config", NS)),
                "--job-name",
                "mnist-cli-1",
            ]
        )
        == 0
    )
    assert "(trainer: trainjob)" in capsys.readouterr().out
    assert _submitted(k8s, "mnist-cli-1")[0]["trainer"] == "trainjob"


@pytest.mark.parametrize(
    ("crds", "runtime", "message"),
    [
        (set(), None, "neither tfjobs.kubeflow.org"),
        ({"trainjobs.trainer.kubeflow.org"}, None, "mnistkit-tensorflow training runtime is missing"),
    ],
)
def test_a_cluster_that_cannot_train_is_a_clear_error(
    k8s: K8sDouble, client: ClusterClient, crds: set[str], runtime: str | None, message: str
) -> None:
    k8s.crds = {"workflows.argoproj.io", *crds}
    with pytest.raises(ClusterError, match=message):
        client.with_trainer(ManifestParams())


def test_tfjob_cluster_still_submits_a_tfjob_and_trainjob_is_refused(k8s: K8sDouble, client: ClusterClient) -> None:
    assert client.with_trainer(ManifestParams()).trainer == "tfjob"
    with pytest.raises(ClusterError, match="trainjobs.trainer.kubeflow.org is not installed"):
        client.with_trainer(ManifestParams(), "trainjob")


# ---- a TrainJob run, played as Trainer + JobSet + Argo would ---------------------------------------------
def _run_trainjob(k8s: K8sDouble, name: str, job: dict[str, Any], *, fail_node: int | None) -> dict[str, Any]:
    """Create the TrainJob and its pods as Trainer/JobSet do, then write the status Trainer writes."""
    code, job = k8s.create(TRAINJOBS, NS, job)
    assert code == 201
    n = job["spec"]["trainer"]["numNodes"]
    patch = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod_labels = patch["template"]["spec"]["template"]["metadata"]["labels"]
    for i in range(n):
        pod = f"{name}-node-0-{i}-abcde"
        labels = {
            **pod_labels,
            "jobset.sigs.k8s.io/jobset-name": name,
            "batch.kubernetes.io/job-completion-index": str(i),
        }
        failed = fail_node == i
        k8s.create(
            PODS,
            NS,
            {"metadata": {"name": pod, "labels": labels}, "status": {"phase": "Failed" if failed else "Succeeded"}},
        )
        k8s.set_log(NS, pod, f"[trainer] node {i} {'exit 1' if failed else 'done'}\n")
    if fail_node is None:
        status = {
            "conditions": [{"type": "Complete", "status": "True", "reason": "AllJobsCompleted"}],
            "jobsStatus": [{"name": "node", "succeeded": 1, "failed": 0, "active": 0, "ready": 0, "suspended": 0}],
        }
    else:
        status = {
            "conditions": [{"type": "Failed", "status": "True", "reason": "FailedJobs"}],
            "jobsStatus": [{"name": "node", "succeeded": 0, "failed": 1, "active": 0, "ready": 0, "suspended": 0}],
        }
    updated = k8s.update(TRAINJOBS, NS, name, lambda o: o.__setitem__("status", status))
    assert updated is not None
    return updated


@pytest.mark.parametrize("fail_node", [None, 1])
def test_trainjob_run_conditions_logs_and_teardown(
    k8s: K8sDouble, client: ClusterClient, fail_node: int | None
) -> None:
    _trainer_v2_only(k8s)
    name = f"mnist-tj-{'fail' if fail_node else 'ok'}"
    client.submit(client.with_trainer(client.params_for(ManifestParams(), job_name=name, tf_worker="2")))
    params, job = _submitted(k8s, name)
    wf = k8s.get(WF, NS, name)
    assert wf is not None
    tmpl = next(t for t in wf["spec"]["templates"] if t["name"] == "train-model-trainjob")["resource"]
    assert resource_outcome(job, tmpl["successCondition"], tmpl["failureCondition"]) == "waiting"  # just created
    done = _run_trainjob(k8s, name, job, fail_node=fail_node)
    outcome = resource_outcome(done, tmpl["successCondition"], tmpl["failureCondition"])
    assert outcome == ("succeeded" if fail_node is None else "failed")

    lines = client.logs(name).splitlines()
    assert lines[0] == "[node-0] [trainer] node 0 done" and len(lines) == 3  # node 0 (the chief) first
    assert all("container=node" in p for m, p in k8s.requests if p.split("?")[0].endswith("/log"))

    counts = client.delete(name)
    assert counts["trainjobs"] == 1 and counts["tfjobs"] == 0 and counts["workflows"] == 1
    for pod in k8s.list(PODS, NS):  # (in a cluster they go with the TrainJob's JobSet)
        k8s.delete(PODS, NS, pod["metadata"]["name"])
    assert client.leftovers(name) == []
