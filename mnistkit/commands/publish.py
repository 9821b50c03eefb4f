"""``mnistkit publish``: publish an exported SavedModel as the next (or a given) version of a model base path.

What a trainer says to run when its own publish failed (S3 down for longer than it retried): the export was
kept on disk, and this puts it where servers look, complete or not at all, then deletes the local copy.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        help="publish a kept SavedModel export under a model base path (local or s3://)",
        description="Publish the SavedModel in SAVED_MODEL_DIR as <BASE>/<version>/ (servers never see it half "
        "written); the version is the next free one unless --version is given. S3 publishes retry through an "
        "outage for --retry-seconds. The local copy is deleted once published.",
    )
    p.add_argument("saved_model_dir", help="the folder holding saved_model.pb")
    p.add_argument("base", help="model base path: a directory or s3://bucket/prefix (e.g. .../export/mnist)")
    p.add_argument("--version", type=int, default=None, help="version number (default: the next free one)")
    p.add_argument("--retry-seconds", type=float, default=600.0, help="how long S3 failures are retried (default 600)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.export import publish_export

    print(
        f"published {publish_export(Path(args.saved_model_dir), args.base, args.version, retry_s=args.retry_seconds)}"
    )
    return 0
