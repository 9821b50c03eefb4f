"""Configuration as frozen dataclasses, validated on construction.

``S3Config`` reads the seed's variables (``S3_ENDPOINT``, ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``BUCKET_NAME``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``).
``TrainConfig`` holds the trainer's parameters with the ranges a panel and the CLI enforce.
Every error names the field and the bad value (never the value of a secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlparse

from mnistkit.errors import ConfigError

__all__ = [
    "S3Config",
    "TrainConfig",
    "MODEL_TYPES",
    "LR_SCHEDULES",
    "parse_bool",
    "validate_bucket_name",
    "validate_job_name",
    "split_s3_url",
    "mask_key_id",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_DNS1123_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_bool(name: str, value: str | bool | int | None, default: bool) -> bool:
    """Parse a boolean flag the way the seed's ``"0"``/``"1"`` variables are written."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true/false or 1/0, got {value!r}", field=name, value=value)


def validate_bucket_name(name: str, field_name: str = "bucket") -> str:
    """Check an S3 bucket name against AWS's rules (which MinIO and Ceph share)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{field_name} must not be empty", field=field_name, value=name)
    if (
        not _BUCKET_RE.match(name)
        or ".." in name
        or _IP_RE.match(name)
        or name.startswith("xn--")
        or name.endswith("-s3alias")
    ):
        raise ConfigError(
            f"{field_name} {name!r} is not a legal bucket name: 3-63 characters, lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit",
            field=field_name,
            value=name,
        )
    return name


def validate_job_name(name: str, field_name: str = "job_name", max_len: int = 52) -> str:
    """A Kubernetes object name (DNS-1123 label). 52 leaves room for the ``-worker-0`` suffixes pods get."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{field_name} must not be empty", field=field_name, value=name)
    if len(name) > max_len or not _DNS1123_RE.match(name):
        raise ConfigError(
            f"{field_name} {name!r} is not a valid name: at most {max_len} lowercase letters, digits "
            "and '-', starting and ending with a letter or digit",
            field=field_name,
            value=name,
        )
    return name


def mask_key_id(key_id: str) -> str:
    """An access key ID as ``aws configure list`` shows it: stars and the last four characters.

    Keys shorter than 12 characters show no characters at all (four of eight would be half the key).
    """
    if not key_id:
        return ""
    return "*" * 16 + (key_id[-4:] if len(key_id) >= 12 else "****")


def split_s3_url(url: str, field_name: str = "url") -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (prefix without slashes at the ends)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"{field_name} must look like s3://bucket/prefix, got {url!r}", field=field_name, value=url)
    validate_bucket_name(parsed.netloc, field_name)
    return parsed.netloc, parsed.path.strip("/")


# S3Config field -> the seed's environment variable: the one mapping (from_env, to_env's names, the S3 panel).
S3_ENV_VARS = {
    "bucket": "BUCKET_NAME",
    "endpoint": "S3_ENDPOINT",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "use_https": "S3_USE_HTTPS",
    "verify_ssl": "S3_VERIFY_SSL",
}


@dataclass(frozen=True)
class S3Config:
    """Where the S3-compatible store is and how to reach it.

    ``endpoint`` is ``host:port`` (the seed's ``S3_ENDPOINT``); ``endpoint_url`` the full URL
    (``AWS_ENDPOINT_URL``). Either may be given; when both are, they must agree. An empty endpoint means
    AWS itself. The secret never appears in ``repr``.
    """

    bucket: str = "mnist"
    endpoint: str = ""
    endpoint_url: str = ""
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    region: str = "us-east-1"
    use_https: bool = True
    verify_ssl: bool = True

    def __post_init__(self) -> None:
        validate_bucket_name(self.bucket, "bucket")
        use_https = parse_bool("use_https", self.use_https, True)
        verify_ssl = parse_bool("verify_ssl", self.verify_ssl, True)
        object.__setattr__(self, "use_https", use_https)
        object.__setattr__(self, "verify_ssl", verify_ssl)
        endpoint, url = self.endpoint.strip(), self.endpoint_url.strip()
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(
                    f"endpoint_url must be http(s)://host[:port], got {url!r}", field="endpoint_url", value=url
                )
            if (parsed.scheme == "https") != use_https:
                raise ConfigError(
                    f"use_https is {use_https} but endpoint_url {url!r} uses {parsed.scheme}; make them agree",
                    field="use_https",
                    value=use_https,
                )
            if endpoint and endpoint != parsed.netloc:
                raise ConfigError(
                    f"endpoint {endpoint!r} and endpoint_url {url!r} name different servers",
                    field="endpoint",
                    value=endpoint,
                )
            endpoint = parsed.netloc
        elif endpoint:
            if "://" in endpoint or "/" in endpoint:
                raise ConfigError(
                    f"endpoint must be host:port without a scheme, got {endpoint!r}", field="endpoint", value=endpoint
                )
            url = f"{'https' if use_https else 'http'}://{endpoint}"
        if not self.region or not re.match(r"^[a-z0-9-]+$", self.region):
            raise ConfigError(f"region {self.region!r} is not a region name", field="region", value=self.region)
        if bool(self.access_key_id) != bool(self.secret_access_key):
            missing = "secret_access_key" if self.access_key_id else "access_key_id"
            raise ConfigError(f"{missing} is missing: give both keys or neither", field=missing)
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "endpoint_url", url)

    def __repr__(self) -> str:
        secret = "'***'" if self.secret_access_key else "''"
        return (
            f"S3Config(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"access_key_id={mask_key_id(self.access_key_id)!r}, secret_access_key={secret}, region={self.region!r}, "
            f"use_https={self.use_https}, verify_ssl={self.verify_ssl})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> S3Config:
        """Build from the seed's environment variables; keyword arguments win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        url = env.get("AWS_ENDPOINT_URL", "")
        for name, key in S3_ENV_VARS.items():
            if env.get(key, "") != "":
                values[name] = env[key]
        if "use_https" not in values and url:
            values["use_https"] = url.startswith("https://")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self, *, include_secrets: bool = True) -> dict[str, str]:
        """The seed's variables for a child process (the trainer, TensorBoard). Never log the result."""
        env = {
            "BUCKET_NAME": self.bucket,
            "AWS_REGION": self.region,
            "S3_USE_HTTPS": "1" if self.use_https else "0",
            "S3_VERIFY_SSL": "1" if self.verify_ssl else "0",
        }
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
            env["S3_ENDPOINT"] = self.endpoint
        if include_secrets and self.access_key_id:
            env["AWS_ACCESS_KEY_ID"] = self.access_key_id
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key
        return env

    def url(self, *parts: str) -> str:
        """``s3://<bucket>/<parts...>``."""
        path = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"


MODEL_TYPES = ("cnn", "bn", "small", "linear")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's parameters (the seed's ``--tf-*`` flags and mnistkit's) with the ranges every front end enforces.

    Every field but ``workers`` is a trainer flag; ``mnistkit.trainspec`` owns their names, environment
    fallbacks and help, and ``to_flags`` gives the command line the local engine and the manifests run.
    """

    data_dir: str = ""
    model_dir: str = ""
    export_dir: str = ""
    train_steps: int = 200
    batch_size: int = 100
    learning_rate: float = 0.01
    model_type: str = "cnn"
    lr_schedule: str = "constant"
    label_smoothing: float = 0.0
    export_version: int = 0
    augment: bool = False
    peer_timeout: float = 120.0
    sync_seconds: float = 10.0
    seed: int = 0
    workers: int = 1

    # field -> (kind, lowest, highest): a class constant, not a field
    RANGES: ClassVar[dict[str, tuple[type, float, float]]] = {
        "train_steps": (int, 1, 1_000_000),
        "batch_size": (int, 1, 4096),
        "learning_rate": (float, 1e-6, 10.0),
        "label_smoothing": (float, 0.0, 0.5),
        "export_version": (int, 0, 2**31 - 1),
        "peer_timeout": (float, 1.0, 86_400.0),
        "sync_seconds": (float, 0.1, 86_400.0),
        "seed": (int, 0, 2**31 - 1),
        "workers": (int, 1, 64),
    }

    def __post_init__(self) -> None:
        for name, (kind, lo, hi) in self.RANGES.items():
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise ValueError
                coerced = kind(value)
                if kind is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{name} must be {'a number' if kind is float else 'an integer'}, got {value!r}",
                    field=name,
                    value=value,
                ) from None
            if not (lo <= coerced <= hi) or coerced != coerced:
                raise ConfigError(f"{name} must be between {lo} and {hi}, got {coerced!r}", field=name, value=value)
            object.__setattr__(self, name, coerced)
        for name, choices in (("model_type", MODEL_TYPES), ("lr_schedule", LR_SCHEDULES)):
            value = getattr(self, name)
            if str(value).lower() not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}", field=name, value=value)
            object.__setattr__(self, name, str(value).lower())
        object.__setattr__(self, "augment", parse_bool("augment", self.augment, False))
        for name in ("data_dir", "model_dir", "export_dir"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a path or s3:// URL, got {value!r}", field=name, value=value)
            if value.startswith("s3://"):
                split_s3_url(value, name)

    def to_flags(self) -> list[str]:
        """The trainer's command line, as ``python -m trainer.task`` and the TFJob both take it.

        Every flag, except directories left empty (the trainer then uses its environment fallback).
        """
        from mnistkit.trainspec import to_argv

        return [f for f in to_argv(self, all_flags=True) if not f.endswith("-dir=")]
