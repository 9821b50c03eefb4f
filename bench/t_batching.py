"""Target: dynamic batching (``mnistkit serve --enable_batching``) against the same server without it.

``mnistkit serve`` processes on the same export (the accuracy target's ``bn`` model, or one trained
here), one with TF Serving's ``--enable_batching`` at its default parameters and one without. Throughput
of 16 concurrent clients sending batch-1 requests, gRPC and REST, with p99, in short rounds that
alternate between the servers, sent two ways: by ``h2load`` (C, ``bench/h2load.py``: the figures of the
target, as they measure the servers rather than the clients) and by 16 threads with one ``ModelClient``
each (the stock Python stack; the target falls back to these without ``h2load``). And batch-1 latency at
one client, interleaved request by request so load drift hits both alike. Goals: 16-client throughput
with batching >= 2x without (on both protocols), one-client p50 no worse than +0.2 ms.

Beside them, the same two servers with ``--tensorflow_intra_op_parallelism=1`` (one thread per op, so
a batch-1 call does not pay for TensorFlow's pool hand-offs): the best this server does without batching,
and what batching adds to it. Those figures are reported; the target compares the defaults, as asked.

And the ceiling: a fifth server, the same one with the model call taken out (``bench.frontend_only``: its
front ends, checks, decoding and responses, answering zeros), in the same rounds. Batching only makes
the model call (and the hand-off to it) cheaper per request, so its throughput over the plain server's
("ceiling") is the most batching could give here. Tighter, from server CPU a request ("bound"): a batched
request costs at least the ceiling server's CPU plus the model's CPU per row at batch 32 (the default
``max_batch_size``; per row, smaller batches cost more), so batching can give at most the plain server's
CPU a request over that sum while the CPU is what limits. When either is under the goal, the outcome says
that the target is out of reach on this machine whatever the batcher does (``out_of_reach`` in the JSON).

Where the time goes, printed beside the figures: CPU per request of each server process, the rows per
model call the servers logged, and the model's own CPU per row at batch 1 and 32 called in-process.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import h2load
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


def _rounds(
    servers: dict[str, tuple[Any, int, int]], proto: str, rounds: int, send: Any
) -> tuple[dict[str, float], dict[str, float], dict[str, float], int]:
    """``rounds`` turns of ``send(port) -> (requests, seconds, latencies, errors)`` on every server, the
    order rotating each turn: requests/s, p99 (ms) and server CPU (us) per request by server, and errors."""
    done = {k: 0 for k in servers}
    secs = {k: 0.0 for k in servers}
    lats: dict[str, list[float]] = {k: [] for k in servers}
    used = {k: 0.0 for k in servers}
    errors = 0
    names = list(servers)
    for i in range(rounds):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            proc, g, r = servers[k]
            before = _cpu(proc.pid)
            count, seconds, latencies, errs = send(g if proto == "grpc" else r)
            used[k] += _cpu(proc.pid) - before
            done[k] += count
            secs[k] += seconds
            lats[k] += latencies
            errors += errs
    rps = {k: done[k] / secs[k] for k in servers}
    return rps, {k: percentile(lats[k], 99) for k in servers}, {k: used[k] / done[k] * 1e6 for k in servers}, errors


def run(ctx: Context) -> Outcome:
    import numpy as np

    from mnistkit.serving.client import ModelClient

    export_dir, base = _export(ctx)
    image = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    n = 200 if ctx.quick else 1000
    per = 40 if ctx.quick else 150
    fast = 2000 if ctx.quick else 6000  # requests per h2load round
    rounds = 2 if ctx.quick else 4
    servers: dict[str, tuple[Any, int, int]] = {}
    logs = ctx.tmp("batching")
    one = ["--tensorflow_intra_op_parallelism=1"]
    flags = {"plain": [], "batching": ["--enable_batching"], "plain-1t": one}
    flags["batching-1t"] = ["--enable_batching", *one]
    rps: dict[str, dict[str, dict[str, float]]] = {"python": {}, "h2load": {}}
    p99: dict[str, dict[str, dict[str, float]]] = {"python": {}, "h2load": {}}
    cpu: dict[str, dict[str, dict[str, float]]] = {"python": {}, "h2load": {}}
    errors = 0
    try:
        for k, extra in flags.items():
            servers[k] = _start_server(base, logs / f"{k}.log", extra=extra)
        servers["model-free"] = _start_server(base, logs / "model-free.log", module=("bench.frontend_only",))
        # one client, batch 1, interleaved
        clients = {k: ModelClient("127.0.0.1", servers[k][1], "grpc") for k in flags}
        lat: dict[str, list[float]] = {k: [] for k in clients}
        for i in range(n + 50):
            for k in list(clients)[i % len(clients) :] + list(clients)[: i % len(clients)]:
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
            f"({delta:+.2f} ms); one intra-op thread: plain {p50['plain-1t']:.2f} ms, batching "
            f"{p50['batching-1t']:.2f} ms"
        )
        bodies = h2load.bodies(image, servers["plain"][1], servers["plain"][2]) if h2load.available() else None
        for proto in ("grpc", "rest"):

            def python_clients(port: int, proto: str = proto) -> tuple[int, float, list[float], int]:
                latencies: list[float] = []
                rate, errs = _concurrency(port, proto, 16, per // rounds, image, latencies)
                return 16 * (per // rounds), 16 * (per // rounds) / rate, latencies, errs

            def c_clients(port: int, proto: str = proto) -> tuple[int, float, list[float], int]:
                assert bodies is not None
                got = h2load.run(port, proto, 16, fast, bodies)
                return fast, fast / got.rps, got.latencies_ms, got.errors

            for kind, send in (("python", python_clients), ("h2load", c_clients)):
                if kind == "h2load" and bodies is None:
                    continue
                r, q, u, errs = _rounds(servers, proto, rounds, send)
                rps[kind][proto], p99[kind][proto], cpu[kind][proto] = r, q, u
                errors += errs
                say(
                    f"16 {kind} clients, batch 1, {proto}: plain {r['plain']:.0f} req/s (p99 {q['plain']:.1f} ms, "
                    f"server {u['plain']:.0f} us CPU each), batching {r['batching']:.0f} req/s (p99 "
                    f"{q['batching']:.1f} ms, {u['batching']:.0f} us) = {r['batching'] / r['plain']:.2f}x; one "
                    f"intra-op thread: plain {r['plain-1t']:.0f} req/s ({u['plain-1t']:.0f} us), batching "
                    f"{r['batching-1t']:.0f} req/s ({u['batching-1t']:.0f} us) = "
                    f"{r['batching-1t'] / r['plain-1t']:.2f}x; ceiling (model call removed) "
                    f"{r['model-free']:.0f} req/s ({u['model-free']:.0f} us) = {r['model-free'] / r['plain']:.2f}x"
                )
    finally:
        for proc, _g, _r in servers.values():
            _stop(proc)
    kind = "h2load" if rps["h2load"] else "python"
    ratio = {proto: rps[kind][proto]["batching"] / rps[kind][proto]["plain"] for proto in ("grpc", "rest")}
    ceiling = {proto: rps[kind][proto]["model-free"] / rps[kind][proto]["plain"] for proto in ("grpc", "rest")}
    m1, m32 = _model_cpu_per_row(export_dir, 1, 300) * 1e6, _model_cpu_per_row(export_dir, 32, 30) * 1e6
    per_call = {k: _rows_per_call(logs / f"{k}.log") for k in ("batching", "batching-1t")}
    say(
        f"model in-process (the server's runner), CPU per row: batch 1 {m1:.0f} us, batch 32 {m32:.0f} us; "
        f"rows per model call: {per_call['batching'] or 0:.1f} batching, {per_call['batching-1t'] or 0:.1f} with "
        f"one intra-op thread (load {os.getloadavg()[0]:.1f})"
    )
    if not rps["h2load"]:
        say("h2load not installed (apt-get install nghttp2-client): the target uses the Python clients' figures")
    ok = min(ratio.values()) >= RATIO_GOAL and delta <= LATENCY_MS and errors == 0
    bound = {p: cpu[kind][p]["plain"] / (cpu[kind][p]["model-free"] + m32) for p in ("grpc", "rest")}
    say(
        "bound from server CPU a request, plain / (model call removed + the model's batch-32 CPU a row): "
        + ", ".join(
            f"{p} {cpu[kind][p]['plain']:.0f} / ({cpu[kind][p]['model-free']:.0f} + {m32:.0f}) = {bound[p]:.2f}x"
            for p in ("grpc", "rest")
        )
    )
    out_of_reach = [p for p in ("grpc", "rest") if min(ceiling[p], bound[p]) < RATIO_GOAL and ratio[p] < RATIO_GOAL]
    if out_of_reach:
        say(
            f"out of reach here on {', '.join(out_of_reach)} ({kind} clients): even without the model, or with "
            f"every request in a batch of 32, the server would serve under {RATIO_GOAL:g}x the plain one, so no "
            f"batching can reach {RATIO_GOAL:g}x on this machine"
        )
    reach = f" (out of reach on {', '.join(out_of_reach)})" if out_of_reach else ""
    return Outcome(
        "batching",
        f"16 {kind} clients batch 1: gRPC {ratio['grpc']:.2f}x (p99 {p99[kind]['grpc']['batching']:.1f} ms), REST "
        f"{ratio['rest']:.2f}x (p99 {p99[kind]['rest']['batching']:.1f} ms); ceiling with the model call removed: "
        f"gRPC {ceiling['grpc']:.2f}x, REST {ceiling['rest']:.2f}x; bound from CPU: gRPC {bound['grpc']:.2f}x, REST "
        f"{bound['rest']:.2f}x{reach}; one client p50 {delta:+.2f} ms; "
        f"{errors} errors",
        f">= {RATIO_GOAL:g}x on both, one client <= +{LATENCY_MS} ms, 0 errors",
        ok,
        {
            "rps": rps,
            "p99_ms": p99,
            "server_cpu_us": cpu,
            "ratio": ratio,
            "ceiling": ceiling,
            "bound": bound,
            "out_of_reach": out_of_reach,
            "clients": kind,
            "one_client_p50_ms": p50,
            "errors": errors,
            "model_cpu_us_per_row": {"1": m1, "32": m32},
            "rows_per_call": per_call,
        },
    )
