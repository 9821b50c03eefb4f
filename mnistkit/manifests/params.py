"""The parameters every manifest is built from: the seed workflow's ``-p name=value`` set, validated once.

``ManifestParams`` holds the values as the strings Argo passes around (``argo submit -p tf-worker=2``), so
the same builder functions produce both concrete manifests (``mnistkit render``, ``mnistkit submit``)
and the workflow's inline manifests, where each value is an Argo placeholder such as
``{{workflow.parameters.tf-worker}}`` (``ManifestParams.placeholders()``).

Pure, as every manifest builder: nothing here reads files or the environment. Callers read those
(``os.environ``, ``mnistkit.cluster.identity``: the pod's namespace, the user, ``default_job_name``) and
pass the values in.

The model dir of one job is ``<s3-train-base-url>/<job-name>/`` (``--tf-model-dir``), laid out as
``mnistkit.trainspec.RunLayout`` says; the trainer's flags come from ``mnistkit.trainspec.FLAGS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from mnistkit.config import (
    S3Config,
    TrainConfig,
    parse_bool,
    split_s3_url,
    validate_job_name,
)
from mnistkit.errors import ConfigError
from mnistkit.trainspec import FLAGS, RunLayout

__all__ = [
    "ManifestParams",
    "PARAMETER_NAMES",
    "is_placeholder",
    "SEED_S3_VARIABLES",
    "DATA_PREFIX",
    "TRAINERS",
    "SERVING_SERVERS",
]

# The seed's S3 variables that say where the store is (keys excluded: they travel only in the Secret).
SEED_S3_VARIABLES = ("BUCKET_NAME", "S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_REGION", "S3_USE_HTTPS", "S3_VERIFY_SSL")
# Where `mnistkit data upload` writes the dataset in the bucket (the seed's S3_DATA_URL=s3://$BUCKET_NAME/data/mnist/).
DATA_PREFIX = "data/mnist"
# The `trainer` parameter: which Kubeflow API a training runs as (TFJob of training-operator v1, TrainJob of
# Trainer v2).
TRAINERS = ("tfjob", "trainjob")
# The `serving-server` parameter: what serves the export. "tfserving": TF Serving fed by an init container (a
# new version needs a restart); "mnistkit": `mnistkit serve` reading s3:// itself, loading new versions as they
# are published (manifests/serving_mnistkit.py).
SERVING_SERVERS = ("tfserving", "mnistkit")
_PLACEHOLDER_RE = re.compile(r"^\{\{.*\}\}$")


def is_placeholder(value: object) -> bool:
    """True for an Argo template expression such as ``{{workflow.parameters.job-name}}``."""
    return isinstance(value, str) and bool(_PLACEHOLDER_RE.match(value))


# field name -> workflow parameter name (the seed's names, kept so `argo submit -p` commands still work).
_PARAM_OF_FIELD = {
    "job_name": "job-name",
    "namespace": "namespace",
    "tf_worker": "tf-worker",
    "tf_model_image": "tf-model-image",
    "model_train_steps": "model-train-steps",
    "model_batch_size": "model-batch-size",
    "model_learning_rate": "model-learning-rate",
    "model_type": "model-type",
    "model_lr_schedule": "model-lr-schedule",
    "model_label_smoothing": "model-label-smoothing",
    "model_augment": "model-augment",
    "model_seed": "model-seed",
    "model_sync_seconds": "model-sync-seconds",
    "model_peer_timeout": "model-peer-timeout",
    "model_export_version": "model-export-version",
    "model_serving": "model-serving",
    "s3_data_url": "s3-data-url",
    "s3_train_base_url": "s3-train-base-url",
    "aws_endpoint_url": "aws-endpoint-url",
    "s3_endpoint": "s3-endpoint",
    "aws_region": "aws-region",
    "s3_use_https": "s3-use-https",
    "s3_verify_ssl": "s3-verify-ssl",
    "aws_secret": "aws-secret",
    "tensorboard_image": "tensorboard-image",
    "serving_image": "serving-image",
    "serving_server": "serving-server",
    "mnistkit_serving_image": "mnistkit-serving-image",
    "trainer": "trainer",
}
PARAMETER_NAMES: tuple[str, ...] = tuple(_PARAM_OF_FIELD.values())
# trainer flag (TrainConfig field) -> the ManifestParams field that carries it; the dirs derive from the job.
_PARAM_OF_TRAINER_FIELD = {
    "train_steps": "model_train_steps",
    "batch_size": "model_batch_size",
    "learning_rate": "model_learning_rate",
    "model_type": "model_type",
    "lr_schedule": "model_lr_schedule",
    "label_smoothing": "model_label_smoothing",
    "augment": "model_augment",
    "seed": "model_seed",
    "sync_seconds": "model_sync_seconds",
    "peer_timeout": "model_peer_timeout",
    "export_version": "model_export_version",
}
_FIELD_OF_PARAM = {v: k for k, v in _PARAM_OF_FIELD.items()}


@dataclass(frozen=True)
class ManifestParams:
    """Everything a manifest needs. Values are strings (Argo parameters are strings); see ``validate``.

    Not parameters, because Argo cannot substitute into integers of a parsed workflow: the deadlines and
    retry limits below, and the resource requests (edit them here or with ``dataclasses.replace``).
    """

    job_name: str = "mnist-train"
    namespace: str = "kubeflow"
    tf_worker: str = "1"
    tf_model_image: str = "docker.io/mnistkit/trainer:0.1.0"
    model_train_steps: str = "200"
    model_batch_size: str = "100"
    model_learning_rate: str = "0.01"
    model_type: str = "cnn"
    model_lr_schedule: str = "constant"
    model_label_smoothing: str = "0.0"
    model_augment: str = "false"
    model_seed: str = "0"
    model_sync_seconds: str = "10.0"
    model_peer_timeout: str = "120.0"
    model_export_version: str = "0"
    model_serving: str = "true"
    s3_data_url: str = f"s3://mnist/{DATA_PREFIX}"
    s3_train_base_url: str = "s3://mnist/models"
    aws_endpoint_url: str = "https://s3.us-west-1.amazonaws.com"
    s3_endpoint: str = "s3.us-west-1.amazonaws.com"
    aws_region: str = "us-west-1"
    s3_use_https: str = "1"
    s3_verify_ssl: str = "1"
    aws_secret: str = "aws-creds"
    tensorboard_image: str = "docker.io/mnistkit/tensorboard:0.1.0"
    serving_image: str = "docker.io/tensorflow/serving:2.18.0"
    # Which server serves the export ("tfserving" or "mnistkit", SERVING_SERVERS), and mnistkit's own server's
    # image (docker/serving/Dockerfile).
    serving_server: str = "tfserving"
    mnistkit_serving_image: str = "docker.io/mnistkit/serving:0.1.0"
    # Which Kubeflow API trains: "tfjob" (training-operator v1) or "trainjob" (Trainer v2, see manifests/trainjob.py).
    trainer: str = "tfjob"
    # Not workflow parameters:
    train_deadline_seconds: int = 6 * 3600
    backoff_limit: int = 3
    ttl_seconds_after_finished: int = 24 * 3600
    aws_cli_image: str = "docker.io/amazon/aws-cli:2.22.35"
    # trainer=trainjob: which kind holds the mnistkit-tensorflow runtime (or "TrainingRuntime", namespaced).
    runtime_kind: str = "ClusterTrainingRuntime"
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def placeholders(cls) -> ManifestParams:
        """Every parameter as ``{{workflow.parameters.<name>}}``: what the workflow's inline manifests use."""
        values: dict[str, Any] = {f: f"{{{{workflow.parameters.{p}}}}}" for f, p in _PARAM_OF_FIELD.items()}
        return cls(**values)

    @classmethod
    def from_s3(cls, s3: S3Config, base: ManifestParams | None = None, **overrides: str) -> ManifestParams:
        """Bucket, endpoint, region and TLS settings from an ``S3Config``; never its keys (those live in the Secret).

        The data URL is where ``mnistkit data upload`` writes (``s3://<bucket>/data/mnist``), the models go to
        ``s3://<bucket>/models``; every other field comes from ``base`` (default: ``ManifestParams()``).
        """
        values: dict[str, Any] = {
            "s3_data_url": s3.url(DATA_PREFIX),
            "s3_train_base_url": s3.url("models"),
            "aws_endpoint_url": s3.endpoint_url,
            "s3_endpoint": s3.endpoint,
            "aws_region": s3.region,
            "s3_use_https": "1" if s3.use_https else "0",
            "s3_verify_ssl": "1" if s3.verify_ssl else "0",
        }
        values.update(overrides)
        return replace(base or cls(), **values).validate()

    @classmethod
    def from_env(cls, env: Mapping[str, str], base: ManifestParams | None = None, **overrides: Any) -> ManifestParams:
        """The defaults with S3 settings from the seed's variables (``SEED_S3_VARIABLES``, ``S3_DATA_URL``) in ``env``.

        What ``render``, ``submit``, ``rehearse``, ``ArgoEngine`` and notebook 03 start from (passing
        ``os.environ``: the caller reads it, not this module), so a user who set the seed's variables gets
        manifests that read the bucket ``mnistkit data upload`` wrote. With none of them set, ``base`` (default
        ``ManifestParams()``) unchanged.
        """
        base = base or cls()
        if any(env.get(k, "") for k in SEED_S3_VARIABLES):
            base = cls.from_s3(S3Config.from_env(env), base)
        if env.get("S3_DATA_URL", ""):
            overrides = {"s3_data_url": env["S3_DATA_URL"].rstrip("/"), **overrides}
        return replace(base, **overrides).validate()

    def with_parameters(self, pairs: Mapping[str, str]) -> ManifestParams:
        """Apply ``{"tf-worker": "2", ...}`` (workflow parameter names; ``_`` spelling also accepted)."""
        changes: dict[str, Any] = {}
        for name, value in pairs.items():
            key = _FIELD_OF_PARAM.get(name) or (name if name in _PARAM_OF_FIELD else None)
            if key is None:
                raise ConfigError(
                    f"unknown parameter {name!r}; known: {', '.join(PARAMETER_NAMES)}", field="parameter", value=name
                )
            if key == "aws_secret" or name.lower().startswith(("aws-secret-access", "aws_secret_access")):
                # Only the *name* of a Secret may be a parameter; reject anything that looks like a key.
                if len(str(value)) > 63 or not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", str(value)):
                    raise ConfigError(
                        "aws-secret is the name of a Kubernetes Secret (e.g. aws-creds), not a key",
                        field="aws_secret",
                    )
            changes[key] = str(value)
        return replace(self, **changes).validate()

    @classmethod
    def from_train_config(cls, cfg: TrainConfig, base: ManifestParams | None = None) -> ManifestParams:
        """Map a ``TrainConfig`` (``workers`` = processes in all) onto the parameters (Chief + tf-worker)."""
        base = base or cls()
        changes: dict[str, Any] = {"tf_worker": str(cfg.workers - 1)}
        for trainer_field, param_field in _PARAM_OF_TRAINER_FIELD.items():
            value = getattr(cfg, trainer_field)
            changes[param_field] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if cfg.data_dir:
            changes["s3_data_url"] = cfg.data_dir
        return replace(base, **changes).validate()

    # ---- validation ---------------------------------------------------------------------------
    def validate(self) -> ManifestParams:
        """Check every concrete value (placeholders pass); returns ``self`` so calls chain."""

        def concrete(name: str) -> str | None:
            value = getattr(self, name)
            if not isinstance(value, str):
                # Argo parameters are strings; a number here would be rendered wrongly, so say so.
                raise ConfigError(
                    f"{name} must be a string (Argo parameters are strings), got {value!r}; write {str(value)!r}",
                    field=name,
                    value=value,
                )
            return None if is_placeholder(value) else value

        if (v := concrete("job_name")) is not None:
            validate_job_name(v, "job_name")
            if not v[0].isalpha():
                # It names Services (<job>-tb, <job>-serving), and Service names must start with a letter.
                raise ConfigError(f"job_name {v!r} must start with a letter", field="job_name", value=v)
        if (v := concrete("namespace")) is not None:
            validate_job_name(v, "namespace", max_len=63)
        if (v := concrete("aws_secret")) is not None:
            validate_job_name(v, "aws_secret", max_len=63)
        if (v := concrete("tf_worker")) is not None:
            if not v.isdigit() or int(v) > 63:
                raise ConfigError(
                    f"tf_worker is the number of workers besides the chief (0-63), got {v!r}",
                    field="tf_worker",
                    value=v,
                )
        # The trainer's values, checked by the trainer's own rules; errors name the workflow parameter.
        trainer_values = {t: v for t, p in _PARAM_OF_TRAINER_FIELD.items() if (v := concrete(p)) is not None}
        try:
            checked = TrainConfig(**trainer_values)  # type: ignore[arg-type] # strings, converted by TrainConfig
        except ConfigError as exc:
            field = _PARAM_OF_TRAINER_FIELD.get(exc.field or "", exc.field)
            raise ConfigError(f"{field}: {exc}", field=field, value=exc.value) from None
        for trainer_field in trainer_values:
            value = getattr(checked, trainer_field)
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            object.__setattr__(self, _PARAM_OF_TRAINER_FIELD[trainer_field], text)
        if (v := concrete("trainer")) is not None and v not in TRAINERS:
            raise ConfigError(f"trainer must be one of {', '.join(TRAINERS)}, got {v!r}", field="trainer", value=v)
        if (v := concrete("serving_server")) is not None and v not in SERVING_SERVERS:
            raise ConfigError(
                f"serving_server must be one of {', '.join(SERVING_SERVERS)}, got {v!r}",
                field="serving_server",
                value=v,
            )
        for name in ("model_serving",):
            if (v := concrete(name)) is not None:
                object.__setattr__(self, name, "true" if parse_bool(name, v, True) else "false")
        for name in ("s3_use_https", "s3_verify_ssl"):
            if (v := concrete(name)) is not None:
                object.__setattr__(self, name, "1" if parse_bool(name, v, True) else "0")
        for name in ("s3_data_url", "s3_train_base_url"):
            if (v := concrete(name)) is not None:
                split_s3_url(v, name)
        if (v := concrete("aws_endpoint_url")) is not None and v and not re.match(r"^https?://[^/\s]+/?$", v):
            raise ConfigError(
                f"aws_endpoint_url must be http(s)://host[:port], got {v!r}", field="aws_endpoint_url", value=v
            )
        for name in ("tf_model_image", "tensorboard_image", "serving_image", "mnistkit_serving_image", "aws_cli_image"):
            if (v := concrete(name)) is not None and (not v or any(c.isspace() for c in v)):
                raise ConfigError(f"{name} must be an image reference, got {v!r}", field=name, value=v)
        return self

    # ---- derived values -----------------------------------------------------------------------
    def parameters(self) -> dict[str, str]:
        """``{"job-name": ..., ...}``: the workflow's ``spec.arguments.parameters`` as a mapping."""
        return {p: getattr(self, f) for f, p in _PARAM_OF_FIELD.items()}

    @property
    def model_dir(self) -> str:
        return f"{self.s3_train_base_url.rstrip('/')}/{self.job_name}"

    @property
    def logs_dir(self) -> str:
        return RunLayout(self.model_dir).logs

    @property
    def export_dir(self) -> str:
        return RunLayout(self.model_dir).export_dir()

    @property
    def tensorboard_name(self) -> str:
        return f"{self.job_name}-tb"

    @property
    def serving_name(self) -> str:
        return f"{self.job_name}-serving"

    def trainer_flags(self) -> list[str]:
        """Every ``--tf-*`` flag of ``python -m trainer.task`` (``mnistkit.trainspec.FLAGS``), in its order."""
        values = {
            "data_dir": self.s3_data_url,
            "model_dir": self.model_dir,
            "export_dir": self.export_dir,
            **{t: getattr(self, p) for t, p in _PARAM_OF_TRAINER_FIELD.items()},
        }
        return [f"{flag.option}={values[flag.field]}" for flag in FLAGS]


def _check_fields() -> None:  # keep the tables, the dataclass and the trainer's flags in step (import-time, cheap)
    names = {f.name for f in fields(ManifestParams)}
    missing = set(_PARAM_OF_FIELD) - names
    assert not missing, missing
    carried = set(_PARAM_OF_TRAINER_FIELD) | {"data_dir", "model_dir", "export_dir"}
    assert carried == {f.field for f in FLAGS}, carried ^ {f.field for f in FLAGS}


_check_fields()
