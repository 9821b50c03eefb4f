"""``mnistkit train``: run a training on the local engine (N processes) or submit it to Argo."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train a model (local processes, or an Argo workflow with a TFJob)",
        description="Train an MNIST model. --engine local runs N `python -m trainer.task` processes with TF_CONFIG "
        "on free loopback ports (the same command a TFJob runs) and waits, printing each epoch; a killed worker "
        "is restarted and resumes from the last checkpoint. --engine argo submits the model-train workflow.",
    )
    p.add_argument("--engine", choices=("local", "argo"), default="local", help="where to train (default local)")
    p.add_argument("--workers", type=int, default=1, help="number of workers (default 1)")
    p.add_argument("--job-name", default=None, help="unique job name (default mnist-<user>-<time>-<rand>)")
    p.add_argument("--run-dir", default="runs", help="local engine: where jobs keep logs and models (default runs/)")
    p.add_argument("--data-dir", default="", help="dataset dir (local or s3://); default: the offline sample")
    p.add_argument("--model-dir", default="", help="model dir (local or s3://); default <run-dir>/<job>/model")
    p.add_argument("--export-dir", default="", help="serving base path; default <model-dir>/export/mnist")
    p.add_argument("--train-steps", type=int, default=200, help="total training steps (default 200)")
    p.add_argument("--batch-size", type=int, default=100, help="global batch size (default 100)")
    p.add_argument("--learning-rate", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--model-type", default="cnn", help="cnn (default), small or linear")
    p.add_argument("--augment", action="store_true", help="random shifts/rotations (better on drawn digits)")
    p.add_argument("--max-restarts", type=int, default=3, help="local engine: restarts after a worker dies")
    p.add_argument("--no-wait", action="store_true", help="submit and return at once")
    p.add_argument("--allow-exposed-workers", action="store_true", default=None,
                   help="local engine, --workers > 1 on a networked machine: accept that TensorFlow opens its "
                   "unauthenticated gRPC ports on every interface (refused otherwise)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mnistkit.config import TrainConfig
    from mnistkit.engines import get_engine

    cfg = TrainConfig(
        data_dir=args.data_dir,
        model_dir=args.model_dir,
        export_dir=args.export_dir,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        model_type=args.model_type,
        workers=args.workers,
    )
    if args.engine == "local":
        engine = get_engine(
            "local",
            run_dir=args.run_dir,
            max_restarts=args.max_restarts,
            extra_flags=["--tf-augment"] if args.augment else [],
            allow_exposed_workers=args.allow_exposed_workers,
        )
    else:
        engine = get_engine("argo")
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
    message = getattr(job, "message", "")
    print(f"{job.name}: {state.value}" + (f" ({message})" if message else ""))
    if state.value != "Succeeded":
        print(job.logs(tail=20), file=sys.stderr)
        return 1
    result = getattr(job, "result", lambda: {})()
    if result:
        print(f"test accuracy {result['test_accuracy']:.4f} on {result['test_samples']} held-out digits")
        print(f"exported version {result['version']} to {result['export']}")
        print(f"serve it with: mnistkit serve --model_base_path={job.export_dir}")
    return 0
