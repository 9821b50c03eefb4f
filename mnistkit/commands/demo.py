"""``mnistkit demo``: the whole local loop (what ``make demo`` runs)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole loop locally: S3, data, 2-worker training, serving, prediction",
        description="Start the embedded S3 server, upload the offline MNIST sample, train with local workers, "
        "export, serve over gRPC and REST on free ports, predict a test digit (ASCII art and the answer), report "
        "accuracy, and shut everything down. The run directory keeps data, logs and the model.",
    )
    p.add_argument("--run-dir", default=None, help="where to keep the run (default runs/demo-<time>)")
    p.add_argument("--workers", type=int, default=2, help="local training workers (default 2)")
    p.add_argument("--train-steps", type=int, default=200, help="training steps (default 200)")
    p.add_argument("--model-type", default="cnn", help="cnn (default), small or linear")
    p.add_argument("--test-image", type=int, default=None, help="test image number (default random)")
    p.add_argument(
        "--s3-from-env",
        action="store_true",
        help="use the S3/MinIO named by S3_ENDPOINT/AWS_ENDPOINT_URL, AWS_* and BUCKET_NAME instead of "
        "the embedded server",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mnistkit.demo import run_demo

    run_demo(
        args.run_dir,
        workers=args.workers,
        train_steps=args.train_steps,
        model_type=args.model_type,
        s3_from_env=args.s3_from_env,
        test_image=args.test_image,
    )
    return 0
