"""``mnistkit serve``: serve a model over TF Serving's gRPC and REST APIs, with its flags.

Flags are named as ``tensorflow_model_server``'s, so a command line (or a Deployment's args) moves
between this local server and real TF Serving unchanged.
"""

from __future__ import annotations

import argparse
import os
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mnistkit.serving.server import ModelServer

__all__ = ["register", "run", "build_server"]

MAX_CONCURRENT_RPCS_LIMIT = 65536


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a model over TF Serving's gRPC and REST APIs",
        description="Serve the latest version under --model_base_path (local dir or s3://) with TF Serving's "
        "gRPC (PredictionService, ModelService) and REST (/v1/models/...) APIs and the Open Inference Protocol "
        "(gRPC inference.GRPCInferenceService, REST /v2/...), loading new versions as they appear.",
    )
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    p.add_argument("--rest_api_port", type=int, default=8501, help="REST port; 0 turns REST off (default 8501)")
    p.add_argument("--model_name", default="mnist", help="name clients ask for (default mnist)")
    p.add_argument(
        "--model_base_path",
        default=os.environ.get("MODEL_BASE_PATH"),
        help="directory or s3:// URL holding numeric version dirs (default $MODEL_BASE_PATH)",
    )
    p.add_argument(
        "--file_system_poll_wait_seconds", type=float, default=1.0, help="how often to look for new versions (s)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; the server has no auth)")
    p.add_argument("--model_cache_dir", default=None, help="local cache for s3:// versions (default: a temp dir)")
    p.add_argument(
        "--enable_batching", action="store_true", help="merge concurrent requests into one model call (as TF Serving)"
    )
    p.add_argument(
        "--batching_parameters_file",
        default=None,
        help="TF Serving's BatchingParameters text (max_batch_size { value: 32 } ...); implies --enable_batching",
    )
    p.add_argument(
        "--max_concurrent_rpcs",
        "--max-concurrent-rpcs",
        type=int,
        default=None,
        metavar="N",
        help="at most N gRPC calls in flight or queued; more are answered RESOURCE_EXHAUSTED at once (default 256)",
    )
    p.add_argument(
        "--tensorflow_intra_op_parallelism",
        type=int,
        default=0,
        metavar="N",
        help="threads one op may use (default 0: one per core, as TF Serving); 1 serves many small concurrent "
        "requests with less CPU each (docs/serving.md)",
    )
    p.set_defaults(func=run)


def build_server(args: argparse.Namespace) -> ModelServer:
    """The ``ModelServer`` the flags describe, not started; a bad flag is a ``ConfigError`` naming it."""
    from mnistkit.errors import ConfigError

    if not args.model_base_path:
        raise ConfigError(
            "--model_base_path is required (a directory or s3:// URL with numeric version dirs)",
            field="model_base_path",
        )
    for flag in ("port", "rest_api_port"):
        value = getattr(args, flag)
        if not 0 <= value < 65536 or (flag == "port" and value == 0):
            raise ConfigError(f"--{flag} must be a port number, got {value}", field=flag, value=value)
    if args.file_system_poll_wait_seconds <= 0:
        raise ConfigError(
            "--file_system_poll_wait_seconds must be positive",
            field="file_system_poll_wait_seconds",
            value=args.file_system_poll_wait_seconds,
        )
    rpcs = args.max_concurrent_rpcs
    if rpcs is not None and not 1 <= rpcs <= MAX_CONCURRENT_RPCS_LIMIT:
        raise ConfigError(
            f"--max_concurrent_rpcs must be a number of calls from 1 to {MAX_CONCURRENT_RPCS_LIMIT}, got {rpcs}",
            field="max_concurrent_rpcs",
            value=rpcs,
        )
    from mnistkit.serving.batching import read_batching_parameters
    from mnistkit.serving.server import ModelServer

    batching = None
    if args.enable_batching or args.batching_parameters_file:
        batching = read_batching_parameters(args.batching_parameters_file)

    s3_config = None
    if args.model_base_path.startswith("s3://"):
        from mnistkit.config import S3Config, split_s3_url

        s3_config = S3Config.from_env(bucket=split_s3_url(args.model_base_path, "model_base_path")[0])
    return ModelServer(
        args.model_base_path,
        model_name=args.model_name,
        port=args.port,
        rest_api_port=args.rest_api_port or None,
        host=args.host,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        s3_config=s3_config,
        cache_dir=args.model_cache_dir,
        batching=batching,
        intra_op_threads=args.tensorflow_intra_op_parallelism,
        **({"max_concurrent_rpcs": rpcs} if rpcs is not None else {}),
    )


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import sys

    server = build_server(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.start()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("mnistkit.serving").info("signal %d: stopping", signum)
        server.stop(grace=2.0)

    signal.signal(signal.SIGTERM, _stop)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=2.0)
    return 0
