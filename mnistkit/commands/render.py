"""``mnistkit render --out DIR [-p name=value ...]``: write every Kubernetes manifest as YAML, no cluster needed.

The files are what ``mnistkit submit`` sends, for people who deploy with ``kubectl``/``argo``/GitOps.
S3 settings (bucket, endpoint, region, TLS) come from the seed's variables (``BUCKET_NAME``, ``S3_ENDPOINT``,
``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``, ``S3_DATA_URL``); ``-p`` overrides them.
No Secret is ever written: create ``aws-creds`` with ``mnistkit secret`` or ``kubectl create secret``.
"""

from __future__ import annotations

import argparse
import os

from mnistkit.errors import ConfigError

__all__ = ["register", "parse_parameters", "run"]


def parse_parameters(pairs: list[str] | None) -> dict[str, str]:
    """``["tf-worker=2", ...]`` -> ``{"tf-worker": "2"}`` (the ``argo submit -p`` syntax)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"parameters look like name=value, got {pair!r}", field="parameter", value=pair)
        out[name.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mnistkit.manifests import ManifestParams, all_manifests, to_yaml

    # S3 settings from the seed's variables (as `data upload` uses them); -p wins over them.
    params = ManifestParams.from_env(os.environ).with_parameters(parse_parameters(args.parameter))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifests = all_manifests(params)
    for name, obj in manifests.items():
        (out / name).write_text(to_yaml(obj))
    print(f"wrote {len(manifests)} manifests to {out}/ ({', '.join(manifests)})")
    print(
        "S3 keys are not in them: create the Secret with `mnistkit secret` (or kubectl create secret generic "
        f"{params.aws_secret} --from-literal=awsAccessKeyID=... --from-literal=awsSecretAccessKey=...)."
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="write the Kubernetes/Argo manifests as YAML files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", "-o", default="manifests", help="directory to write into (default: manifests)")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="a workflow parameter, e.g. -p tf-worker=2 -p job-name=mnist-1 (repeatable); -p serving-server=mnistkit "
        "serves with mnistkit's own image (reads s3://, loads new versions; a v2 KServe predictor), not TF Serving",
    )
    p.set_defaults(func=run)
