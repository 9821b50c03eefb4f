"""Kubeflow Trainer v2: the TrainJob, the ``mnistkit-tensorflow`` runtime, and the workflow with ``-p trainer=trainjob``.

Strict-mode validation against the vendored Trainer v2.3.0 CRD schemas (tests/manifests/schemas), golden files in
tests/manifests/golden/trainjob/ (``MNISTKIT_UPDATE_GOLDEN=1`` regenerates them), and the Argo conditions evaluated on
TrainJob statuses shaped as Trainer v2.3.0 writes them (trainjob_controller.go, plugins/jobset/jobset.go).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnistkit.errors import ConfigError
from mnistkit.manifests import ManifestParams, all_manifests, model_train_workflow, to_yaml, trainjob
from mnistkit.manifests.conditions import parse_requirements, resource_outcome
from mnistkit.manifests.runtime import ANCESTOR_LABEL, NODE, RUNTIME_NAME
from mnistkit.manifests.trainjob import FAILURE_CONDITION, SUCCESS_CONDITION
from helpers.schemas import (
    SCHEMAS,
    argo_errors,
    argo_when,
    as_json,
    core_errors,
    crd_validator,
    inline_manifests,
)

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "trainjob"
TRAINJOB_FILES = ("trainjob.yaml", "training-runtime.yaml", "training-runtime-namespaced.yaml")
_SCHEMA_OF_KIND = {
    "TrainJob": "kubeflow-trainer-v2.3.0-trainjob-crd.openapi.json",
    "TrainingRuntime": "kubeflow-trainer-v2.3.0-trainingruntime-crd.openapi.json",
    "ClusterTrainingRuntime": "kubeflow-trainer-v2.3.0-clustertrainingruntime-crd.openapi.json",
}


def trainer_errors(m: dict[str, Any]) -> list[str]:
    errs = [f"{e.json_path}: {e.message}" for e in crd_validator(_SCHEMA_OF_KIND[m["kind"]]).iter_errors(m)]
    if m.get("apiVersion") != "trainer.kubeflow.org/v1alpha1":
        errs.append("apiVersion must be trainer.kubeflow.org/v1alpha1")  # the CRD schema doesn't pin it
    return errs


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    return as_json(all_manifests(ManifestParams().with_parameters({"trainer": "trainjob", "tf-worker": "2"})))


def _pod(runtime: dict[str, Any]) -> dict[str, Any]:
    (rjob,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    return rjob["template"]["spec"]["template"]


# ---- schemas -------------------------------------------------------------------------------------
def test_trainjob_and_both_runtimes_are_strict_valid(rendered: dict[str, Any]) -> None:
    assert {n: rendered[n]["kind"] for n in TRAINJOB_FILES} == {
        "trainjob.yaml": "TrainJob",
        "training-runtime.yaml": "ClusterTrainingRuntime",
        "training-runtime-namespaced.yaml": "TrainingRuntime",
    }
    for name in TRAINJOB_FILES:
        assert trainer_errors(rendered[name]) == [], name
    assert "tfjob.yaml" not in rendered  # the TrainJob replaces it
    # The schemas accept upstream's own runtime (a check of the check).
    upstream = yaml.safe_load((SCHEMAS / "kubeflow-trainer-v2.3.0-example-torch_distributed.yaml").read_text())
    assert trainer_errors(upstream) == []


def test_strict_mode_catches_a_misspelled_key_in_trainer_objects(rendered: dict[str, Any]) -> None:
    job = copy.deepcopy(rendered["trainjob.yaml"])
    job["spec"]["trainer"]["numnodes"] = 2
    assert any("numnodes" in e for e in trainer_errors(job))
    rt = copy.deepcopy(rendered["training-runtime.yaml"])
    _pod(rt)["spec"]["containers"][0]["comand"] = ["x"]
    assert any("comand" in e for e in trainer_errors(rt))


def test_runtime_is_plainml_with_one_replicated_job_of_dns_named_non_root_nodes(rendered: dict[str, Any]) -> None:
    for name in ("training-runtime.yaml", "training-runtime-namespaced.yaml"):
        rt = rendered[name]
        assert rt["metadata"]["name"] == RUNTIME_NAME
        assert rt["spec"]["mlPolicy"] == {"numNodes": 1}  # no torch/mpi/jax/...: Trainer's PlainML plugin
        js = rt["spec"]["template"]["spec"]
        assert js["network"]["enableDNSHostnames"] is True
        (rjob,) = js["replicatedJobs"]
        assert rjob["name"] == NODE and rjob["replicas"] == 1
        assert rjob["template"]["metadata"]["labels"] == {ANCESTOR_LABEL: "trainer"}
        rules = rjob["template"]["spec"]["podFailurePolicy"]["rules"]
        assert {
            "action": "FailJob",
            "onExitCodes": {"containerName": NODE, "operator": "NotIn", "values": [137, 143]},
        } in rules
        pod = _pod(rt)
        assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True and pod["spec"]["restartPolicy"] == "Never"
        (c,) = pod["spec"]["containers"]
        assert c["name"] == NODE and c["image"] == ManifestParams().tf_model_image
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert "namespace" not in rendered["training-runtime.yaml"]["metadata"]  # cluster-scoped
    assert rendered["training-runtime-namespaced.yaml"]["metadata"]["namespace"] == "kubeflow"


def test_trainjob_carries_nodes_image_every_flag_secret_refs_labels_and_deadline(rendered: dict[str, Any]) -> None:
    job = rendered["trainjob.yaml"]
    assert job["spec"]["runtimeRef"] == {
        "name": RUNTIME_NAME,
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    tr = job["spec"]["trainer"]
    assert tr["numNodes"] == 3  # tf-worker=2 workers besides the chief: 3 processes, as with a TFJob
    assert tr["command"] == ["python", "-m", "trainer.task"] and tr["args"] == ManifestParams().trainer_flags()
    env = {e["name"]: e for e in tr["env"]}
    assert env["MNISTKIT_NUM_NODES"]["value"] == "3"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[key] and "secretKeyRef" in env[key]["valueFrom"]
    assert job["metadata"]["labels"]["mnistkit.io/job"] == "mnist-train"
    (patch,) = job["spec"]["runtimePatches"]
    pod_labels = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"][
        "metadata"
    ]["labels"]
    assert pod_labels["mnistkit.io/job"] == "mnist-train" and pod_labels["app.kubernetes.io/component"] == "training"
    assert job["spec"]["activeDeadlineSeconds"] == ManifestParams().train_deadline_seconds
    namespaced = as_json(trainjob(ManifestParams(), runtime_kind="TrainingRuntime"))
    assert namespaced["spec"]["runtimeRef"]["kind"] == "TrainingRuntime" and trainer_errors(namespaced) == []


def test_render_cli_writes_the_trainjob_files_without_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main

    canary = "canary-Secret/trainjob-do-not-leak-19d2"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARY0000000099")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    assert main(["render", "--out", str(tmp_path), "-p", "trainer=trainjob"]) == 0
    names = {f.name for f in tmp_path.iterdir()}
    assert set(TRAINJOB_FILES) <= names and "tfjob.yaml" not in names
    for f in tmp_path.iterdir():
        assert canary not in f.read_text() and "AKIACANARY0000000099" not in f.read_text()
    assert canary not in capsys.readouterr().out
    with pytest.raises(ConfigError, match="trainer must be one of tfjob, trainjob"):
        ManifestParams().with_parameters({"trainer": "pytorchjob"})


def test_trainjob_golden_files_match_exactly() -> None:
    p = ManifestParams().with_parameters({"trainer": "trainjob"})
    rendered = {name: to_yaml(m) for name, m in all_manifests(p).items() if name in TRAINJOB_FILES}
    if os.environ.get("MNISTKIT_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        for name, text in rendered.items():
            (GOLDEN / name).write_text(text)
    assert {f.name for f in GOLDEN.glob("*.yaml")} == set(TRAINJOB_FILES)
    for name, text in rendered.items():
        assert (GOLDEN / name).read_text() == text, (
            f"{name} differs from tests/manifests/golden/trainjob (MNISTKIT_UPDATE_GOLDEN=1)"
        )


# ---- the workflow ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tf_worker", ["0", "1", "3"])
def test_workflow_with_trainer_trainjob_creates_the_trainjob(tf_worker: str) -> None:
    p = ManifestParams().with_parameters({"trainer": "trainjob", "tf-worker": tf_worker})
    wf = as_json(model_train_workflow(p))
    assert argo_errors(wf) == []
    main = next(t for t in wf["spec"]["templates"] if t["name"] == "model-train")
    whens = {s["name"]: s["when"] for g in main["steps"] for s in g if s["name"].startswith("train-model")}
    assert [n for n, w in whens.items() if argo_when(w, p.parameters())] == ["train-model-trainjob"]
    # The default (tfjob) still picks a TFJob step, never the TrainJob.
    default = {**p.parameters(), "trainer": "tfjob"}
    assert "train-model-trainjob" not in [n for n, w in whens.items() if argo_when(w, default)]
    inline = inline_manifests(wf)
    job = inline["train-model-trainjob"]
    assert trainer_errors(job) == []
    assert job["spec"]["trainer"]["numNodes"] == int(tf_worker) + 1  # an integer once Argo evaluated the tag
    assert job == as_json(trainjob(p))  # the TrainJob the workflow creates is the one `mnistkit render` writes
    step = next(t for t in wf["spec"]["templates"] if t["name"] == "train-model-trainjob")
    assert step["resource"]["successCondition"] == SUCCESS_CONDITION
    assert step["resource"]["failureCondition"] == FAILURE_CONDITION
    assert step["activeDeadlineSeconds"] > job["spec"]["activeDeadlineSeconds"]
    assert inline["cleanup-trainjob"]["spec"] == {"suspend": True}  # stops running pods, keeps failed ones' logs
    for s in ("tensorboard", "serve-model"):
        assert core_errors(inline[s]) == []


def test_exit_handler_cleans_up_the_kind_that_ran() -> None:
    wf = as_json(model_train_workflow(ManifestParams()))
    handler = next(t for t in wf["spec"]["templates"] if t["name"] == "exit-handler")
    steps = {s["name"]: s["when"] for g in handler["steps"] for s in g if "when" in s}
    for trainer, expected in (("tfjob", ["cleanup"]), ("trainjob", ["cleanup-trainjob"])):
        params = {**ManifestParams().parameters(), "trainer": trainer}
        failed = [n for n, w in steps.items() if argo_when(w.replace("{{workflow.status}}", "Failed"), params)]
        ok = [n for n, w in steps.items() if argo_when(w.replace("{{workflow.status}}", "Succeeded"), params)]
        assert failed == expected and ok == []


# ---- Argo conditions on TrainJob statuses ---------------------------------------------------------------
def _cond(kind: str, reason: str = "", status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason or kind, "message": ""}


def _jobs(**counts: int) -> list[dict[str, Any]]:
    base = {"ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
    return [{"name": NODE, **base, **counts}]


STATUSES: dict[str, tuple[dict[str, Any], str]] = {
    "created": ({}, "waiting"),
    "starting": ({"jobsStatus": _jobs(active=1)}, "waiting"),
    "running": ({"jobsStatus": _jobs(active=1, ready=1)}, "waiting"),
    "suspended (Kueue)": ({"conditions": [_cond("Suspended")], "jobsStatus": _jobs(suspended=1)}, "waiting"),
    "complete": (
        {"conditions": [_cond("Complete", "AllJobsCompleted")], "jobsStatus": _jobs(succeeded=1)},
        "succeeded",
    ),
    "resumed then complete": (
        {
            "conditions": [_cond("Suspended", "Resumed", "False"), _cond("Complete", "AllJobsCompleted")],
            "jobsStatus": _jobs(succeeded=1),
        },
        "succeeded",
    ),
    "a node exited 1": ({"conditions": [_cond("Failed", "FailedJobs")], "jobsStatus": _jobs(failed=1)}, "failed"),
    "failed, jobs not yet counted": (
        {"conditions": [_cond("Failed", "FailedJobs")], "jobsStatus": _jobs(active=1)},
        "failed",
    ),
    "job failed, condition not yet copied": ({"jobsStatus": _jobs(failed=1)}, "failed"),
    "resumed then failed": (
        {"conditions": [_cond("Suspended", "Resumed", "False"), _cond("Failed", "FailedJobs")]},
        "failed",
    ),
    "deadline exceeded (JobSet deleted)": (
        {"conditions": [_cond("Suspended", "Resumed", "False"), _cond("Failed", "DeadlineExceeded")]},
        "failed",
    ),
    "failed third": (
        {
            "conditions": [
                _cond("Suspended", "Resumed", "False"),
                _cond("Complete", "AllJobsCompleted"),
                _cond("Failed", "DeadlineExceeded"),
            ]
        },
        "failed",
    ),
    "unknown runtime": ({"conditions": [_cond("Failed", "TrainingRuntimeNotSupported")]}, "failed"),
}


@pytest.mark.parametrize("name", list(STATUSES))
def test_conditions_decide_like_argo_on_trainers_statuses(name: str) -> None:
    status, expected = STATUSES[name]
    assert resource_outcome({"status": status}, SUCCESS_CONDITION, FAILURE_CONDITION) == expected


def test_conditions_parse_as_argo_parses_them_and_a_type_query_does_not() -> None:
    # apimachinery's labels.Parse: keys are qualified names (IsQualifiedName), values label values.
    name_re = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
    for expr in (SUCCESS_CONDITION, FAILURE_CONDITION):
        reqs = parse_requirements(expr)
        assert reqs
        for key, _, values in reqs:
            assert len(key) <= 63 and name_re.match(key), key
            assert all(len(v) <= 63 and name_re.match(v) for v in values), values
    for bad in ('status.conditions.#(type=="Failed").status == True', "status.conditions.#.type"):
        with pytest.raises(ConfigError):
            parse_requirements(bad)
