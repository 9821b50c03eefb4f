"""Target: dynamic batching (``mnistkit serve --enable_batching``) against the same server without it.

Two ``mnistkit serve`` processes on the same export (the accuracy target's cnn, or one trained here), one
with TF Serving's ``--enable_batching`` at its default parameters. Throughput of 16 concurrent clients
sending batch-1 requests (threads, one ``ModelClient`` each), gRPC and REST, with p99; and batch-1 latency
at one client, interleaved request by request so load drift hits both alike. Goals: 16-client throughput
with batching >= 2x without (on both protocols), one-client p50 no worse than +0.2 ms.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench.common import Context, Outcome, median, percentile, say
from bench.t_serving import _concurrency, _export, _start_server

__all__ = ["run"]

RATIO_GOAL, LATENCY_MS = 2.0, 0.2


def _stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def run(ctx: Context) -> Outcome:
    import numpy as np

    from mnistkit.serving.client import ModelClient

    _export_dir, base = _export(ctx)
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    n = 200 if ctx.quick else 1000
    per = 40 if ctx.quick else 150
    servers: dict[str, tuple[Any, int, int]] = {}
    try:
        servers["plain"] = _start_server(base, ctx.tmp("batching") / "plain.log")
        servers["batching"] = _start_server(base, ctx.tmp("batching") / "batching.log", extra=["--enable_batching"])
        # one client, batch 1, interleaved
        clients = {k: ModelClient("127.0.0.1", g, "grpc") for k, (_p, g, _r) in servers.items()}
        lat: dict[str, list[float]] = {k: [] for k in clients}
        for i in range(n + 50):
            for k in list(clients)[i % 2 :] + list(clients)[: i % 2]:
                t = time.perf_counter()
                clients[k].predict(image)
                if i >= 50:
                    lat[k].append((time.perf_counter() - t) * 1000)
        for c in clients.values():
            c.close()
        p50 = {k: median(v) for k, v in lat.items()}
        delta = p50["batching"] - p50["plain"]
        say(
            f"one client, batch 1, gRPC p50: plain {p50['plain']:.2f} ms, batching {p50['batching']:.2f} ms "
            f"({delta:+.2f} ms)"
        )
        rps: dict[str, dict[str, float]] = {}
        p99: dict[str, dict[str, float]] = {}
        errors = 0
        for proto in ("grpc", "rest"):
            for k, (_p, g, r) in servers.items():
                lats: list[float] = []
                rate, errs = _concurrency(g if proto == "grpc" else r, proto, 16, per, image, lats)
                rps.setdefault(proto, {})[k] = rate
                p99.setdefault(proto, {})[k] = percentile(lats, 99)
                errors += errs
            say(
                f"16 clients, batch 1, {proto}: plain {rps[proto]['plain']:.0f} req/s (p99 {p99[proto]['plain']:.1f} "
                f"ms), batching {rps[proto]['batching']:.0f} req/s (p99 {p99[proto]['batching']:.1f} ms)"
            )
    finally:
        for proc, _g, _r in servers.values():
            _stop(proc)
    ratio = {proto: rps[proto]["batching"] / rps[proto]["plain"] for proto in rps}
    ok = min(ratio.values()) >= RATIO_GOAL and delta <= LATENCY_MS and errors == 0
    return Outcome(
        "batching",
        f"16 clients batch 1: gRPC {ratio['grpc']:.2f}x (p99 {p99['grpc']['batching']:.1f} ms), REST "
        f"{ratio['rest']:.2f}x (p99 {p99['rest']['batching']:.1f} ms); one client p50 {delta:+.2f} ms; "
        f"{errors} errors",
        f">= {RATIO_GOAL:g}x on both, one client <= +{LATENCY_MS} ms, 0 errors",
        ok,
        {"rps": rps, "p99_ms": p99, "ratio": ratio, "one_client_p50_ms": p50, "errors": errors},
    )
