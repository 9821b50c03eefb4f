"""Config validation: every bad value is an error naming the field; secrets never show."""

from __future__ import annotations

import pytest

from mnistkit.config import S3Config, TrainConfig, split_s3_url, validate_bucket_name, validate_job_name
from mnistkit.errors import ConfigError, MnistkitError

CANARY = "CANARY-SECRET-d41d8cd98f00"


def test_from_env_reads_the_seed_variables() -> None:
    cfg = S3Config.from_env(
        {
            "S3_ENDPOINT": "minio-service.kubeflow:9000",
            "S3_USE_HTTPS": "0",
            "S3_VERIFY_SSL": "0",
            "AWS_ACCESS_KEY_ID": "minio",
            "AWS_SECRET_ACCESS_KEY": CANARY,
            "AWS_REGION": "eu-west-1",
            "BUCKET_NAME": "my-bucket",
        }
    )
    assert cfg.endpoint_url == "http://minio-service.kubeflow:9000"
    assert cfg.endpoint == "minio-service.kubeflow:9000"
    assert (cfg.use_https, cfg.verify_ssl, cfg.region, cfg.bucket) == (False, False, "eu-west-1", "my-bucket")
    assert cfg.to_env()["AWS_SECRET_ACCESS_KEY"] == CANARY
    assert "AWS_SECRET_ACCESS_KEY" not in cfg.to_env(include_secrets=False)


def test_url_alone_sets_https_from_its_scheme() -> None:
    cfg = S3Config.from_env({"AWS_ENDPOINT_URL": "https://s3.example.com"})
    assert cfg.use_https and cfg.endpoint == "s3.example.com"


def test_repr_and_str_hide_the_secret() -> None:
    cfg = S3Config(access_key_id="AKIA", secret_access_key=CANARY, endpoint_url="http://x:9000", use_https=False)
    assert CANARY not in repr(cfg) and CANARY not in str(cfg) and CANARY not in f"{cfg}"
    assert "***" in repr(cfg)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"endpoint": "a:1", "endpoint_url": "http://b:1", "use_https": False}, "endpoint"),
        ({"endpoint_url": "http://b:1", "use_https": True}, "use_https"),
        ({"endpoint_url": "ftp://b:1"}, "endpoint_url"),
        ({"endpoint": "http://a:1"}, "endpoint"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"bucket": "ab"}, "bucket"),
        ({"bucket": "192.168.1.1"}, "bucket"),
        ({"use_https": "maybe"}, "use_https"),
        ({"region": "EU West"}, "region"),
        ({"access_key_id": "AKIA"}, "secret_access_key"),
    ],
)
def test_bad_s3_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        S3Config(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field.split("_")[0] in str(info.value)


def test_secret_value_never_lands_in_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        S3Config(secret_access_key=CANARY)
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)
    assert info.value.field == "access_key_id"
    err = MnistkitError("x", field="secret_access_key", value=CANARY)
    assert err.value is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"train_steps": 0}, "train_steps"),
        ({"train_steps": "many"}, "train_steps"),
        ({"train_steps": 1.5}, "train_steps"),
        ({"batch_size": 10_000}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"workers": 0}, "workers"),
        ({"model_type": "resnet"}, "model_type"),
        ({"data_dir": "s3://Bad/x"}, "data_dir"),
    ],
)
def test_bad_train_config_names_the_field_and_value(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_train_config_coerces_and_renders_the_seed_flags() -> None:
    cfg = TrainConfig(train_steps="300", batch_size=64.0, learning_rate="0.001", model_type="CNN",  # type: ignore[arg-type]
                      lr_schedule="Cosine", label_smoothing="0.1", data_dir="s3://mnist/data/mnist")  # type: ignore[arg-type]
    assert (cfg.train_steps, cfg.batch_size, cfg.learning_rate, cfg.model_type) == (300, 64, 0.001, "cnn")
    assert (cfg.lr_schedule, cfg.label_smoothing) == ("cosine", 0.1)
    assert cfg.to_flags() == [
        "--tf-data-dir=s3://mnist/data/mnist", "--tf-train-steps=300", "--tf-batch-size=64",
        "--tf-learning-rate=0.001", "--tf-model-type=cnn", "--tf-lr-schedule=cosine", "--tf-label-smoothing=0.1",
        "--tf-export-version=0", "--tf-augment=false",
        "--tf-peer-timeout=120.0", "--tf-sync-seconds=10.0", "--tf-seed=0",
    ]


def test_names() -> None:
    assert validate_job_name("mnist-train-1") == "mnist-train-1"
    for bad in ("Mnist", "-a", "a-", "a_b", "x" * 60, ""):
        with pytest.raises(ConfigError, match="job_name"):
            validate_job_name(bad)
    assert validate_bucket_name("my.bucket-1") == "my.bucket-1"
    assert split_s3_url("s3://mnist/data/mnist/") == ("mnist", "data/mnist")
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        split_s3_url("/local/path")


def test_import_mnistkit_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, mnistkit, mnistkit.config, mnistkit.cli; print(sorted(m for m in ('tensorflow','kubernetes','ipywidgets','anywidget','boto3') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
