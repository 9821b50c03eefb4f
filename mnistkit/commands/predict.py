"""``mnistkit predict``: the 2018 example's ``mnist_client.py``, modernized.

Sends one digit (a PNG, test image N, or a random test digit) to a TF Serving server over gRPC or REST
and prints the outputs, the digit as ASCII art and the model's answer. The seed's environment variables
still work: ``TF_MODEL_SERVER_HOST``, ``TF_MODEL_SERVER_PORT``, ``TF_MNIST_IMAGE_PATH``,
``TF_MNIST_TEST_IMAGE_NUMBER``.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="ask a model server what digit an image shows",
        description="Send a PNG, test image N or a random test digit to a TF Serving (or `mnistkit serve`) "
        "server and print its answer.",
    )
    p.add_argument("--host", default=None, help="server host (default $TF_MODEL_SERVER_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="server port (default $TF_MODEL_SERVER_PORT or 8500)")
    p.add_argument(
        "--protocol",
        choices=("grpc", "rest"),
        default=None,
        help="default $TF_MODEL_SERVER_PROTOCOL, else rest for port 8501 and grpc otherwise",
    )
    p.add_argument("--model_name", "--model-name", dest="model_name", default="mnist")
    p.add_argument("--signature_name", "--signature-name", dest="signature_name", default="serving_default")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", default=None, help="a PNG of any size (default $TF_MNIST_IMAGE_PATH)")
    src.add_argument(
        "--test-image",
        "--test_image",
        dest="test_image",
        type=int,
        default=None,
        help="test image number N (default $TF_MNIST_TEST_IMAGE_NUMBER; else a random one)",
    )
    p.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        default=None,
        help="data directory (local or s3://) for test images; default the official test set if "
        "present, else the offline sample",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    p.add_argument("--seed", type=int, default=None, help="seed for the random test digit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mnistkit.errors import ConfigError
    from mnistkit.serving.ascii import ascii_art
    from mnistkit.serving.client import ModelClient
    from mnistkit.serving.images import load_png, pick_test_image

    image_path = args.image
    number = args.test_image
    if image_path is None and number is None:
        image_path = os.environ.get("TF_MNIST_IMAGE_PATH") or None
        raw = os.environ.get("TF_MNIST_TEST_IMAGE_NUMBER", "")
        if image_path is None and raw:
            try:
                number = int(raw)
            except ValueError:
                raise ConfigError(
                    f"TF_MNIST_TEST_IMAGE_NUMBER must be a number, got {raw!r}",
                    field="TF_MNIST_TEST_IMAGE_NUMBER",
                    value=raw,
                ) from None
    label: int | None = None
    if image_path:
        image = load_png(image_path)
        where = f"image {image_path}"
    else:
        image, label, n, source = pick_test_image(number, args.data_dir, np.random.default_rng(args.seed))
        where = f"test image {n} of {source}"

    client = ModelClient.from_env(
        host=args.host,
        port=args.port,
        protocol=args.protocol,
        model_name=args.model_name,
        signature_name=args.signature_name,
        timeout=args.timeout,
    )
    with client:
        result = client.predict_one(image)
    print(
        f"Asked {client.protocol} server {client.address} (model {args.model_name}, version "
        f"{result.model_version}) about {where}."
    )
    print("outputs:")
    print(f"  classes: {result.digit}")
    print("  predictions: " + " ".join(f"{i}:{p:.3f}" for i, p in enumerate(result.probabilities)))
    print(ascii_art(image))
    if label is not None:
        print(f"The true label is {label}.")
    print(f"Your model says the above number is... {result.digit}!")
    return 0
