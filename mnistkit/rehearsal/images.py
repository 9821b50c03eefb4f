"""The one table that says what each image the manifests name runs as on this machine.

A container is ``image`` + ``command`` + ``args``. The rehearsal keeps the command's arguments as the manifest
writes them and replaces only the program (the first word of ``command``) with the local program that the
image would run, plus the environment the image's Dockerfile sets:

================================  =====================  =================================================
image repository (any registry,   container command      local program
tag ignored)
================================  =====================  =================================================
``mnistkit/trainer``              ``python``             this venv's Python (``python -m trainer.task``);
                                                         ``TF_USE_LEGACY_KERAS=1`` etc. as trainer/Dockerfile
``mnistkit/tensorboard``          ``tensorboard``        ``tensorboard`` of the TF-free venv
                                                         (``$MNISTKIT_TB_VENV``, default ``.venv-tb``: the
                                                         docker/tensorboard recipe; TF's own TensorBoard
                                                         cannot read ``s3://``)
``tensorflow/serving``            ``tensorflow_model_    ``mnistkit serve`` with the same flags (the Python
                                  server``               server speaks TF Serving's protocols)
``mnistkit/serving``              ``mnistkit``           this venv's ``python -m mnistkit`` (``mnistkit serve`` with
                                                         the rendered args: reads ``s3://``, polls for versions)
``amazon/aws-cli``                ``/bin/sh``, ``aws``   ``/bin/sh``; ``aws`` from the ``awscli`` package
``library/busybox``, ``busybox``  ``/bin/sh``            ``/bin/sh``
================================  =====================  =================================================

Any other image, or another command in a listed image, is a ``RehearsalError`` that names both.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mnistkit.errors import MnistkitError

__all__ = ["IMAGES", "LocalImage", "RehearsalError", "repository_of", "resolve", "venv_bin"]


class RehearsalError(MnistkitError):
    """Something the rehearsal cannot emulate (an unknown image, a missing local tool)."""


def venv_bin() -> Path:
    """The bin dir of the Python running mnistkit (where ``aws``, ``tensorboard``, ``mnistkit`` live)."""
    return Path(sys.executable).parent


def _tb_program() -> list[str]:
    root = Path(__file__).resolve().parent.parent.parent
    tb = Path(os.environ.get("MNISTKIT_TB_VENV") or root / ".venv-tb") / "bin" / "tensorboard"
    if not tb.exists():
        raise RehearsalError(
            f"no TF-free TensorBoard at {tb}: build it as docker/tensorboard does "
            "(python -m venv .venv-tb && .venv-tb/bin/pip install 'tensorboard==2.21.*' boto3 setuptools) "
            "or set MNISTKIT_TB_VENV",
            field="image",
            value="tensorboard",
        )
    return [str(tb)]


def _aws_program() -> list[str]:
    aws = shutil.which("aws", path=str(venv_bin())) or shutil.which("aws")
    if aws is None:
        raise RehearsalError(
            "the aws-cli image needs the `aws` command: pip install awscli (mnistkit[cluster])",
            field="image",
            value="aws",
        )
    return [aws]


@dataclass(frozen=True)
class LocalImage:
    repository: str
    description: str
    programs: dict[str, Callable[[], list[str]]]
    env: dict[str, str] = field(default_factory=dict)


def _SH() -> list[str]:
    return ["/bin/sh"]


IMAGES: tuple[LocalImage, ...] = (
    LocalImage(
        "mnistkit/trainer",
        "the trainer (python -m trainer.task)",
        {"python": lambda: [sys.executable]},
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
    ),
    LocalImage("mnistkit/tensorboard", "TF-free TensorBoard", {"tensorboard": _tb_program}, {"PYTHONUNBUFFERED": "1"}),
    LocalImage(
        "tensorflow/serving",
        "TF Serving -> mnistkit serve",
        {"tensorflow_model_server": lambda: [sys.executable, "-m", "mnistkit", "serve"]},
        {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    ),
    LocalImage(
        "mnistkit/serving",
        "mnistkit's own server (docker/serving)",
        {"mnistkit": lambda: [sys.executable, "-m", "mnistkit"]},
        {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    ),
    LocalImage("amazon/aws-cli", "aws-cli", {"/bin/sh": _SH, "sh": _SH, "aws": _aws_program}),
    LocalImage("library/busybox", "busybox", {"/bin/sh": _SH, "sh": _SH}),
)


def repository_of(image: str) -> str:
    """``docker.io/tensorflow/serving:2.18.0`` -> ``tensorflow/serving``; ``busybox`` -> ``library/busybox``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]  # a registry host
    if len(parts) == 1:
        parts = ["library", *parts]
    return "/".join(parts)


def resolve(image: str, command: list[str]) -> tuple[list[str], dict[str, str]]:
    """``(local argv prefix for command[0], image env)``, or a ``RehearsalError`` naming the image and command."""
    repo = repository_of(image)
    local = next((i for i in IMAGES if i.repository == repo), None)
    if local is None:
        known = ", ".join(i.repository for i in IMAGES)
        raise RehearsalError(
            f"image {image!r} has no local stand-in in the rehearsal (known: {known})", field="image", value=image
        )
    if not command:
        raise RehearsalError(
            f"image {image!r}: the rehearsal needs the container's command (the image's entrypoint is not read)",
            field="command",
            value=image,
        )
    program = local.programs.get(command[0])
    if program is None:
        raise RehearsalError(
            f"image {image!r} ({local.description}): no local program for command "
            f"{command[0]!r} (known: {', '.join(local.programs)})",
            field="command",
            value=command[0],
        )
    return program(), dict(local.env)
