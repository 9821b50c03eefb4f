"""S3 settings reach every manifest from the seed's variables, and the data path is where ``data upload`` writes.

Found by the rehearsal (issue 12): ``render``/``submit``/``ArgoEngine``/notebook 03 used built-in defaults
(bucket ``mnist``, AWS us-west-1, ``s3://mnist/data``), so a TFJob could never read the data a user uploaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.k8s_double import WF, K8sDouble

from mnistkit.config import S3Config
from mnistkit.manifests import ManifestParams
from helpers.paths import ROOT

SEED = {
    "BUCKET_NAME": "rehearsal",
    "AWS_ENDPOINT_URL": "http://minio.local:9000",
    "S3_ENDPOINT": "minio.local:9000",
    "AWS_REGION": "eu-central-1",
    "S3_USE_HTTPS": "0",
    "S3_VERIFY_SSL": "0",
}
NS = "kubeflow-user-jane"


@pytest.fixture
def seed_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in ("S3_DATA_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in SEED.items():
        monkeypatch.setenv(key, value)
    return SEED


def _env_of(container: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_data_url_is_where_data_upload_writes() -> None:
    s3 = S3Config(bucket="rehearsal", endpoint_url="http://127.0.0.1:9000", use_https=False)
    params = ManifestParams.from_s3(s3)
    assert params.s3_data_url == "s3://rehearsal/data/mnist"
    assert params.s3_train_base_url == "s3://rehearsal/models"
    assert ManifestParams().s3_data_url == "s3://mnist/data/mnist"
    # the seed's own S3_DATA_URL (with its trailing slash) is taken as given
    env = {"BUCKET_NAME": "rehearsal", "S3_DATA_URL": "s3://rehearsal/elsewhere/mnist/"}
    assert ManifestParams.from_env(env).s3_data_url == "s3://rehearsal/elsewhere/mnist"
    # no seed variable: the defaults, untouched
    assert ManifestParams.from_env({}) == ManifestParams()


def test_render_takes_s3_settings_from_the_seed_variables(seed_env: dict[str, str], tmp_path: Path) -> None:
    from mnistkit.cli import main

    assert main(["render", "--out", str(tmp_path), "-p", "job-name=x", "-p", "tf-worker=1"]) == 0
    job = yaml.safe_load((tmp_path / "tfjob.yaml").read_text())
    for rtype in ("Chief", "Worker"):
        c = job["spec"]["tfReplicaSpecs"][rtype]["template"]["spec"]["containers"][0]
        assert "--tf-data-dir=s3://rehearsal/data/mnist" in c["args"]
        assert "--tf-export-dir=s3://rehearsal/models/x/export/mnist" in c["args"]
        env = _env_of(c)
        assert env["AWS_ENDPOINT_URL"] == "http://minio.local:9000" and env["S3_ENDPOINT"] == "minio.local:9000"
        assert (env["AWS_REGION"], env["S3_USE_HTTPS"], env["S3_VERIFY_SSL"]) == ("eu-central-1", "0", "0")
    serving = yaml.safe_load((tmp_path / "serving-deployment.yaml").read_text())
    init = serving["spec"]["template"]["spec"]["initContainers"][0]
    assert _env_of(init)["EXPORT_URL"] == "s3://rehearsal/models/x/export/mnist"
    assert _env_of(init)["AWS_ENDPOINT_URL"] == "http://minio.local:9000"
    wf = yaml.safe_load((tmp_path / "model-train.yaml").read_text())
    args = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert args["s3-data-url"] == "s3://rehearsal/data/mnist" and args["aws-region"] == "eu-central-1"
    # -p still wins over the environment
    assert main(["render", "--out", str(tmp_path), "-p", "s3-data-url=s3://other/d"]) == 0
    wf = yaml.safe_load((tmp_path / "model-train.yaml").read_text())
    assert {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}["s3-data-url"] == "s3://other/d"


def test_submit_takes_s3_settings_from_the_seed_variables(
    seed_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mnistkit.cli import main

    with K8sDouble() as k8s:
        config = k8s.kubeconfig(tmp_path / "config", NS)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        assert main(["submit", "--kubeconfig", str(config), "--job-name", "mnist-wired"]) == 0
        wf = k8s.get(WF, NS, "mnist-wired")
    assert wf is not None
    args = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert args["s3-data-url"] == "s3://rehearsal/data/mnist"
    assert args["s3-train-base-url"] == "s3://rehearsal/models"
    assert (args["aws-endpoint-url"], args["s3-endpoint"]) == ("http://minio.local:9000", "minio.local:9000")
    assert (args["aws-region"], args["s3-use-https"], args["s3-verify-ssl"]) == ("eu-central-1", "0", "0")


def test_argo_engine_reads_the_uploaded_data(seed_env: dict[str, str]) -> None:
    from mnistkit.engines.argo import ArgoEngine

    class _Client:
        namespace = NS

        def params_for(self, params: ManifestParams) -> ManifestParams:
            return params.with_parameters({"namespace": NS})

        def with_trainer(self, params: ManifestParams, trainer: str | None = None) -> ManifestParams:
            return params  # a cluster with the TFJob CRD: the seed's default

    engine = ArgoEngine(_Client())
    assert engine.base.s3_data_url == "s3://rehearsal/data/mnist"
    assert engine.base.aws_region == "eu-central-1" and engine.base.s3_verify_ssl == "0"


@pytest.mark.slow
def test_notebook_03_renders_what_the_seed_variables_say(seed_env: dict[str, str], tmp_path: Path) -> None:
    from mnistkit.notebook import run_notebook

    root = ROOT
    out = tmp_path / "03.ipynb"
    run_notebook(
        root / "notebooks" / "03-train-on-kubeflow.ipynb", out, {"submit": False}, cwd=tmp_path, cell_timeout=300
    )
    text = "".join(
        "".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])
    )
    assert "data: s3://rehearsal/data/mnist" in text
    assert "value: http://minio.local:9000" in text and "s3://mnist/" not in text
