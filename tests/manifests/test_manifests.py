"""The Kubernetes/Argo manifests: official schemas in strict mode, golden files, RBAC, secrets, job names.

Golden files live in tests/manifests/golden/ and are compared exactly; regenerate them with
``MNISTKIT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/manifests/test_manifests.py``.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnistkit.cluster.identity import default_job_name
from mnistkit.config import S3Config
from mnistkit.errors import ConfigError
from mnistkit.manifests import (
    ManifestParams,
    all_manifests,
    aws_secret,
    model_train_workflow,
    to_yaml,
)
from mnistkit.manifests.conditions import resource_outcome
from mnistkit.manifests.rbac import (
    STEP_PERMISSIONS,
    permissions_from_rules,
    required_permissions,
    role,
)
from mnistkit.manifests.tfjob import FAILURE_CONDITION, SUCCESS_CONDITION

from helpers.paths import ROOT
from helpers.schemas import (
    SCHEMAS,
    argo_errors,
    argo_when,
    as_json,
    core_errors,
    crd_validator,
    inline_manifests,
    kserve_errors,
    substitute,
    tfjob_errors,
)

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
CORE_KINDS = {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Secret", "NetworkPolicy"}


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return as_json(all_manifests(ManifestParams()))


def _containers(m: dict[str, Any]) -> list[dict[str, Any]]:
    spec = m.get("spec", {})
    pods = []
    if m["kind"] == "Deployment":
        pods.append(spec["template"]["spec"])
    if m["kind"] == "TFJob":
        pods += [r["template"]["spec"] for r in spec["tfReplicaSpecs"].values()]
    return [c for pod in pods for c in pod.get("initContainers", []) + pod["containers"]]


# ---- schemas -----------------------------------------------------------------------------------
def test_every_rendered_manifest_is_valid_against_its_official_schema(manifests: dict[str, Any]) -> None:
    checked = {}
    for name, m in manifests.items():
        if m["kind"] in ("Workflow", "WorkflowTemplate"):
            errors = argo_errors(m)
        elif m["kind"] == "TFJob":
            errors = tfjob_errors(m)
        elif m["kind"] == "InferenceService":
            errors = kserve_errors(m)
        elif m["kind"] in CORE_KINDS:
            errors = core_errors(m)
        else:
            continue  # PodDefault: no vendored schema (structure tested below)
        assert errors == [], f"{name}: {errors}"
        checked[name] = m["kind"]
    assert {"Workflow", "WorkflowTemplate", "TFJob", "Deployment", "Service", "Role", "NetworkPolicy",
            "InferenceService"} <= set(
        checked.values())


def test_strict_mode_catches_a_misspelled_key(manifests: dict[str, Any]) -> None:
    wf = copy.deepcopy(manifests["model-train.yaml"])
    wf["spec"]["entrypiont"] = "oops"
    assert any("entrypiont" in e for e in argo_errors(wf))
    job = copy.deepcopy(manifests["tfjob.yaml"])
    job["spec"]["tfReplicaSpecs"]["Chief"]["restartpolicy"] = "Never"
    assert tfjob_errors(job)
    dep = copy.deepcopy(manifests["tensorboard-deployment.yaml"])
    dep["spec"]["template"]["spec"]["containers"][0]["comand"] = ["x"]
    assert core_errors(dep)


@pytest.mark.parametrize("overrides", [{}, {"tf-worker": "0"}, {"tf-worker": "3", "model-serving": "false"}])
def test_the_workflows_inline_manifests_are_valid_after_argo_substitutes_parameters(overrides: dict[str, str]) -> None:
    p = ManifestParams().with_parameters(overrides)
    wf = as_json(model_train_workflow(p))
    inline = inline_manifests(wf)
    main = next(t for t in wf["spec"]["templates"] if t["name"] == "model-train")
    train_steps = {s["name"]: s["when"] for g in main["steps"] for s in g if s["name"].startswith("train-model")}
    # Argo runs the step whose `when` holds; evaluate them as govaluate would.
    chosen = [n for n, w in train_steps.items() if argo_when(w, p.parameters())]
    assert len(chosen) == 1
    job = inline[chosen[0]]
    assert job["kind"] == "TFJob" and tfjob_errors(job) == []
    specs = job["spec"]["tfReplicaSpecs"]
    if p.tf_worker == "0":
        assert set(specs) == {"Chief"}
    else:
        assert specs["Worker"]["replicas"] == int(p.tf_worker) and isinstance(specs["Worker"]["replicas"], int)
    for step in ("tensorboard", "tensorboard-service", "serve-model", "serve-model-service"):
        assert core_errors(inline[step]) == [], step
    # The TFJob the workflow creates is the one `mnistkit render` writes (same builder).
    from mnistkit.manifests import tfjob

    assert job == as_json(tfjob(p))


def test_model_deploy_inline_manifests_are_valid(manifests: dict[str, Any]) -> None:
    wt = manifests["model-deploy.yaml"]
    params = {p["name"]: p["value"] for p in manifests["model-train.yaml"]["spec"]["arguments"]["parameters"]}
    params["train-workflow"] = "model-train-abcde"
    inline = inline_manifests(wt, params)
    assert core_errors(inline["serve-model"]) == [] and core_errors(inline["serve-model-service"]) == []
    assert inline["wait-for-training"]["metadata"]["name"] == "model-train-abcde"
    outs = {o["name"] for t in wt["spec"]["templates"] if t["name"] == "wait-for-training"
            for o in t["outputs"]["parameters"]}
    assert {"job-name", "s3-train-base-url", "aws-secret"} <= outs


# ---- workflow behaviour ------------------------------------------------------------------------
def test_workflow_has_the_seeds_parameters_and_steps(manifests: dict[str, Any]) -> None:
    wf = manifests["model-train.yaml"]
    names = [p["name"] for p in wf["spec"]["arguments"]["parameters"]]
    for seed in ("job-name", "namespace", "tf-worker", "tf-model-image", "model-train-steps", "model-batch-size",
                 "model-learning-rate", "model-serving", "s3-data-url", "s3-train-base-url", "aws-endpoint-url",
                 "s3-endpoint", "aws-region", "s3-use-https", "s3-verify-ssl", "aws-secret"):
        assert seed in names
    main = next(t for t in wf["spec"]["templates"] if t["name"] == wf["spec"]["entrypoint"])
    order = [s["name"] for group in main["steps"] for s in group]
    assert order.index("get-workflow-info") < order.index("tensorboard") < order.index("train-model") \
        < order.index("serve-model")
    serve = next(s for g in main["steps"] for s in g if s["name"] == "serve-model")
    assert "model-serving" in serve["when"]
    assert wf["spec"]["onExit"] == "exit-handler"


def test_train_step_has_success_and_failure_conditions_and_a_deadline(manifests: dict[str, Any]) -> None:
    wf = manifests["model-train.yaml"]
    for name in ("train-model", "train-model-single"):
        train = next(t for t in wf["spec"]["templates"] if t["name"] == name)
        assert train["resource"]["successCondition"] == SUCCESS_CONDITION
        assert train["resource"]["failureCondition"] == FAILURE_CONDITION
        assert train["activeDeadlineSeconds"] > manifests["tfjob.yaml"]["spec"]["runPolicy"]["activeDeadlineSeconds"]


def _tfjob_status(kind: str) -> dict[str, Any]:
    """TFJob statuses as training-operator v1 writes them."""
    cond = lambda t: {"type": t, "status": "True", "reason": f"TFJob{t}"}  # noqa: E731
    if kind == "running":
        return {"status": {"conditions": [cond("Created"), cond("Running")],
                           "replicaStatuses": {"Chief": {"active": 1}, "Worker": {"active": 1}}}}
    if kind == "succeeded":
        return {"status": {"conditions": [cond("Created"), cond("Succeeded")],
                           "replicaStatuses": {"Chief": {"succeeded": 1}, "Worker": {"succeeded": 1}}}}
    if kind == "chief-failed":
        return {"status": {"conditions": [cond("Created"), cond("Failed")],
                           "replicaStatuses": {"Chief": {"failed": 1}, "Worker": {"active": 1}}}}
    if kind == "worker-failed":
        return {"status": {"conditions": [cond("Created"), cond("Failed")],
                           "replicaStatuses": {"Chief": {"active": 1}, "Worker": {"failed": 1}}}}
    return {}


@pytest.mark.parametrize(("status", "expected"), [
    ("created", "waiting"), ("running", "waiting"), ("succeeded", "succeeded"),
    ("chief-failed", "failed"), ("worker-failed", "failed"),
])
def test_failure_condition_matches_a_failed_tfjob(status: str, expected: str) -> None:
    assert resource_outcome(_tfjob_status(status), SUCCESS_CONDITION, FAILURE_CONDITION) == expected


def test_exit_handler_cleans_up_and_reports_failures(manifests: dict[str, Any]) -> None:
    wf = manifests["model-train.yaml"]
    templates = {t["name"]: t for t in wf["spec"]["templates"]}
    steps = [s for g in templates["exit-handler"]["steps"] for s in g]
    assert [s["name"] for s in steps] == ["cleanup", "cleanup-trainjob", "report"]
    assert templates["cleanup"]["resource"]["action"] == "patch"  # stop the TFJob, keep failed pods' logs
    assert yaml.safe_load(templates["cleanup"]["resource"]["manifest"])["spec"] == {
        "runPolicy": {"activeDeadlineSeconds": 1}}
    assert steps[0]["continueOn"] == {"failed": True, "error": True}
    report = templates["report"]["container"]
    assert "exit 1" in report["command"][-1]  # a failed workflow's exit handler fails too: nothing hidden
    assert any(e["value"] == "{{workflow.failures}}" for e in report["env"])


def test_submit_form_has_a_deterministic_name_and_job_label() -> None:
    p = ManifestParams().with_parameters({"job-name": "mnist-a-1"})
    wf = model_train_workflow(p, name="mnist-a-1")
    assert wf["metadata"]["name"] == "mnist-a-1" and "generateName" not in wf["metadata"]
    assert wf["metadata"]["labels"]["mnistkit.io/job"] == "mnist-a-1"
    assert argo_errors(as_json(wf)) == []


# ---- TFJob -------------------------------------------------------------------------------------
def test_tfjob_chief_workers_trainer_command_and_run_policy(manifests: dict[str, Any]) -> None:
    job = manifests["tfjob.yaml"]
    specs = job["spec"]["tfReplicaSpecs"]
    assert specs["Chief"]["replicas"] == 1 and specs["Worker"]["replicas"] == 1
    for spec in specs.values():
        tmpl = spec["template"]
        assert tmpl["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        c = tmpl["spec"]["containers"][0]
        assert c["name"] == "tensorflow" and c["command"] == ["python", "-m", "trainer.task"]
        flags = {a.split("=")[0] for a in c["args"]}
        assert {"--tf-data-dir", "--tf-model-dir", "--tf-export-dir", "--tf-train-steps", "--tf-batch-size",
                "--tf-learning-rate", "--tf-model-type"} <= flags
        assert "--tf-model-dir=s3://mnist/models/mnist-train" in c["args"]
    rp = job["spec"]["runPolicy"]
    assert set(rp) >= {"cleanPodPolicy", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}
    single = as_json(all_manifests(ManifestParams().with_parameters({"tf-worker": "0"}))["tfjob.yaml"])
    assert set(single["spec"]["tfReplicaSpecs"]) == {"Chief"}


def test_pods_run_as_non_root_with_resources(manifests: dict[str, Any]) -> None:
    seen = 0
    for name, m in manifests.items():
        for c in _containers(m):
            seen += 1
            assert c["resources"]["requests"] and c["resources"]["limits"], (name, c["name"])
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
        if m["kind"] in ("Deployment",):
            assert m["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        if m["kind"] == "TFJob":
            for r in m["spec"]["tfReplicaSpecs"].values():
                assert r["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        if m["kind"] in ("Workflow", "WorkflowTemplate"):
            assert m["spec"]["securityContext"]["runAsNonRoot"] is True
    assert seen >= 5


def test_serving_ports_and_init_container(manifests: dict[str, Any]) -> None:
    svc = manifests["serving-service.yaml"]
    assert {(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {(8500, 8500), (8501, 8501), (9000, 8500)}
    pod = manifests["serving-deployment.yaml"]["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert "aws s3 cp" in init["command"][-1] and "saved_model" in init["command"][-1]
    assert {"name": "EXPORT_URL", "value": "s3://mnist/models/mnist-train/export/mnist"} in init["env"]
    isvc = manifests["inferenceservice.yaml"]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://mnist/models/mnist-train/export/mnist"
    sa = manifests["kserve-serviceaccount.yaml"]
    assert sa["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "s3.us-west-1.amazonaws.com"
    assert sa["secrets"] == [{"name": "aws-creds"}]
    assert isvc["spec"]["predictor"]["serviceAccountName"] == sa["metadata"]["name"]


def test_tensorboard_reads_the_jobs_logs_prefix_with_a_full_url_endpoint(manifests: dict[str, Any]) -> None:
    c = manifests["tensorboard-deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert "--logdir=s3://mnist/models/mnist-train/logs" in c["args"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["S3_ENDPOINT"] == "https://s3.us-west-1.amazonaws.com"  # TF-free TensorBoard wants a URL


def test_poddefault_injects_aws_creds_by_secret_ref(manifests: dict[str, Any]) -> None:
    pd = manifests["poddefault.yaml"]
    assert pd["spec"]["selector"] == {"matchLabels": {"mnistkit-s3": "true"}}
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pd["spec"]["env"] if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": "aws-creds", "key": "awsSecretAccessKey"}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "aws-creds", "key": "awsAccessKeyID"}


class _Defaults(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "1"


# ---- RBAC --------------------------------------------------------------------------------------
_KIND_RESOURCE = {"Deployment": ("apps", "deployments"), "Service": ("", "services"),
                  "TFJob": ("kubeflow.org", "tfjobs"), "Workflow": ("argoproj.io", "workflows"),
                  "TrainJob": ("trainer.kubeflow.org", "trainjobs")}
_ACTION_VERBS = {"apply": {"get", "create", "patch"}, "create": {"create"}, "get": {"get"}, "delete": {"delete"},
                 "patch": {"patch"}}


def _step_needs() -> dict[str, set[tuple[str, str, str]]]:
    """Each resource step's permissions, derived from the rendered workflows themselves (not from rbac.py)."""
    needs: dict[str, set[tuple[str, str, str]]] = {}
    for wf in (all_manifests()["model-train.yaml"], all_manifests()["model-deploy.yaml"]):
        for t in wf["spec"]["templates"]:
            if "resource" not in t:
                continue
            kind = yaml.safe_load(substitute(t["resource"]["manifest"], _Defaults()))["kind"]
            group, resource = _KIND_RESOURCE[kind]
            verbs = set(_ACTION_VERBS[t["resource"]["action"]])
            if t["resource"].get("successCondition") or t["resource"].get("failureCondition"):
                verbs.add("get")  # the executor polls the resource
            needs[t["name"]] = {(group, resource, v) for v in verbs}
    return needs


def test_role_grants_exactly_what_the_steps_use(manifests: dict[str, Any]) -> None:
    granted = permissions_from_rules(manifests["rbac-role.yaml"]["rules"])
    # what the steps' manifests need, plus what every Argo executor writes (its task results, since Argo 3.4)
    needed = set().union(*_step_needs().values()) | {("argoproj.io", "workflowtaskresults", v)
                                                      for v in ("create", "patch")}
    excess, missing = granted - needed, needed - granted
    print(f"FIGURE rbac_excess_permissions={len(excess)} missing={len(missing)} granted={len(granted)}")
    assert excess == set() and missing == set()
    assert not any("*" in perm for perm in granted)


def test_step_permissions_cover_every_resource_step() -> None:
    """rbac.py's declared table matches what each step's manifest needs."""
    for name, needs in _step_needs().items():
        assert {(g, r, v) for g, r, v in STEP_PERMISSIONS[name]} == needs, name
    assert ("argoproj.io", "workflowtaskresults", "create") in required_permissions()


def test_role_from_params_is_namespaced() -> None:
    r = role(ManifestParams().with_parameters({"namespace": "kubeflow-user-jane"}))
    assert r["metadata"]["namespace"] == "kubeflow-user-jane"


# ---- secrets -----------------------------------------------------------------------------------
CANARY_ID = "AKIACANARY0000000042"
CANARY_SECRET = "canary-Secret/value+do-not-leak-7f3a9c"


def test_render_never_writes_secret_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CANARY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.example:9000")
    s3 = S3Config.from_env()
    p = ManifestParams.from_s3(s3)
    # Through the command line, and through the library with params built from the canary config.
    assert main(["render", "--out", str(tmp_path / "cli"), "-p", "tf-worker=2"]) == 0
    out = capsys.readouterr()
    texts = [f.read_text() for f in (tmp_path / "cli").iterdir()] + [to_yaml(m) for m in all_manifests(p).values()]
    assert len(texts) == 2 * len(all_manifests())
    for text in [*texts, out.out, out.err, repr(p)]:
        assert CANARY_SECRET not in text and CANARY_ID not in text
        assert "kind: Secret\n" not in text
    assert "AWS_SECRET_ACCESS_KEY" in texts[0] + "".join(texts)  # the variable is there, by secretKeyRef only
    for m in all_manifests(p).values():
        for c in _containers(m):
            for e in c.get("env", []):
                if e["name"] in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"):
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"]
    # The Secret itself exists only in memory, for the cluster client.
    secret = aws_secret(s3, namespace="ns1")
    assert secret["stringData"]["awsSecretAccessKey"] == CANARY_SECRET and core_errors(secret) == []


def test_a_secret_passed_as_a_parameter_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        ManifestParams().with_parameters({"aws-secret": CANARY_SECRET})
    assert CANARY_SECRET not in str(err.value)
    with pytest.raises(ConfigError, match="unknown parameter"):
        ManifestParams().with_parameters({"aws-secret-access-key": "x"})


# ---- parameters and job names --------------------------------------------------------------------
@pytest.mark.parametrize(("name", "value"), [
    ("job-name", "Bad_Name"), ("job-name", "1starts-with-digit"), ("job-name", "x" * 60), ("tf-worker", "-1"),
    ("tf-worker", "two"), ("model-train-steps", "0"), ("model-batch-size", "x"), ("model-learning-rate", "99"), ("model-type", "resnet"), ("s3-data-url", "http://x/y"),
    ("model-serving", "maybe"), ("aws-endpoint-url", "minio:9000"),
])
def test_bad_parameters_name_the_field(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        ManifestParams().with_parameters({name: value})
    assert err.value.field == name.replace("-", "_")


def test_default_job_name_carries_the_user_and_is_dns1123() -> None:
    now = dt.datetime(2026, 11, 28, 16, 5, 9, tzinfo=dt.timezone.utc)
    a = default_job_name("Jane.Doe@Example.com", now=now)
    b = default_job_name("bob", now=now)
    assert re.fullmatch(r"mnist-jane-doe-example-com-20261128-160509-[a-z0-9]{4}", a), a
    assert b.startswith("mnist-bob-20261128-160509-") and a != b
    long = default_job_name("u" * 200, now=now)
    assert len(long) <= 52 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", long)
    assert len({default_job_name("bob", now=now) for _ in range(20)}) > 1  # random suffix


def test_default_job_name_reads_the_hub_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mnistkit.cluster.identity import current_user

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert default_job_name().startswith("mnist-alice-")
    ns = tmp_path / "namespace"
    ns.write_text("kubeflow-user-carol\n")
    assert current_user(env={}, namespace_file=str(ns)) == "kubeflow-user-carol"


# ---- golden files --------------------------------------------------------------------------------
def test_golden_files_match_exactly(manifests: dict[str, Any]) -> None:
    rendered = {name: to_yaml(m) for name, m in all_manifests(ManifestParams()).items()}
    if os.environ.get("MNISTKIT_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        for old in GOLDEN.glob("*.yaml"):
            old.unlink()
        for name, text in rendered.items():
            (GOLDEN / name).write_text(text)
    on_disk = {f.name for f in GOLDEN.glob("*.yaml")}
    assert on_disk == set(rendered), "golden set differs; MNISTKIT_UPDATE_GOLDEN=1 regenerates"
    for name, text in rendered.items():
        assert (GOLDEN / name).read_text() == text, f"{name} differs from tests/manifests/golden (MNISTKIT_UPDATE_GOLDEN=1)"
        assert yaml.safe_load(text) == manifests[name]  # the YAML round-trips to the same object


# ---- Dockerfiles (no Docker engine here: static checks) -------------------------------------------
def _dockerfile(path: str) -> str:
    f = ROOT / path
    assert f.is_file(), f"{path} is missing"
    return f.read_text()


def _final_user(text: str) -> str:
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users, "no USER instruction"
    return users[-1]


def test_trainer_dockerfile() -> None:
    text = _dockerfile("trainer/Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.M)
    assert '".[ml]"' in text or "[ml]" in text
    assert 'ENTRYPOINT ["python", "-m", "trainer.task"]' in text
    assert _final_user(text) not in ("root", "0")


def test_tensorboard_dockerfile_has_no_tensorflow() -> None:
    text = _dockerfile("docker/tensorboard/Dockerfile")
    assert "tensorboard==2.21" in text and "boto3" in text
    assert not re.search(r"pip install[^\n]*\btensorflow\b", text)
    assert _final_user(text) not in ("root", "0")


def test_notebook_dockerfile() -> None:
    text = _dockerfile("docker/notebook/Dockerfile")
    assert re.search(r"^FROM (kubeflownotebookswg/jupyter-tensorflow|quay.io/jupyter/scipy-notebook|jupyter/scipy-notebook)",
                     text, flags=re.M)
    assert "[all]" in text and "notebooks" in text
    assert "jupyter_server_config" in text or "ServerProxy" in text
    assert _final_user(text) not in ("root", "0")


def test_a_number_where_a_parameter_string_belongs_is_a_clear_error() -> None:
    from mnistkit.errors import ConfigError

    with pytest.raises(ConfigError, match="tf_worker must be a string") as info:
        ManifestParams(tf_worker=2).validate()  # type: ignore[arg-type]
    assert info.value.field == "tf_worker"


# ---- Istio -------------------------------------------------------------------------------------------
def _pod_annotations(m: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{where: annotations}`` of every pod an object makes (Deployment/TFJob templates, Argo step pods)."""
    spec = m.get("spec", {})
    out: dict[str, dict[str, str]] = {}
    if m["kind"] == "Deployment":
        out["template"] = spec["template"].get("metadata", {}).get("annotations", {})
    if m["kind"] == "TFJob":
        out |= {r: s["template"].get("metadata", {}).get("annotations", {})
                for r, s in spec.get("tfReplicaSpecs", {}).items()}  # (the cleanup patch has none)
    if m["kind"] in ("Workflow", "WorkflowTemplate"):
        out["podMetadata"] = spec.get("podMetadata", {}).get("annotations", {})
    if m["kind"] == "InferenceService":
        out["metadata"] = m["metadata"].get("annotations", {})
    return out


def test_every_pod_that_reaches_s3_at_start_has_no_istio_sidecar(manifests: dict[str, Any]) -> None:
    """A sidecar that is not ready yet blocks S3 at start (and one that never exits keeps a finished pod Running)."""
    objects = dict(manifests)
    for wf in ("model-train.yaml", "model-deploy.yaml"):
        params = {p["name"]: p["value"] for p in manifests["model-train.yaml"]["spec"]["arguments"]["parameters"]}
        inline = inline_manifests(manifests[wf], {**params, "train-workflow": "x"})
        # (a `get` of a Workflow names an object to read, not one that makes pods)
        objects |= {f"{wf}:{step}": m for step, m in inline.items() if m["kind"] != "Workflow"}
    pods = {f"{name} {where}": ann for name, m in objects.items() for where, ann in _pod_annotations(m).items()}
    missing = sorted(k for k, ann in pods.items() if ann.get("sidecar.istio.io/inject") != "false")
    assert missing == []
    kinds = {name.split(" ")[0] for name in pods}
    assert {"serving-deployment.yaml", "tensorboard-deployment.yaml", "tfjob.yaml", "model-train.yaml",
            "model-deploy.yaml", "model-train.yaml:serve-model", "model-deploy.yaml:serve-model"} <= kinds


def test_network_policies_admit_the_trainer_port_only_from_the_same_job(manifests: dict[str, Any]) -> None:
    from dataclasses import replace

    train, tb, serve = (manifests[f"networkpolicy-{c}.yaml"] for c in ("training", "tensorboard", "serving"))
    pod_labels = {
        "training": manifests["tfjob.yaml"]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"],
        "tensorboard": manifests["tensorboard-deployment.yaml"]["spec"]["template"]["metadata"]["labels"],
        "serving": manifests["serving-deployment.yaml"]["spec"]["template"]["metadata"]["labels"],
    }
    for policy, component in ((train, "training"), (tb, "tensorboard"), (serve, "serving")):
        wanted = policy["spec"]["podSelector"]["matchLabels"]
        assert wanted.items() <= pod_labels[component].items(), component  # it selects the component's pods
        assert policy["spec"]["policyTypes"] == ["Ingress"] and len(policy["spec"]["ingress"]) == 1
        for peer in policy["spec"]["ingress"][0]["from"]:
            assert "namespaceSelector" not in peer and "ipBlock" not in peer  # never beyond the namespace
    assert [pt["port"] for pt in train["spec"]["ingress"][0]["ports"]] == [2222]
    peers = train["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert peers.items() <= pod_labels["training"].items()
    other = as_json(all_manifests(replace(ManifestParams(), job_name="someone-else")))
    other_pods = other["tfjob.yaml"]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
    assert not peers.items() <= other_pods.items()  # another job's pods are not admitted
    assert tb["spec"]["ingress"][0]["from"] == [{"podSelector": {}}]
    assert sorted(pt["port"] for pt in serve["spec"]["ingress"][0]["ports"]) == [8500, 8501]
