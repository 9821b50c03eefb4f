"""Against a real cluster (Argo + Kubeflow training operator): skipped unless ``MNISTKIT_CLUSTER_TESTS=1``.

Runs unchanged against any cluster your kubeconfig (or the notebook's service account) reaches:

    MNISTKIT_CLUSTER_TESTS=1 MNISTKIT_NAMESPACE=kubeflow-user-jane \\
    MNISTKIT_TRAINER_IMAGE=registry.example/mnistkit/trainer:0.1.0 \\
    MNISTKIT_S3_TRAIN_BASE_URL=s3://mnist/models MNISTKIT_S3_DATA_URL=s3://mnist/data \\
    .venv/bin/python -m pytest -m cluster tests/cluster/test_cluster_real.py

It needs the RBAC objects (``mnistkit render`` -> rbac-*.yaml) and the ``aws-creds`` Secret in that namespace.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("MNISTKIT_CLUSTER_TESTS") != "1",
                       reason="needs a real Kubernetes cluster with Argo and the training operator; "
                       "set MNISTKIT_CLUSTER_TESTS=1 (and a kubeconfig) to run"),
]


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    from mnistkit.cluster.client import ClusterClient

    return ClusterClient.connect(os.environ.get("MNISTKIT_NAMESPACE"))


def test_doctor_finds_what_mnistkit_needs(client) -> None:  # type: ignore[no-untyped-def]
    from mnistkit.cluster.doctor import doctor, format_report

    checks = doctor(client)
    assert not [c for c in checks if c.ok is False], format_report(checks)


def test_train_on_the_cluster_end_to_end(client) -> None:  # type: ignore[no-untyped-def]
    from mnistkit.cluster.identity import default_job_name
    from mnistkit.manifests import ManifestParams

    overrides = {"job-name": default_job_name(), "model-train-steps": "20", "model-type": "small",
                 "tf-worker": "1", "model-serving": "false"}
    for env, param in (("MNISTKIT_TRAINER_IMAGE", "tf-model-image"), ("MNISTKIT_S3_TRAIN_BASE_URL", "s3-train-base-url"),
                       ("MNISTKIT_S3_DATA_URL", "s3-data-url"), ("MNISTKIT_AWS_ENDPOINT_URL", "aws-endpoint-url"),
                       ("MNISTKIT_S3_ENDPOINT", "s3-endpoint"), ("MNISTKIT_TENSORBOARD_IMAGE", "tensorboard-image")):
        if os.environ.get(env):
            overrides[param] = os.environ[env]
    # The training API the cluster has (TFJob, else a Trainer v2 TrainJob), or MNISTKIT_TRAINER=tfjob|trainjob.
    params = client.with_trainer(client.params_for(ManifestParams(), **overrides), os.environ.get("MNISTKIT_TRAINER"))
    name = client.submit(params)
    try:
        info = client.wait(name, timeout=float(os.environ.get("MNISTKIT_CLUSTER_TIMEOUT", "1800")))
        logs = client.logs(name)
        assert info.phase == "Succeeded", f"{info.phase}: {info.message}\n{logs[-3000:]}"
        assert ("[chief-0]" if params.trainer == "tfjob" else "[node-0]") in logs
    finally:
        client.delete(name)
    deadline = time.monotonic() + 120
    while client.leftovers(name) and time.monotonic() < deadline:  # the garbage collector is asynchronous
        time.sleep(2)
    assert client.leftovers(name) == []
