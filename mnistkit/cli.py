"""The ``mnistkit`` command line: one sub-command module per concept under ``mnistkit.commands``.

Each module exposes ``register(subparsers)``; importing it must stay light (no TensorFlow, kubernetes
or widgets at import time) so that ``mnistkit --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mnistkit.errors import MnistkitError

__all__ = ["main", "build_parser"]

# Order is the order shown in --help.
COMMAND_MODULES = (
    "demo",
    "data",
    "train",
    "serve",
    "publish",
    "predict",
    "render",
    "cluster",
    "rehearse",
    "workshop",
)


def build_parser() -> argparse.ArgumentParser:
    from mnistkit import __version__

    parser = argparse.ArgumentParser(
        prog="mnistkit",
        description="From an empty notebook to a served MNIST model: S3, training, TensorBoard, serving.",
    )
    parser.add_argument("--version", action="version", version=f"mnistkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"mnistkit.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MnistkitError as exc:
        # A user error is one sentence, not a traceback.
        print(f"mnistkit: error: {exc}", file=sys.stderr)
        if os.environ.get("MNISTKIT_DEBUG"):
            raise
        return 1
    except KeyboardInterrupt:
        print("mnistkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
