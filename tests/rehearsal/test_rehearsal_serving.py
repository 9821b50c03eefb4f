"""mnistkit's own server in the rehearsal (``-p serving-server=mnistkit``): the rendered manifests, run as pods.

The serving Deployment runs ``mnistkit serve`` on the ``s3://`` export (the image table's ``mnistkit/serving``
row), credentials from the Secret only. The point of the option: a version published to S3 while the server
runs is served without a restart (same pod, same process). The KServe InferenceService's custom predictor runs
the same way behind the Service KServe's raw mode makes (port 80 -> REST 8080, gRPC 8081).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnistkit import s3 as s3mod
from mnistkit.config import S3Config
from mnistkit.manifests import ManifestParams, all_manifests, aws_secret
from mnistkit.rehearsal.cluster import Rehearsal
from mnistkit.serving.client import ModelClient

from helpers.serving import exported_model, sample  # the session's small exported model (fixtures)

NS = "kubeflow-user-jane"
READY_TIMEOUT = 240  # a pod's Python imports TensorFlow and downloads the version first (seconds on a quiet machine)


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    with Rehearsal(tmp_path / "rehearsal", poll=0.2) as r:
        yield r


def _params(s3_config: S3Config, job: str) -> ManifestParams:
    return ManifestParams.from_s3(s3_config).with_parameters(
        {"job-name": job, "namespace": NS, "serving-server": "mnistkit"}
    )


def _publish(s3_config: S3Config, model: Path, p: ManifestParams, version: int) -> None:
    s3mod.publish_model_version(s3mod.make_client(s3_config), model, p.export_dir, version)


def _running_pod(r: Rehearsal, prefix: str) -> dict[str, Any]:
    pods = [o for o in r.store.list("Pod", NS) if o["metadata"]["name"].startswith(prefix)]
    assert len(pods) == 1, [o["metadata"]["name"] for o in pods]
    return pods[0]


def _get(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def test_the_mnistkit_deployment_serves_a_version_published_while_it_runs_without_a_restart(
    rehearsal: Rehearsal, s3_config: S3Config, exported_model: Path, sample: Any
) -> None:
    p = _params(s3_config, "mnist-own")
    _publish(s3_config, exported_model, p, 1)
    rehearsal.store.create(aws_secret(s3_config, name=p.aws_secret, namespace=NS))
    rendered = all_manifests(p)
    rehearsal.store.create(rendered["serving-deployment.yaml"])
    rehearsal.store.create(rendered["serving-service.yaml"])
    rehearsal.wait(
        "Deployment", NS, p.serving_name, lambda d: (d.get("status") or {}).get("readyReplicas", 0) >= 1, READY_TIMEOUT
    )
    pod = _running_pod(rehearsal, p.serving_name)
    assert "initContainerStatuses" not in pod["status"]  # nothing copied the version: the server read s3://
    grpc = rehearsal.addresses.service(rehearsal.store, NS, p.serving_name, 8500)
    rest = rehearsal.addresses.service(rehearsal.store, NS, p.serving_name, 8501)
    assert grpc and rest and rehearsal.addresses.service(rehearsal.store, NS, p.serving_name, 9000) == grpc
    assert _get(f"http://127.0.0.1:{rest}/v2/health/ready") == (200, {"ready": True})  # the readiness probe's path
    digit = sample.x_test[0]
    with ModelClient(port=grpc, protocol="grpc", timeout=30) as client:
        first = client.predict_one(digit)
    assert first.model_version == 1 and first.digit == int(sample.y_test[0])
    pid = rehearsal.kubelet.runs[pod["metadata"]["uid"]].procs["mnistkit-serve"].pid

    t0 = time.monotonic()
    _publish(s3_config, exported_model, p, 2)  # what the trainer does when a new training exports
    answered: list[int] = []
    with ModelClient(port=grpc, protocol="grpc", timeout=30) as client:
        deadline = t0 + 120  # the server lists the export every 10 s, then downloads and loads the version
        while time.monotonic() < deadline:
            answered.append(client.predict_one(digit).model_version)
            if answered[-1] == 2:
                break
            time.sleep(0.2)  # between polls of the condition (the version answered), not a wait for it
    assert answered[-1] == 2, f"still version {answered[-1]} after 120 s"
    assert set(answered) <= {1, 2}  # every request answered, by the old version or the new one
    print(f"FIGURE rehearsal_hot_load publish_to_served_s={time.monotonic() - t0:.1f} polls={len(answered)}")
    # the same pod and process: no restart, no rollout
    now = _running_pod(rehearsal, p.serving_name)
    assert now["metadata"]["uid"] == pod["metadata"]["uid"]
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0
    assert rehearsal.kubelet.runs[pod["metadata"]["uid"]].procs["mnistkit-serve"].pid == pid
    log = rehearsal.logs(NS, now["metadata"]["name"])
    assert s3_config.secret_access_key not in log


def test_the_kserve_custom_predictor_answers_v2_behind_its_predictor_service(
    rehearsal: Rehearsal, s3_config: S3Config, exported_model: Path, sample: Any
) -> None:
    p = _params(s3_config, "mnist-kserve")
    _publish(s3_config, exported_model, p, 1)
    rehearsal.store.create(aws_secret(s3_config, name=p.aws_secret, namespace=NS))
    isvc = all_manifests(p)["inferenceservice.yaml"]
    rehearsal.store.create(isvc)

    def ready(o: dict[str, Any]) -> bool:
        conds = (o.get("status") or {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    done = rehearsal.wait("InferenceService", NS, p.job_name, ready, READY_TIMEOUT)
    assert done["status"]["url"] == f"http://{p.job_name}-predictor.{NS}.svc.cluster.local"
    svc = f"{p.job_name}-predictor"
    rest = rehearsal.addresses.service(rehearsal.store, NS, svc, 80)  # KServe's port 80 -> the container's 8080
    grpc = rehearsal.addresses.service(rehearsal.store, NS, svc, "grpc")
    assert rest and grpc
    base = f"http://127.0.0.1:{rest}/v2/models/mnist"
    assert _get(f"{base}/ready") == (200, {"name": "mnist", "ready": True})
    x = (sample.x_test[:3] / np.float32(255.0)).astype(np.float32)
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 28, 28], "data": x.ravel().tolist()}]}
    status, out = _get(f"{base}/infer", body)
    classes = next(o["data"] for o in out["outputs"] if o["name"] == "classes")
    assert status == 200 and out["model_version"] == "1"
    assert sum(int(c) == int(y) for c, y in zip(classes, sample.y_test[:3], strict=True)) >= 2
    with ModelClient(port=grpc, protocol="grpc", timeout=30) as client:  # gRPC on 8081, same server
        assert client.predict_one(sample.x_test[0]).model_version == 1
    # deleting the InferenceService removes its pods and Service, as KServe's owner references do
    rehearsal.store.delete("InferenceService", NS, p.job_name)
    assert [o["kind"] for o in rehearsal.store.list(namespace=NS)] == ["Secret"]


@pytest.mark.slow
def test_rehearse_deploy_with_the_mnistkit_server_answers_predict(s3_env: S3Config, tmp_path: Path) -> None:
    """``mnistkit rehearse --deploy -p serving-server=mnistkit``: model-train, then model-deploy's
    ``serve-model-mnistkit`` step; ``mnistkit predict`` answers through the rehearsed server."""
    import re

    from helpers.rehearse import predict, rehearse_deploy
    from mnistkit.cli import main

    assert main(["data", "upload"]) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    params = ["tf-worker=0", "model-train-steps=20", "model-type=small", "serving-server=mnistkit"]
    args = [*(a for p in params for a in ("-p", p)), "--job-name", "mnist-own-cli", "--deploy"]
    with rehearse_deploy([*args, "--workdir", str(tmp_path / "w"), "--timeout", "500"], env, tmp_path) as run:
        assert "what mnistkit serve loads, and each later version as it is published" in run.output
        assert re.search(r"serve-model-mnistkit +Succeeded", run.output), run.output[-3000:]  # model-deploy's variant
        assert not re.search(r"serve-model +Succeeded", run.output)  # and not TF Serving's
        serving = next((tmp_path / "w" / "pods" / "kubeflow").glob("mnist-own-cli-serving-*"))
        assert not (serving / "fetch-model.log").exists()  # no init container copied the version
        log = (serving / "mnistkit-serve.log").read_text()
        assert "loaded version 1" in log and "s3://" in log
        answer = predict(run.port, env, tmp_path, "--test-image", "3")
        assert answer.returncode == 0, answer.stderr
        assert re.search(r"Your model says the above number is\.\.\. \d!", answer.stdout)
    assert run.returncode == 0, run.rest[0][-2000:]
    assert s3_env.secret_access_key not in run.output + run.rest[0]
