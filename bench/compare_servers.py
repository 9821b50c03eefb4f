"""Two serving builds side by side: ``python -m bench.compare_servers EXPORT_BASE --a DIR --b DIR``.

Not part of ``make bench``: use it to decide whether a serving change helps. Separate runs of
``bench --only serving`` differ by ±0.2 ms p50 on a shared 2-core machine, more than most changes are
worth, so this starts ``mnistkit serve`` from two checkouts (each with ``PYTHONPATH`` set to its
directory and as its working directory, e.g. a ``git worktree`` of the previous commit and this one;
server logs go to a temp directory) and sends batch-N gRPC (or ``--protocol rest``) requests to both, interleaved request by
request with an in-process call of the same SavedModel, so load drift hits all three alike. Prints
p50/p99 and each server's p50 over in-process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import load_predictor, median, percentile
from bench.t_serving import _start_server

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare_servers", description=__doc__.split("\n\n")[0])
    p.add_argument("export_base", help="model base path: a directory holding numeric version dirs")
    p.add_argument("--a", required=True, type=Path, help="checkout serving as A (its directory goes on PYTHONPATH)")
    p.add_argument("--b", required=True, type=Path, help="checkout serving as B")
    p.add_argument("-n", type=int, default=1000, help="measured requests per server (default 1000)")
    p.add_argument("--batch", type=int, default=1, help="images per request (default 1)")
    p.add_argument("--protocol", choices=["grpc", "rest"], default="grpc", help="protocol to compare (default grpc)")
    args = p.parse_args(argv)

    import numpy as np

    from mnistkit.serving.client import ModelClient

    from mnistkit.versions import local_versions

    versions = [Path(args.export_base) / str(v) for v in local_versions(args.export_base)]
    if not versions:
        p.error(f"no numeric version directory under {args.export_base}")
    inproc = load_predictor(versions[-1])
    logs = Path(tempfile.mkdtemp(prefix="mnistkit-compare-"))
    servers = {}
    try:
        for name, checkout in (("A", args.a), ("B", args.b)):
            servers[name] = _start_server(args.export_base, logs / f"{name}.log", checkout.resolve())
        clients = {
            name: ModelClient("127.0.0.1", gport if args.protocol == "grpc" else rport, args.protocol, timeout=5)
            for name, (_p, gport, rport) in servers.items()
        }
        images = np.random.default_rng(0).random((max(64, args.batch), 28, 28), dtype=np.float32)
        calls = {"in-process": inproc, "A": clients["A"].predict, "B": clients["B"].predict}
        keys = list(calls)
        warm = 50 if args.batch == 1 else 5
        lat: dict[str, list[float]] = {k: [] for k in calls}
        for i in range(args.n + warm):
            x = images[i % 64][None] if args.batch == 1 else images[: args.batch]
            for k in keys[i % 3:] + keys[: i % 3]:
                t = time.perf_counter()
                calls[k](x)
                if i >= warm:
                    lat[k].append((time.perf_counter() - t) * 1000)
    finally:
        for proc, _gport, _rport in servers.values():
            proc.terminate()
            proc.wait(10)
    ref = median(lat["in-process"])
    for k, v in lat.items():
        label = {"A": f"A ({args.a})", "B": f"B ({args.b})"}.get(k, k)
        over = "" if k == "in-process" else f"  (+{median(v) - ref:.2f} ms over in-process)"
        print(f"{args.protocol} batch {args.batch}, {args.n} requests, {label}: p50 {median(v):.2f} ms, p99 {percentile(v, 99):.2f} ms{over}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
