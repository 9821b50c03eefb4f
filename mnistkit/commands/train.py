"""``mnistkit train``: run a training on the local engine (N processes) or submit it to Argo."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (local processes, or an Argo workflow with a TFJob)",
        description="Train an MNIST model. --engine local runs N `python -m trainer.task` processes with TF_CONFIG "
        "on free loopback ports (the same command a TFJob runs) and waits, printing each epoch; a killed worker "
        "is restarted and resumes from the last checkpoint. --engine argo submits the model-train workflow.",
    )
    from mnistkit.engines.base import ENGINE_NAMES
    from mnistkit.trainspec import FLAGS

    p.add_argument("--engine", choices=tuple(ENGINE_NAMES), default="local", help="where to train (default local)")
    p.add_argument("--workers", type=int, default=1, help="number of workers (default 1)")
    p.add_argument("--job-name", default=None, help="unique job name (default mnist-<user>-<time>-<rand>)")
    p.add_argument("--run-dir", default="runs", help="local engine: where jobs keep logs and models (default runs/)")
    p.add_argument("--max-restarts", type=int, default=3, help="local engine: restarts after a worker dies")
    p.add_argument(
        "--trainer",
        choices=("tfjob", "trainjob"),
        default=None,
        help="argo engine: TFJob (training operator v1) or TrainJob (Kubeflow Trainer v2, numNodes = "
        "--workers); default: the one the cluster has",
    )
    p.add_argument("--no-wait", action="store_true", help="submit and return at once")
    p.add_argument(
        "--allow-exposed-workers",
        action="store_true",
        default=None,
        help="local engine, --workers > 1 on a networked machine: accept that TensorFlow opens its "
        "unauthenticated gRPC ports on every interface (refused otherwise)",
    )
    trainer = p.add_argument_group(
        "trainer flags (the trainer's --tf-* flags without 'tf-'; see python -m trainer.task --help)"
    )
    for flag in FLAGS:
        name = "--" + flag.option[len("--tf-") :]
        if flag.kind is bool:
            trainer.add_argument(
                name, dest=flag.field, nargs="?", const="true", default=flag.default, metavar="BOOL", help=flag.help
            )
        else:
            trainer.add_argument(
                name,
                dest=flag.field,
                default=flag.default,
                metavar=flag.kind.__name__.upper(),
                help=flag.help % {"default": flag.default},
            )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mnistkit.engines import get_engine
    from mnistkit.trainspec import config_from_args

    cfg = config_from_args(args, workers=args.workers)  # a bad value: ConfigError naming it (printed by the CLI)
    if args.engine == "local":
        engine = get_engine(
            "local",
            run_dir=args.run_dir,
            max_restarts=args.max_restarts,
            allow_exposed_workers=args.allow_exposed_workers,
        )
    else:
        # argo: the trainer API the cluster has unless --trainer says (other engines take no trainer).
        engine = get_engine(args.engine, **({"trainer": args.trainer} if args.engine == "argo" else {}))
    job = engine.submit(cfg, args.job_name)
    print(f"submitted {job.name} ({args.engine}, {cfg.workers} worker(s)); model dir {job.model_dir}")
    if args.no_wait:
        return 0
    try:
        for m in job.follow(interval=1.0):
            val = f" val_accuracy={m.val_accuracy:.4f}" if m.val_accuracy is not None else ""
            print(f"epoch {m.epoch}/{m.epochs} step {m.step} loss={m.loss:.4f} accuracy={m.accuracy:.4f}{val}")
    except KeyboardInterrupt:
        job.stop()
        print(f"stopped {job.name}", file=sys.stderr)
        return 130
    state = job.state()
    message = job.message
    print(f"{job.name}: {state.value}" + (f" ({message})" if message else ""))
    if state.value != "Succeeded":
        print(job.logs(tail=20), file=sys.stderr)
        return 1
    result = job.result()
    if result:
        print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_samples']} held-out digits")
        print(f"exported version {result['version']} to {result['export']}")
        print(f"serve it with: mnistkit serve --model_base_path={job.export_dir}")
    return 0
