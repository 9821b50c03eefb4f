"""The trainer's interface, owned here and nowhere else.

Three contracts between ``python -m trainer.task`` and everything that starts or watches it (the local
and Argo engines, the manifests, the panels, the benchmarks):

* **Flags** (``FLAGS``): every ``--tf-*`` flag with its ``TrainConfig`` field, type, default, environment
  fallback (the 2018 example read ``TF_DATA_DIR`` and friends) and help. ``to_argv`` turns a config into
  the trainer's command line, ``build_parser``/``config_from_args`` turn it back.
* **The run folder** (``RunLayout``): what the trainer writes under its model dir, locally or on S3.
* **The metrics record** (``EpochMetrics``): one JSON line per epoch in ``metrics.jsonl``, written by
  ``format_metrics`` and read back by ``parse_metrics``.

Pure and light: no TensorFlow, no I/O.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from mnistkit.config import LR_SCHEDULES, MODEL_TYPES, TrainConfig

__all__ = [
    "FLAGS",
    "Flag",
    "to_argv",
    "build_parser",
    "config_from_args",
    "RunLayout",
    "EXPORT_SUBDIR",
    "EpochMetrics",
    "format_metrics",
    "parse_metrics",
    "READY_LINE",
    "HOLD_ENV",
]

# The trainer prints this (followed by details) once every peer has joined: engines wait for it.
READY_LINE = "all workers joined"
# Fault-injection hook: the chief stops after this epoch's backup is saved (and synced to S3), writes
# ``RunLayout.hold_marker(epoch)`` and waits until that file is removed (or 10 minutes pass).
HOLD_ENV = "MNISTKIT_HOLD_AFTER_EPOCH"
EXPORT_SUBDIR = "export/mnist"


@dataclass(frozen=True)
class Flag:
    """One trainer flag: ``--tf-<name>`` on the command line, ``TF_<NAME>`` in the environment."""

    field: str
    kind: type
    help: str

    @property
    def option(self) -> str:
        return "--tf-" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "TF_" + self.field.upper()

    @property
    def default(self) -> object:
        return _DEFAULTS[self.field]


FLAGS: tuple[Flag, ...] = (
    Flag("data_dir", str, "dataset dir with the four MNIST IDX files (local or s3://); empty = the offline sample"),
    Flag("model_dir", str, "checkpoints, TensorBoard logs (logs/) and metrics (local or s3://)"),
    Flag("export_dir", str, f"model base path for serving; default <model-dir>/{EXPORT_SUBDIR}"),
    Flag("train_steps", int, "total training steps (default %(default)s)"),
    Flag("batch_size", int, "global batch size (default %(default)s)"),
    Flag("learning_rate", float, "Adam learning rate (default %(default)s)"),
    Flag(
        "model_type",
        str,
        f"one of {', '.join(MODEL_TYPES)} (default %(default)s; small is fast, for tests; bn is the most accurate)",
    ),
    Flag(
        "lr_schedule",
        str,
        f"learning-rate schedule: one of {', '.join(LR_SCHEDULES)} (default %(default)s; cosine: "
        "2 epochs of warm-up to --tf-learning-rate, then a cosine decay to 0 at the last step)",
    ),
    Flag(
        "label_smoothing",
        float,
        "weight of the cross-entropy target spread evenly over the ten digits, 0-0.5 "
        "(default %(default)s; 0.1 helps the bn model on few digits)",
    ),
    Flag("export_version", int, "version number to publish; 0 (default) = one more than the highest existing"),
    Flag("augment", bool, "random shifts/rotations/zoom (helps drawn digits); true/false, 1/0"),
    Flag("peer_timeout", float, "seconds to wait for every peer in TF_CONFIG before failing (default %(default)s)"),
    Flag(
        "sync_seconds", float, "how often logs and checkpoints are synced to an s3:// model dir (default %(default)s)"
    ),
    Flag("seed", int, "random seed: initial weights and the per-epoch data order (default %(default)s)"),
)
_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
_TRAINER_FIELDS = frozenset(f.field for f in FLAGS)


def to_argv(config: TrainConfig, *, all_flags: bool = False) -> list[str]:
    """The trainer's command line for ``config``: every flag that differs from its default (or all)."""
    argv = []
    for flag in FLAGS:
        value = getattr(config, flag.field)
        if not all_flags and value == flag.default:
            continue
        if flag.kind is bool:
            value = "true" if value else "false"
        argv.append(f"{flag.option}={value}")
    return argv


def _env_value(flag: Flag, env: Mapping[str, str]) -> object:
    raw = env.get(flag.env, "")
    # An empty variable means unset; anything else is validated (and converted) by TrainConfig,
    # which names the field and the value.
    return flag.default if raw == "" else raw


def build_parser(env: Mapping[str, str] | None = None, prog: str = "python -m trainer.task") -> argparse.ArgumentParser:
    """The trainer's argument parser; each flag falls back to its environment variable, then its default."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train an MNIST classifier and export it for TF Serving. Every --tf-* flag falls back to the "
        "environment variable of the same name in upper case (TF_DATA_DIR, TF_MODEL_DIR, ...), as the 2018 "
        "example read them. Directories may be local paths or s3:// URLs (S3 settings from S3_ENDPOINT, "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, S3_USE_HTTPS, S3_VERIFY_SSL).",
    )
    for flag in FLAGS:
        default = _env_value(flag, env)
        if flag.kind is bool:
            # `--tf-augment` alone means true; `--tf-augment=false` lets a manifest pass a parameter through.
            p.add_argument(
                flag.option,
                dest=flag.field,
                nargs="?",
                const="true",
                default=default,
                metavar="BOOL",
                help=flag.help + f" [env {flag.env}]",
            )
        else:
            # Strings, so that TrainConfig (not argparse) checks them and names the field in its error.
            p.add_argument(
                flag.option,
                dest=flag.field,
                default=default,
                metavar=flag.kind.__name__.upper(),
                help=flag.help + f" [env {flag.env}]",
            )
    return p


def config_from_args(args: argparse.Namespace, **engine_fields: object) -> TrainConfig:
    """A validated ``TrainConfig`` from parsed trainer flags (raises ``ConfigError`` naming the flag)."""
    return TrainConfig(**{f: getattr(args, f) for f in _TRAINER_FIELDS}, **engine_fields)  # type: ignore[arg-type]  # TrainConfig checks them


@dataclass(frozen=True)
class RunLayout:
    """What the trainer writes under its model dir (a local path or an ``s3://`` URL)::

    <model-dir>/logs/                         TensorBoard events (train/, validation/)
    <model-dir>/backup/                       checkpoints (BackupAndRestore), restored on restart
    <model-dir>/metrics.jsonl                 one EpochMetrics line per epoch (the chief's)
    <model-dir>/result.json                   test accuracy, export URL and version (the chief's)
    <model-dir>/export/mnist/<version>/       the default export dir (--tf-export-dir)
    """

    model_dir: str

    LOGS = "logs"
    BACKUP = "backup"
    METRICS = "metrics.jsonl"
    RESULT = "result.json"

    def _join(self, name: str) -> str:
        return f"{self.model_dir.rstrip('/')}/{name}"

    @property
    def logs(self) -> str:
        return self._join(self.LOGS)

    @property
    def backup(self) -> str:
        return self._join(self.BACKUP)

    @property
    def metrics(self) -> str:
        return self._join(self.METRICS)

    @property
    def result(self) -> str:
        return self._join(self.RESULT)

    def export_dir(self, export_dir: str = "") -> str:
        """``export_dir`` if given, else ``<model-dir>/export/mnist``."""
        return export_dir or self._join(EXPORT_SUBDIR)

    @staticmethod
    def hold_marker(epoch: int) -> str:
        """The file (in the chief's local dir) that says the chief holds after ``epoch`` (``HOLD_ENV``)."""
        return f"hold-after-epoch-{epoch}"


@dataclass(frozen=True)
class EpochMetrics:
    """One line of ``metrics.jsonl``: what a monitor shows after each epoch."""

    epoch: int
    epochs: int
    step: int
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    elapsed_s: float = 0.0


_METRIC_FIELDS = tuple(f.name for f in fields(EpochMetrics))


def format_metrics(row: EpochMetrics) -> str:
    """The JSON line the trainer appends to ``metrics.jsonl``."""
    return json.dumps({k: getattr(row, k) for k in _METRIC_FIELDS})


def parse_metrics(lines: str | Iterable[str]) -> list[EpochMetrics]:
    """Every epoch's latest record, in epoch order.

    A resumed run writes an epoch again (the latest wins); a line being written right now, or one that
    is not a record, is skipped; keys a newer trainer may add are ignored.
    """
    rows: dict[int, EpochMetrics] = {}
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        try:
            raw = json.loads(line)
            m = EpochMetrics(**{k: raw[k] for k in _METRIC_FIELDS if k in raw})
            rows[int(m.epoch)] = m
        except (ValueError, TypeError, AttributeError):
            continue
    return [rows[k] for k in sorted(rows)]
