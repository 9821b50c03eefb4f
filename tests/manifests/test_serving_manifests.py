"""Serving with mnistkit's own server (``-p serving-server=mnistkit``) and KServe: schemas, golden files, workflows.

The InferenceServices of both servers are validated against KServe's own CRD schema (v0.20.0, strict mode). The
mnistkit variants' golden files live in tests/manifests/golden/mnistkit-server/ (``MNISTKIT_UPDATE_GOLDEN=1``
regenerates them, as for the default set).
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mnistkit.errors import ConfigError
from mnistkit.manifests import ManifestParams, all_manifests, model_deploy_template, model_train_workflow, to_yaml
from mnistkit.rehearsal.images import IMAGES, repository_of

from helpers.kserve import predictor_pod_labels
from helpers.paths import ROOT
from helpers.schemas import argo_when, as_json, core_errors, inline_manifests, kserve_errors

GOLDEN = Path(__file__).parent / "golden" / "mnistkit-server"
MNISTKIT = {"serving-server": "mnistkit"}
EXPORT = "s3://mnist/models/mnist-train/export/mnist"


@pytest.fixture(scope="module")
def default() -> dict[str, dict[str, Any]]:
    return as_json(all_manifests(ManifestParams()))


@pytest.fixture(scope="module")
def own() -> dict[str, dict[str, Any]]:
    return as_json(all_manifests(ManifestParams().with_parameters(MNISTKIT)))


def _pod(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


# ---- KServe's CRD ------------------------------------------------------------------------------------
def test_both_inference_services_are_valid_against_kserves_crd_in_strict_mode(
    default: dict[str, Any], own: dict[str, Any]
) -> None:
    tf_isvc, own_isvc = default["inferenceservice.yaml"], own["inferenceservice.yaml"]
    assert kserve_errors(tf_isvc) == [] and kserve_errors(own_isvc) == []
    # strict: a misspelled key anywhere (the predictor, the container, a probe) is an error, not dropped
    for path in (["spec", "predictor", "modle"], ["spec", "predictor", "containers", 0, "comand"],
                 ["spec", "predictor", "containers", 0, "readinessProbe", "httpGet", "paht"]):
        bad = copy.deepcopy(own_isvc)
        obj = bad
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = "x"
        assert any(str(path[-1]) in e for e in kserve_errors(bad)), path
    bad = copy.deepcopy(tf_isvc)
    bad["spec"]["predictor"]["model"]["storageURI"] = bad["spec"]["predictor"]["model"].pop("storageUri")
    assert any("storageURI" in e for e in kserve_errors(bad))


def test_the_kserve_predictor_is_mnistkit_serve_speaking_v2_on_the_ports_kserve_expects(own: dict[str, Any]) -> None:
    isvc = own["inferenceservice.yaml"]
    predictor = isvc["spec"]["predictor"]
    assert "model" not in predictor and "serviceAccountName" not in predictor  # no storage initializer
    (c,) = predictor["containers"]
    assert c["name"] == "kserve-container" and c["command"] == ["mnistkit", "serve"]
    assert c["image"] == ManifestParams().mnistkit_serving_image
    env = _env(c)
    assert env["PROTOCOL"] == "v2"  # how KServe's custom predictor declares the protocol (no protocolVersion field)
    assert "STORAGE_URI" not in env  # it would start KServe's storage initializer: the server reads s3:// itself
    assert f"--model_base_path={EXPORT}" in c["args"] and "--host=0.0.0.0" in c["args"]
    # REST first on 8080 (KServe's default, the predictor Service's port 80), gRPC on 8081 named for h2c
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("http1", 8080), ("grpc", 8081)]
    assert "--rest_api_port=8080" in c["args"] and "--port=8081" in c["args"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    # two ports need KServe's raw Deployment mode; no Istio sidecar, as every pod that reads S3 at start
    assert isvc["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false", "serving.kserve.io/deploymentMode": "RawDeployment"}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert set(env[name]) == {"secretKeyRef"}


def test_kserve_predictor_pods_are_not_the_serving_deployments_and_have_their_own_policy(
    default: dict[str, Any], own: dict[str, Any]
) -> None:
    """KServe copies an InferenceService's labels onto its predictor pods: with the Deployment's component label the
    serving Service (``<job>-serving``) and port-forward would pick KServe's pods, on ports they don't listen on.
    Their own component, and their own policy admitting KServe's ports (an enforcing CNI drops the rest)."""
    for rendered in (default, own):
        isvc_pods = predictor_pod_labels(rendered["inferenceservice.yaml"]).items()
        deployment_pods = rendered["serving-deployment.yaml"]["spec"]["template"]["metadata"]["labels"].items()
        service = rendered["serving-service.yaml"]["spec"]["selector"].items()
        assert service <= deployment_pods and not service <= isvc_pods
        assert not rendered["serving-deployment.yaml"]["spec"]["selector"]["matchLabels"].items() <= isvc_pods
        serving, kserve = (rendered[f"networkpolicy-{c}.yaml"]["spec"] for c in ("serving", "serving-kserve"))
        assert serving["podSelector"]["matchLabels"].items() <= deployment_pods
        assert not serving["podSelector"]["matchLabels"].items() <= isvc_pods
        assert kserve["podSelector"]["matchLabels"].items() <= isvc_pods
        assert not kserve["podSelector"]["matchLabels"].items() <= deployment_pods
        for policy, pods in ((serving, [_pod(rendered["serving-deployment.yaml"])]),
                             (kserve, [rendered["inferenceservice.yaml"]["spec"]["predictor"]])):
            admitted = {pt["port"] for pt in policy["ingress"][0]["ports"]}
            ports = {pt["containerPort"] for pod in pods for c in pod.get("containers", []) for pt in c.get("ports", [])}
            ports |= {8080} if "model" in pods[0] else set()  # KServe's TF Serving runtime: REST 8080
            assert ports and ports <= admitted, ports - admitted
            assert policy["ingress"][0]["from"] == [{"podSelector": {}}]  # the namespace only
        assert sorted(pt["port"] for pt in serving["ingress"][0]["ports"]) == [8500, 8501]
        assert sorted(pt["port"] for pt in kserve["ingress"][0]["ports"]) == [8080, 8081]


def test_both_inference_services_are_cluster_local(default: dict[str, Any], own: dict[str, Any]) -> None:
    """The server has no authentication: KServe must not expose it through its ingress. In Standard (raw) mode it
    makes an Ingress/HTTPRoute unless networking.kserve.io/visibility is cluster-local; Knative mode reads
    networking.knative.dev/visibility (the TF Serving InferenceService follows the cluster's default mode)."""
    for rendered in (default, own):
        labels = rendered["inferenceservice.yaml"]["metadata"]["labels"]
        assert labels["networking.kserve.io/visibility"] == "cluster-local"
        assert labels["networking.knative.dev/visibility"] == "cluster-local"


def test_the_serving_image_exposes_every_port_the_manifests_run_it_on(own: dict[str, Any]) -> None:
    """EXPOSE documents the image's ports: the Deployment's 8500/8501 and the KServe predictor's 8080/8081."""
    dockerfile = (ROOT / "docker" / "serving" / "Dockerfile").read_text()
    exposed = {int(port) for line in dockerfile.splitlines() if line.startswith("EXPOSE ") for port in line.split()[1:]}
    pods = [_pod(own["serving-deployment.yaml"]), own["inferenceservice.yaml"]["spec"]["predictor"]]
    used = {pt["containerPort"] for pod in pods for c in pod["containers"] for pt in c.get("ports", [])
            if c["image"] == ManifestParams().mnistkit_serving_image}
    assert used == {8500, 8501, 8080, 8081} and used <= exposed, used - exposed


# ---- the serving Deployment --------------------------------------------------------------------------
def test_the_mnistkit_deployment_serves_the_s3_export_with_the_same_ports_and_service(
    default: dict[str, Any], own: dict[str, Any]
) -> None:
    dep, tf_dep = own["serving-deployment.yaml"], default["serving-deployment.yaml"]
    assert core_errors(dep) == []
    pod = _pod(dep)
    assert "initContainers" not in pod  # no copy of one version: the server reads s3:// and polls for more
    (c,) = pod["containers"]
    assert c["command"] == ["mnistkit", "serve"] and c["image"] == "docker.io/mnistkit/serving:0.1.0"
    assert f"--model_base_path={EXPORT}" in c["args"]
    assert "--host=0.0.0.0" in c["args"]  # loopback by default; the pod's IP is where probes and the Service come
    assert c["ports"] == _pod(tf_dep)["containers"][0]["ports"]  # gRPC 8500, REST 8501: the same Service serves it
    assert dep["metadata"] == tf_dep["metadata"] and dep["spec"]["selector"] == tf_dep["spec"]["selector"]
    assert dep["spec"]["template"]["metadata"] == tf_dep["spec"]["template"]["metadata"]  # labels, Istio annotation
    assert own["serving-service.yaml"] == default["serving-service.yaml"]
    assert own["networkpolicy-serving.yaml"] == default["networkpolicy-serving.yaml"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8501}
    assert c["livenessProbe"]["httpGet"] == c["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8501}
    env = _env(c)
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "aws-creds", "key": "awsSecretAccessKey"}}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "aws-creds", "key": "awsAccessKeyID"}}
    assert env["S3_ENDPOINT"] == "s3.us-west-1.amazonaws.com" and env["S3_USE_HTTPS"] == "1"
    cache = next(a.split("=", 1)[1] for a in c["args"] if a.startswith("--model_cache_dir="))
    assert any(cache.startswith(m["mountPath"] + "/") for m in c["volumeMounts"])  # a writable emptyDir
    assert "kserve-serviceaccount.yaml" in default and "kserve-serviceaccount.yaml" not in own


def test_golden_files_of_the_mnistkit_server(own: dict[str, Any], default: dict[str, Any]) -> None:
    rendered = {n: to_yaml(m) for n, m in all_manifests(ManifestParams().with_parameters(MNISTKIT)).items()}
    for wf in ("model-train.yaml", "model-deploy.yaml"):  # the same workflows, with another default argument
        args = own[wf]["spec"]["arguments"]["parameters"]
        assert {"name": "serving-server", "value": "mnistkit"} in args
        swapped = [{**a, "value": "tfserving"} if a["name"] == "serving-server" else a for a in args]
        assert {**own[wf], "spec": {**own[wf]["spec"], "arguments": {"parameters": swapped}}} == default[wf]
    differing = {n: t for n, t in rendered.items() if n not in default or own[n] != default[n]}
    differing = {n: t for n, t in differing.items() if n not in ("model-train.yaml", "model-deploy.yaml")}
    assert set(differing) == {"serving-deployment.yaml", "inferenceservice.yaml"}  # the rest is the default set's
    if os.environ.get("MNISTKIT_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        for old in GOLDEN.glob("*.yaml"):
            old.unlink()
        for name, text in differing.items():
            (GOLDEN / name).write_text(text)
    assert {f.name for f in GOLDEN.glob("*.yaml")} == set(differing), "MNISTKIT_UPDATE_GOLDEN=1 regenerates"
    for name, text in differing.items():
        assert (GOLDEN / name).read_text() == text, f"{name} differs from {GOLDEN} (MNISTKIT_UPDATE_GOLDEN=1)"


def test_a_bad_serving_server_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match="serving_server must be one of tfserving, mnistkit") as err:
        ManifestParams().with_parameters({"serving-server": "triton"})
    assert err.value.field == "serving_server"
    with pytest.raises(ConfigError) as err:
        ManifestParams().with_parameters({"mnistkit-serving-image": "has space"})
    assert err.value.field == "mnistkit_serving_image"


# ---- the workflows -----------------------------------------------------------------------------------
def _chosen(wf: dict[str, Any], params: dict[str, str]) -> list[str]:
    """The serving steps Argo runs for ``params`` (their ``when`` evaluated as govaluate would)."""
    main = next(t for t in wf["spec"]["templates"] if t["name"] == wf["spec"]["entrypoint"])
    steps = [s for g in main["steps"] for s in g if s["name"].startswith("serve-model")]
    return [s["name"] for s in steps if "when" not in s or argo_when(s["when"], params)]


@pytest.mark.parametrize("server", ["tfserving", "mnistkit"])
def test_model_train_and_model_deploy_run_the_chosen_servers_deployment(server: str) -> None:
    p = ManifestParams().with_parameters({"serving-server": server})
    rendered = as_json(all_manifests(p))
    step = "serve-model-mnistkit" if server == "mnistkit" else "serve-model"
    train = as_json(model_train_workflow(p))
    params = {a["name"]: a["value"] for a in train["spec"]["arguments"]["parameters"]}
    assert params["serving-server"] == server
    assert _chosen(train, params) == [step, "serve-model-service"]
    assert _chosen(train, {**params, "model-serving": "false"}) == []
    objs = inline_manifests(train)
    # what the workflow applies is what `mnistkit render` writes (same builder), and it is valid
    assert objs[step] == rendered["serving-deployment.yaml"] and core_errors(objs[step]) == []
    assert objs["serve-model-service"] == rendered["serving-service.yaml"]

    deploy = as_json(model_deploy_template(p))
    args = {a["name"]: a.get("value", "") for a in deploy["spec"]["arguments"]["parameters"]}
    assert args["serving-server"] == server and args["mnistkit-serving-image"] == p.mnistkit_serving_image
    scope = {**params, **args, "train-workflow": "model-train-abcde"}
    assert _chosen(deploy, scope) == [step, "serve-model-service"]
    assert inline_manifests(deploy, scope)[step] == rendered["serving-deployment.yaml"]


# ---- the image ----------------------------------------------------------------------------------------
def test_the_serving_image_installs_the_serving_extra_and_the_rehearsal_knows_it() -> None:
    text = (ROOT / "docker" / "serving" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.M)
    assert 'pip install ".[serving]"' in text and 'ENTRYPOINT ["mnistkit"]' in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
    assert users and users[-1] == "1000"  # the pod's runAsUser
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["serving"]) <= set(extras["ml"])  # the same pins as the local server's
    assert "serving" in extras["all"][0].split("[")[1].rstrip("]").split(",")  # and so in environment.yml
    image = ManifestParams().mnistkit_serving_image
    local = next(i for i in IMAGES if i.repository == repository_of(image))
    assert "mnistkit" in local.programs  # the manifests' command, run by `mnistkit rehearse`


# ---- CPU: TensorFlow's intra-op pool sized by the container's limit, not the node ----------------------
def test_every_serving_container_splits_an_op_over_no_more_threads_than_its_cpu_limit(
    default: dict[str, Any], own: dict[str, Any]
) -> None:
    """Under a CPU limit TensorFlow sees all the node's cores; each serving container (TF Serving's and
    ``mnistkit serve``, as a Deployment and as KServe's predictor) says how many threads an op may use, and
    that is its CPU limit."""
    containers = [
        _pod(default["serving-deployment.yaml"])["containers"][0],
        _pod(own["serving-deployment.yaml"])["containers"][0],
        own["inferenceservice.yaml"]["spec"]["predictor"]["containers"][0],
    ]
    for c in containers:
        flags = [a for a in c["args"] if a.startswith("--tensorflow_intra_op_parallelism=")]
        assert flags == [f"--tensorflow_intra_op_parallelism={int(c['resources']['limits']['cpu'])}"], c["name"]
