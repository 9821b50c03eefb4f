"""Shared fixtures: the embedded S3 server, a fresh bucket per test, and the official test set when present."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Multi-worker tests run on CI and dev machines, not on a workshop network: opt in to TF's 0.0.0.0 ports
# (mnistkit/engines/exposure.py); tests/core/test_security.py checks the refusal with this unset.
os.environ.setdefault("MNISTKIT_ALLOW_EXPOSED_WORKERS", "1")

from mnistkit.config import S3Config  # noqa: E402
from mnistkit.embedded_s3 import EmbeddedS3  # noqa: E402


@pytest.fixture(scope="session")
def embedded_s3() -> Iterator[EmbeddedS3]:
    """One moto server for the whole session (tests isolate themselves by bucket)."""
    with EmbeddedS3(bucket="mnistkit-tests") as server:
        yield server


@pytest.fixture
def s3_config(embedded_s3: EmbeddedS3) -> S3Config:
    """An S3Config for a bucket of this test's own, already created."""
    from dataclasses import replace

    from mnistkit import s3

    cfg = replace(embedded_s3.config, bucket=f"t-{uuid.uuid4().hex[:16]}")
    s3.ensure_bucket(s3.make_client(cfg), cfg.bucket)
    return cfg


@pytest.fixture
def s3_env(s3_config: S3Config, monkeypatch: pytest.MonkeyPatch) -> S3Config:
    """The seed's S3 variables set in the environment for code that reads them (trainer, CLI)."""
    for key in ("S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "BUCKET_NAME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_config.to_env().items():
        monkeypatch.setenv(key, value)
    return s3_config


@pytest.fixture(scope="session")
def t10k_dir() -> Path:
    """The official 10,000-image MNIST test set (dev/CI machines only)."""
    from mnistkit.data import find_official_test_set

    found = find_official_test_set()
    if found is None:
        pytest.skip("official MNIST test set not found (../shared/data/mnist-t10k or MNISTKIT_T10K_DIR): dev/CI only")
    return found
