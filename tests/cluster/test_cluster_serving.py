"""The serving Deployment's init container, run as rendered against the embedded S3 server.

TF Serving >= 2.7 cannot read S3, so ``fetch-model`` (the ``amazon/aws-cli`` image) copies the export into
the pod before TF Serving starts. Here its exact command and environment run with the ``aws`` command of
the ``awscli`` package (what that image runs), the Secret's keys resolved as the kubelet would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mnistkit.config import S3Config
from mnistkit.manifests import ManifestParams, serving_deployment
from mnistkit.manifests.common import SECRET_KEY_ID, SECRET_KEY_SECRET

JOB = "mnist-serve-init"


def _aws() -> str:
    found = shutil.which("aws", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not found:
        pytest.skip("the awscli package (the aws-cli image's command) is not installed")
    return found


def _run_init(cfg: S3Config, models: Path) -> subprocess.CompletedProcess[str]:
    p = ManifestParams().with_parameters({
        "job-name": JOB, "s3-train-base-url": f"s3://{cfg.bucket}/models", "aws-endpoint-url": cfg.endpoint_url,
        "s3-endpoint": cfg.endpoint, "s3-use-https": "0",
    })
    init = serving_deployment(p)["spec"]["template"]["spec"]["initContainers"][0]
    secret = {SECRET_KEY_ID: cfg.access_key_id, SECRET_KEY_SECRET: cfg.secret_access_key}
    env: dict[str, str] = {"PATH": str(Path(_aws()).parent) + os.pathsep + os.environ.get("PATH", "")}
    for e in init["env"]:
        ref: dict[str, Any] = e.get("valueFrom", {}).get("secretKeyRef", {})
        env[e["name"]] = secret[ref["key"]] if ref else e["value"]
    # The emptyDir volumes, as temp dirs (the container mounts them at /models and /tmp).
    assert env["MODELS_DIR"].startswith("/models/")
    env["MODELS_DIR"] = str(models / env["MODELS_DIR"].removeprefix("/models/"))
    env["HOME"] = str(models.parent / "home")
    return subprocess.run(init["command"], env=env, capture_output=True, text=True, timeout=120, check=False)


def _put(cfg: S3Config, keys: list[str]) -> None:
    from mnistkit import s3

    client = s3.make_client(cfg)
    for key in keys:
        client.put_object(Bucket=cfg.bucket, Key=f"models/{JOB}/export/mnist/{key}", Body=key.encode())


def test_the_init_container_copies_only_the_newest_complete_version(s3_config: S3Config, tmp_path: Path) -> None:
    _put(s3_config, [
        "1/saved_model.pb", "1/variables/variables.index",
        "3/saved_model.pb", "3/variables/variables.index", "3/variables/variables.data-00000-of-00001",
        "12/variables/variables.index",  # newer, but saved_model.pb (written last) is not there yet
        ".staging/20/saved_model.pb", ".staging/20/variables/variables.index",  # the trainer's staging area
        "abc/saved_model.pb",  # not a version: TF Serving only loads numeric folders
        "4/saved_model.pbtxt",  # a file whose name merely starts like saved_model.pb
    ])
    models = tmp_path / "models"
    proc = _run_init(s3_config, models)
    assert proc.returncode == 0, proc.stderr
    copied = sorted(str(f.relative_to(models)) for f in models.rglob("*") if f.is_file())
    assert copied == ["mnist/3/saved_model.pb", "mnist/3/variables/variables.data-00000-of-00001",
                      "mnist/3/variables/variables.index"]
    assert "version 3" in proc.stdout


def test_the_init_container_refuses_to_start_without_a_complete_version(s3_config: S3Config, tmp_path: Path) -> None:
    _put(s3_config, ["7/variables/variables.index", ".staging/8/saved_model.pb"])
    proc = _run_init(s3_config, tmp_path / "models")
    assert proc.returncode == 1
    assert f"no complete version under s3://{s3_config.bucket}/models/{JOB}/export/mnist/" in proc.stderr
    assert not any(f.is_file() for f in (tmp_path / "models").rglob("*"))
