"""``mnistkit rehearse [-p name=value ...] [--deploy]``: run the Kubeflow path on this machine, for real.

The ``model-train`` Workflow ``mnistkit submit`` would send (same parameters, same manifests) runs under a
local stand-in for the cluster (``mnistkit.rehearsal``): Argo's steps, conditions, deadline and exit handler,
the training operator's TFJob (one process per replica, TF_CONFIG as the operator writes it) or, with
``-p trainer=trainjob``, Kubeflow Trainer v2's TrainJob on the mnistkit-tensorflow runtime (one process per node,
the JobSet env and hostnames; the trainer builds TF_CONFIG), TensorBoard and
serving Deployments, the Secret the pods read their keys from. S3: the seed's variables (``BUCKET_NAME``,
``S3_ENDPOINT``/``AWS_ENDPOINT_URL``, keys, ...) -- upload the data first with ``mnistkit data upload`` -- or,
when none is set, the embedded S3 server with the offline sample uploaded to it. Exits 0 only when the
workflow Succeeded; says where the export is. ``--deploy`` then runs ``model-deploy`` and serves the export on
loopback ports until Ctrl-C (``mnistkit predict --port P`` asks it); ``-p serving-server=mnistkit`` serves it with
mnistkit's own server image (``mnistkit serve`` on the ``s3://`` export) instead of TF Serving.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnistkit.config import S3Config
    from mnistkit.manifests import ManifestParams

__all__ = ["register", "run"]


def _s3_and_params(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[S3Config, ManifestParams]:

    from mnistkit.cluster.identity import default_job_name
    from mnistkit.commands.render import parse_parameters
    from mnistkit.config import S3Config
    from mnistkit.engines.exposure import check_multi_worker
    from mnistkit.manifests import ManifestParams
    from mnistkit.manifests.params import SEED_S3_VARIABLES

    pairs = parse_parameters(args.parameter)
    pairs.setdefault("job-name", args.job_name or default_job_name(prefix="rehearse"))
    params = ManifestParams.from_env(os.environ).with_parameters(pairs)
    # A TFJob of several replicas opens TF's gRPC ports on every interface, as local training does.
    check_multi_worker(int(params.tf_worker) + 1, args.allow_exposed_workers or None)
    if any(os.environ.get(k) for k in SEED_S3_VARIABLES):
        s3 = S3Config.from_env()
        _check_data(s3, params.s3_data_url)
        return s3, params
    from mnistkit import data
    from mnistkit.embedded_s3 import EmbeddedS3

    server = stack.enter_context(EmbeddedS3(bucket="mnist"))
    params = ManifestParams.from_s3(server.config).with_parameters(pairs)
    print(
        f"no S3 variables set: embedded S3 server at {server.config.endpoint_url}, "
        f"uploading the offline sample to {params.s3_data_url}"
    )
    data.upload_dataset(data.offline_sample(), params.s3_data_url, server.config)
    return server.config, params


def _check_data(s3: S3Config, url: str) -> None:
    from mnistkit import s3 as s3mod
    from mnistkit.config import split_s3_url
    from mnistkit.errors import DataError

    bucket, prefix = split_s3_url(url, "s3_data_url")
    if not any(True for _ in s3mod.list_keys(s3mod.make_client(s3, max_attempts=2), bucket, prefix + "/")):
        raise DataError(
            f"no dataset at {url}/: run `mnistkit data upload` first (it writes there)", field="s3_data_url", value=url
        )


def _hold(say: Callable[[str], None]) -> None:
    say("serving until Ctrl-C")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def _sigterm_is_ctrl_c() -> None:
    """SIGTERM ends the rehearsal as Ctrl-C does: every pod's processes are stopped on the way out."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    import contextlib
    import time

    from mnistkit.rehearsal.cluster import Rehearsal
    from mnistkit.rehearsal.report import format_pods, format_workflow
    from mnistkit.rehearsal.run import exported_versions, rehearse_deploy, rehearse_training

    def say(text: str) -> None:
        print(text, flush=True)

    _sigterm_is_ctrl_c()
    with contextlib.ExitStack() as stack:
        s3, params = _s3_and_params(args, stack)
        workdir = Path(args.workdir or Path("runs") / params.job_name)
        r = stack.enter_context(Rehearsal(workdir))
        t0 = time.monotonic()
        outcome = rehearse_training(r, s3, params, timeout=args.timeout, say=say)
        say("\n" + format_workflow(outcome.workflow))
        say("\n" + format_pods(r.store.list("Pod", params.namespace)))
        say(
            f"\nworkflow {params.job_name}: {outcome.phase} in {time.monotonic() - t0:.0f} s "
            f"(pod logs under {workdir}/pods/{params.namespace}/)"
        )
        if outcome.phase != "Succeeded":
            return 1
        versions = exported_versions(s3, params.export_dir)
        if not versions:
            say(f"no exported version under {params.export_dir}/ although the workflow succeeded")
            return 1
        loads = (
            "what mnistkit serve loads, and each later version as it is published"
            if params.serving_server == "mnistkit"
            else "what the serving Deployment's init container copies"
        )
        say(f"export: {params.export_dir}/{versions[-1]}/ ({loads})")
        if not args.deploy:
            return 0
        deployed, ports = rehearse_deploy(r, params, timeout=args.timeout, say=say)
        say("\n" + format_workflow(deployed.workflow))
        if deployed.phase != "Succeeded" or "grpc" not in ports:
            say(f"model-deploy: {deployed.phase}; serving not ready")
            return 1
        say(
            f"serving {params.serving_name}: gRPC 127.0.0.1:{ports['grpc']}, "
            f"REST http://127.0.0.1:{ports.get('rest')}/v1/models/mnist"
        )
        say(f"try: mnistkit predict --port {ports['grpc']}")
        _hold(say)
        return 0
    return 1  # pragma: no cover - the with-block always returns


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rehearse",
        help="run the model-train workflow on this machine as a cluster would",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="a workflow parameter, as for submit (e.g. -p tf-worker=1 -p model-train-steps=40; "
        "-p serving-server=mnistkit serves with mnistkit's own image)",
    )
    p.add_argument("--job-name", help="default: rehearse-<user>-<date>-<time>-<random>")
    p.add_argument(
        "--deploy",
        action="store_true",
        help="then run model-deploy and serve the export on loopback ports until Ctrl-C",
    )
    p.add_argument("--workdir", help="where pod logs and volumes go (default runs/<job-name>)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each workflow (default 3600)")
    p.add_argument(
        "--allow-exposed-workers",
        action="store_true",
        help="run a TFJob of several replicas although TensorFlow's gRPC ports then listen on every "
        "interface (as `mnistkit train --allow-exposed-workers`; or MNISTKIT_ALLOW_EXPOSED_WORKERS=1)",
    )
    p.set_defaults(func=run)
