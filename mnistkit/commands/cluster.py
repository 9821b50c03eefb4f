"""Cluster sub-commands: ``submit``, ``list``, ``get``, ``logs``, ``delete``, ``deploy``, ``doctor``, ``port-forward``,
``secret``.

The ``argo`` CLI equivalents, through the Kubernetes API with your kubeconfig (or, in a Kubeflow
notebook, the pod's service account and namespace). ``kubernetes`` is imported only when one runs.
Input is checked before any request; a failed request (server unreachable, 401, 403, 404) is one
sentence naming the server or object and what to do (``mnistkit.cluster.errors``), never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from mnistkit.config import validate_job_name
from mnistkit.errors import ConfigError

if TYPE_CHECKING:
    from mnistkit.cluster.client import ClusterClient
    from mnistkit.cluster.info import WorkflowInfo

__all__ = ["register"]

Command = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> ClusterClient:
    from mnistkit.cluster.client import ClusterClient

    client = ClusterClient.connect(args.namespace, kubeconfig=args.kubeconfig, context=args.context)
    args.cluster_client = client  # for _explained's message, should a request fail outside the client
    return client


def _checked(args: argparse.Namespace) -> None:
    """Refuse bad input before any request is made."""
    if args.namespace is not None:
        validate_job_name(args.namespace, "namespace", max_len=63)
    if getattr(args, "name", None) is not None and args.command != "secret":
        validate_job_name(args.name, "job_name", max_len=52 if args.command in ("logs", "port-forward") else 63)
    if getattr(args, "tail", None) is not None and args.tail < 0:
        raise ConfigError(f"--tail must be 0 or more lines, got {args.tail}", field="tail", value=args.tail)
    if getattr(args, "port", None) is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0-65535 (0: any free port), got {args.port}", field="port", value=args.port)
    for secret in (getattr(args, "secret", None), args.name if args.command == "secret" else None):
        if secret is not None:
            validate_job_name(secret, "secret", max_len=63)


def _explained(func: Command) -> Command:
    """Check the input, run the command, and turn any API failure that got this far into one sentence."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        _checked(args)
        try:
            return func(args)
        except Exception as exc:
            from mnistkit.cluster.errors import explain

            client = getattr(args, "cluster_client", None)
            if client is None:
                raise
            err = explain(
                exc,
                server=client.server,
                namespace=client.namespace,
                action=f"running `mnistkit {args.command}`",
                value=getattr(args, "name", None),
            )
            if err is None:
                raise
            raise err from None

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="namespace (default: kubeconfig context's, or the notebook's)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")


def _print_info(info: WorkflowInfo) -> None:
    print(
        f"Name:       {info.name}\nNamespace:  {info.namespace}\nJob:        {info.job_name}\n"
        f"Status:     {info.phase}\nStarted:    {info.started}\nFinished:   {info.finished}"
    )
    if info.message:
        print(f"Message:    {info.message}")
    if info.nodes:
        print("\nSTEP                      PHASE       MESSAGE")
        for step, phase, msg in info.nodes:
            print(f"{step:<25} {phase:<11} {msg}")


def _submit(args: argparse.Namespace) -> int:
    from mnistkit.cluster.identity import default_job_name
    from mnistkit.commands.render import parse_parameters
    from mnistkit.manifests import ManifestParams

    client = _client(args)
    pairs = parse_parameters(args.parameter)
    pairs.setdefault("job-name", args.job_name or default_job_name())
    requested = pairs.pop("trainer", None)  # else the training API the cluster has (TFJob first, then TrainJob)
    # S3 settings: the seed's variables
    params = client.with_trainer(client.params_for(ManifestParams.from_env(os.environ), **pairs), requested)
    name = client.submit(params)
    print(f"submitted workflow {name} in namespace {client.namespace} (trainer: {params.trainer})")
    print(f"  model dir: {params.model_dir}\n  exports:   {params.export_dir}")
    if args.watch:
        for info in client.watch(name):
            print(f"{info.name}: {info.phase}" + (f" ({info.message})" if info.message else ""), flush=True)
        info = client.get(name)
        return 0 if info.phase == "Succeeded" else 1
    return 0


def _list(args: argparse.Namespace) -> int:
    infos = _client(args).list(all_workflows=args.all)
    print(f"{'NAME':<52} {'STATUS':<10} STARTED")
    for i in infos:
        print(f"{i.name:<52} {i.phase:<10} {i.started}")
    return 0


def _get(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.watch:
        for info in client.watch(args.name):
            print(f"{info.name}: {info.phase}", flush=True)
    _print_info(client.get(args.name))
    return 0


def _logs(args: argparse.Namespace) -> int:
    client = _client(args)
    text = client.logs(args.name, tail=args.tail)
    if not text:
        client.workflow(args.name)  # no such job: say so (a clear error), rather than print nothing
        print(
            f"job {args.name} has no training pods (yet); `mnistkit get {args.name}` shows its steps", file=sys.stderr
        )
    sys.stdout.write(text)
    return 0


def _delete(args: argparse.Namespace) -> int:
    client = _client(args)
    counts = client.delete(args.name)
    if not any(counts.values()):
        print(
            f"nothing labelled mnistkit.io/job={args.name} in namespace {client.namespace} to delete; "
            "`mnistkit list` shows the jobs there",
            file=sys.stderr,
        )
        return 0
    print(f"deleted {args.name}: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + " (exports on S3 are kept)")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from mnistkit.commands.render import parse_parameters

    client = _client(args)
    name = client.deploy(args.name, parse_parameters(args.parameter))
    print(f"deploy workflow {name} started: it waits for {args.name} to succeed, then serves its export")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from mnistkit.cluster.doctor import doctor, format_report

    checks = doctor(_client(args), secret_name=args.secret)
    print(format_report(checks))
    return 1 if any(c.ok is False for c in checks) else 0


def _port_forward(args: argparse.Namespace) -> int:
    from mnistkit.cluster.portforward import forward

    def ready(port: int, pod: str) -> None:
        print(f"forwarding http://127.0.0.1:{port} -> {pod} ({args.target}); Ctrl-C stops", flush=True)

    def on_error(message: str) -> None:
        print(f"mnistkit: port-forward: {message}", file=sys.stderr, flush=True)

    forward(_client(args), args.name, args.target, args.port, ready=ready, on_error=on_error)
    return 0


def _secret(args: argparse.Namespace) -> int:
    from mnistkit.config import S3Config

    s3 = S3Config.from_env()
    outcome = _client(args).ensure_secret(s3, name=args.name)
    print(f"Secret {args.name} {outcome} (keys awsAccessKeyID, awsSecretAccessKey; values not shown)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    def add(name: str, help_: str, func: Command) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=help_, description=help_)
        _common(p)
        p.set_defaults(func=_explained(func))
        return p

    p = add("submit", "submit the model-train workflow to the cluster (argo submit -p ...)", _submit)
    p.add_argument("--job-name", help="default: mnist-<user>-<date>-<time>-<random>")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="workflow parameter (repeatable); -p trainer=tfjob|trainjob picks the training API, "
        "by default the one the cluster has",
    )
    p.add_argument("--watch", "-w", action="store_true", help="follow it until it ends; exit 1 unless it succeeded")

    p = add("list", "list mnistkit workflows (argo list)", _list)
    p.add_argument("--all", action="store_true", help="every workflow in the namespace, not only mnistkit's")

    p = add("get", "show one workflow and its steps (argo get)", _get)
    p.add_argument("name")
    p.add_argument("--watch", "-w", action="store_true", help="follow it until it ends")

    p = add("logs", "logs of a job's training pods (TFJob or TrainJob), chief first", _logs)
    p.add_argument("name")
    p.add_argument("--tail", type=int, help="only the last N lines of each pod")

    p = add(
        "delete", "delete a job and everything it created (workflow, TFJob/TrainJob, TensorBoard, serving)", _delete
    )
    p.add_argument("name")

    p = add("deploy", "serve the export of a finished model-train workflow (the model-deploy template)", _deploy)
    p.add_argument("name", help="the model-train workflow (= job name)")
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="model-deploy parameter (repeatable): serving-server=tfserving|mnistkit, serving-image, "
        "mnistkit-serving-image (default: the training's)",
    )

    p = add("doctor", "check the cluster has what mnistkit needs, and say what is missing", _doctor)
    p.add_argument("--secret", default="aws-creds", help="name of the S3 Secret to look for")

    p = add("port-forward", "forward a local port to a job's TensorBoard or TF Serving", _port_forward)
    p.add_argument("name")
    p.add_argument("target", nargs="?", default="tensorboard", choices=["tensorboard", "serving", "serving-grpc"])
    p.add_argument("--port", type=int, default=0, help="local port (default: any free one)")

    p = add("secret", "create/replace the aws-creds Secret from AWS_* environment variables", _secret)
    p.add_argument("--name", default="aws-creds")
