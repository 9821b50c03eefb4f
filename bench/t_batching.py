"""Target: dynamic batching (``mnistkit serve --enable_batching``) against the same server without it.

Two ``mnistkit serve`` processes on the same export (the accuracy target's ``bn`` model, or one trained
here), one with TF Serving's ``--enable_batching`` at its default parameters. Throughput of 16 concurrent
clients sending batch-1 requests (threads, one ``ModelClient`` each), gRPC and REST, with p99, in short
rounds that alternate between the two servers; and batch-1 latency
at one client, interleaved request by request so load drift hits both alike. Goals: 16-client throughput
with batching >= 2x without (on both protocols), one-client p50 no worse than +0.2 ms.

Where the time goes, printed beside the figures: CPU seconds per request of the server process and of
the clients (this process), the rows per model call the server logged, and the model's own CPU per row
at batch 1 and 32 called in-process. On 2 cores the clients and the server share the CPU, so the best
ratio batching can give is (clients + server without batching) / (the same with the model's batch-1
cost replaced by its batch-32 cost per row): printed as "bound".
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
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


def _model_cpu_per_row(export_dir: str, batch: int, calls: int) -> float:
    """CPU seconds per row of the served runner (``load_model``) called in-process at ``batch``."""
    import numpy as np

    from mnistkit.serving.loading import load_model

    model = load_model(export_dir)
    sig = model.signature(None)
    x = {"x": np.random.default_rng(0).random((batch, 28, 28), dtype=np.float32)}
    for _ in range(10):
        model.run(sig, x, list(sig.outputs))
    t = time.process_time()
    for _ in range(calls):
        model.run(sig, x, list(sig.outputs))
    return (time.process_time() - t) / calls / batch


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _rows_per_call(log: Path) -> float | None:
    m = re.findall(r"batching: \d+ model calls, ([0-9.]+) rows per call", log.read_text(errors="replace"))
    return float(m[-1]) if m else None


def run(ctx: Context) -> Outcome:
    import numpy as np

    from mnistkit.serving.client import ModelClient

    export_dir, base = _export(ctx)
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    n = 200 if ctx.quick else 1000
    per = 40 if ctx.quick else 150
    servers: dict[str, tuple[Any, int, int]] = {}
    logs = ctx.tmp("batching")
    cpu: dict[str, dict[str, dict[str, float]]] = {}
    try:
        servers["plain"] = _start_server(base, logs / "plain.log")
        servers["batching"] = _start_server(base, logs / "batching.log", extra=["--enable_batching"])
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
        rounds = 2 if ctx.quick else 6
        for proto in ("grpc", "rest"):
            # Short rounds, alternating which server goes first, so load drift hits both alike.
            secs = {k: 0.0 for k in servers}
            lats: dict[str, list[float]] = {k: [] for k in servers}
            used = {k: [0.0, 0.0] for k in servers}
            for i in range(rounds):
                for k in list(servers)[i % 2 :] + list(servers)[: i % 2]:
                    proc, g, r = servers[k]
                    server0, client0 = _cpu(proc.pid), _cpu(os.getpid())
                    rate, errs = _concurrency(g if proto == "grpc" else r, proto, 16, per // rounds, image, lats[k])
                    used[k][0] += _cpu(proc.pid) - server0
                    used[k][1] += _cpu(os.getpid()) - client0
                    secs[k] += 16 * (per // rounds) / rate
                    errors += errs
            for k in servers:
                sent = rounds * 16 * (per // rounds + 1)  # each client's first request connects, outside the clock
                cpu.setdefault(proto, {})[k] = {
                    "server_us": used[k][0] / sent * 1e6,
                    "client_us": used[k][1] / sent * 1e6,
                }
                rps.setdefault(proto, {})[k] = rounds * 16 * (per // rounds) / secs[k]
                p99.setdefault(proto, {})[k] = percentile(lats[k], 99)
            say(
                f"16 clients, batch 1, {proto}: plain {rps[proto]['plain']:.0f} req/s (p99 {p99[proto]['plain']:.1f} "
                f"ms), batching {rps[proto]['batching']:.0f} req/s (p99 {p99[proto]['batching']:.1f} ms)"
            )
    finally:
        for proc, _g, _r in servers.values():
            _stop(proc)
    ratio = {proto: rps[proto]["batching"] / rps[proto]["plain"] for proto in rps}
    m1, m32 = _model_cpu_per_row(export_dir, 1, 300) * 1e6, _model_cpu_per_row(export_dir, 32, 30) * 1e6
    per_call = _rows_per_call(logs / "batching.log")
    say(f"model in-process (the server's runner), CPU per row: batch 1 {m1:.0f} us, batch 32 {m32:.0f} us; "
        f"the batching server made {per_call or 0:.1f} rows per model call")
    bound: dict[str, float] = {}
    for proto, c in cpu.items():
        plain = c["plain"]["server_us"] + c["plain"]["client_us"]
        bound[proto] = plain / max(1.0, plain - m1 + m32)
        say(f"CPU per request, {proto}: server {c['plain']['server_us']:.0f} us plain, "
            f"{c['batching']['server_us']:.0f} us batching; clients {c['plain']['client_us']:.0f} / "
            f"{c['batching']['client_us']:.0f} us; bound for batching on this machine {bound[proto]:.2f}x "
            f"(load {os.getloadavg()[0]:.1f})")
    ok = min(ratio.values()) >= RATIO_GOAL and delta <= LATENCY_MS and errors == 0
    return Outcome(
        "batching",
        f"16 clients batch 1: gRPC {ratio['grpc']:.2f}x (p99 {p99['grpc']['batching']:.1f} ms), REST "
        f"{ratio['rest']:.2f}x (p99 {p99['rest']['batching']:.1f} ms); one client p50 {delta:+.2f} ms; "
        f"{errors} errors; bound here gRPC {bound['grpc']:.2f}x REST {bound['rest']:.2f}x",
        f">= {RATIO_GOAL:g}x on both, one client <= +{LATENCY_MS} ms, 0 errors",
        ok,
        {"rps": rps, "p99_ms": p99, "ratio": ratio, "one_client_p50_ms": p50, "errors": errors, "cpu_us": cpu,
         "model_cpu_us_per_row": {"1": m1, "32": m32}, "rows_per_call": per_call, "bound": bound},
    )
