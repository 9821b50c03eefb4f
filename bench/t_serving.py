"""Target 3: serving latency and throughput against calling the SavedModel in-process.

The server is ``python -m mnistkit serve`` in its own process (as TF Serving would be), the clients are
``ModelClient`` (gRPC and REST) in this one; the reference is the same SavedModel's ``serving_default``
called in this process (eager, as a user would). Batch 1, after warm-up, they are interleaved request by
request (1,000 each) so load drift hits all alike. Also interleaved, for transparency: the server's own
model runner (``mnistkit.serving.loading.load_model``, a prepared Session callable) called in this
process, so the report shows both what serving costs over a plain call and what the transport alone
adds. Goals: gRPC p50 <= in-process p50 + 1.0 ms, REST p50 <= in-process p50 + 1.5 ms; p99 reported. Then throughput with 1, 4 and 16 concurrent clients (threads, one client
each; errors counted) and batch-64 throughput in images/s against in-process batch 64 (goal >= 0.8x on
gRPC; REST reported).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Context,
    Outcome,
    load_predictor,
    median,
    percentile,
    py_env,
    say,
)

__all__ = ["run"]

GRPC_MS, REST_MS, BATCH_GOAL = 1.0, 1.5, 0.8


def _export(ctx: Context) -> tuple[str, str]:
    if "export_dir" not in ctx.shared:
        from bench import t_accuracy

        say("no export from the accuracy target: training a cnn for 1 epoch for serving")
        t_accuracy.train_export(ctx, 1)
    return ctx.shared["export_dir"], ctx.shared["export_base"]


def _start_server(
    base: str, log_path: Any, checkout: Path = ROOT, extra: Sequence[str] = (), module: Sequence[str] = ("mnistkit", "serve")
) -> tuple[Any, int, int]:
    """``mnistkit serve`` from ``checkout`` on free ports, once it answers: (process, gRPC port, REST port).

    ``extra``: more ``mnistkit serve`` flags (``--enable_batching``). ``module``: what ``python -m`` runs
    instead (``bench.frontend_only``, which takes ``mnistkit serve``'s flags).

    The checkout is both the working directory and ``PYTHONPATH``, because ``python -m`` puts the working
    directory first: another checkout's server runs that checkout's code (``bench.compare_servers``).
    """
    import sys

    from mnistkit.embedded_s3 import free_port
    from mnistkit.serving.client import ModelClient

    gport, rport = free_port(), free_port()
    env = py_env()
    if checkout != ROOT:
        env["PYTHONPATH"] = str(checkout)  # that tree's mnistkit only, not this one's
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", *module, f"--model_base_path={base}",
                             f"--port={gport}", f"--rest_api_port={rport}", *extra], cwd=checkout, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    with ModelClient("127.0.0.1", rport, "rest", timeout=2) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(log_path).read_text()[-800:]}")
            try:
                c.predict_one([[0.0] * 28] * 28)
                return proc, gport, rport
            except Exception:  # noqa: BLE001 - not up yet: any failure means retry
                time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not answer within 120 s")


def _concurrency(
    port: int, protocol: str, clients: int, per_client: int, image: Any, latencies: list[float] | None = None
) -> tuple[float, int]:
    """Requests/s and errors of ``clients`` threads sending ``per_client`` requests each (latencies in ms
    appended to ``latencies`` if given)."""
    from mnistkit.serving.client import ModelClient

    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def work() -> None:
        with ModelClient("127.0.0.1", port, protocol) as c:
            c.predict(image)  # connect before the clock starts
            barrier.wait()
            for _ in range(per_client):
                t = time.perf_counter()
                try:
                    c.predict(image)
                except Exception:  # noqa: BLE001 - counted: the figure is the error count
                    with lock:
                        errors[0] += 1
                if latencies is not None:
                    latencies.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * per_client / (time.perf_counter() - t0), errors[0]


def run(ctx: Context) -> Outcome:
    import numpy as np

    from mnistkit.serving.client import ModelClient

    export_dir, base = _export(ctx)
    n = 200 if ctx.quick else 1000
    rng = np.random.default_rng(0)
    images = rng.random((64, 28, 28), dtype=np.float32)
    inproc = load_predictor(export_dir)
    from mnistkit.serving.loading import load_model

    runner = load_model(export_dir)
    proc, gport, rport = _start_server(base, ctx.tmp("serving") / "server.log")
    try:
        with ModelClient("127.0.0.1", gport, "grpc") as g, ModelClient("127.0.0.1", rport, "rest") as r:
            calls = {"in-process": lambda x: inproc(x), "grpc": g.predict, "rest": r.predict,
                     "runner": lambda x: runner.predict(None, {"x": x})}
            lat: dict[str, list[float]] = {k: [] for k in calls}
            for i in range(n + 50):  # the first 50 rounds are warm-up
                order = list(calls)[i % 4:] + list(calls)[: i % 4]
                for k in order:
                    x = images[i % 64][None]
                    t = time.perf_counter()
                    calls[k](x)
                    if i >= 50:
                        lat[k].append((time.perf_counter() - t) * 1000)
            p = {k: (median(v), percentile(v, 99)) for k, v in lat.items()}
            for k, (p50, p99) in p.items():
                say(f"batch 1, {n} requests, {k:10s}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            dg, dr = p["grpc"][0] - p["in-process"][0], p["rest"][0] - p["in-process"][0]
            say(f"over in-process p50: gRPC +{dg:.2f} ms (goal <= +{GRPC_MS}), REST +{dr:.2f} ms (goal <= +{REST_MS})")
            tg, tr = p["grpc"][0] - p["runner"][0], p["rest"][0] - p["runner"][0]
            say(f"over the server's runner in-process ({p['runner'][0]:.2f} ms), i.e. transport and request "
                f"handling alone: gRPC +{tg:.2f} ms, REST +{tr:.2f} ms")

            # batch 64, interleaved
            reps = 20 if ctx.quick else 60
            bt: dict[str, list[float]] = {k: [] for k in calls if k != "runner"}
            for i in range(reps + 3):
                for k in bt:
                    t = time.perf_counter()
                    calls[k](images)
                    if i >= 3:
                        bt[k].append(time.perf_counter() - t)
            ips = {k: 64 / median(v) for k, v in bt.items()}
            b_ratio = {k: ips[k] / ips["in-process"] for k in ("grpc", "rest")}
            say(f"batch 64: in-process {ips['in-process']:.0f} images/s, gRPC {ips['grpc']:.0f} "
                f"({b_ratio['grpc']:.2f}x), REST {ips['rest']:.0f} ({b_ratio['rest']:.2f}x)")

        conc: dict[str, dict[int, dict[str, float]]] = {"grpc": {}, "rest": {}}
        per = 40 if ctx.quick else 150
        total_errors = 0
        for clients in (1, 4, 16):
            for proto, port in (("grpc", gport), ("rest", rport)):
                rps, errs = _concurrency(port, proto, clients, max(10, per * 4 // clients), images[0][None])
                conc[proto][clients] = {"rps": rps, "errors": errs}
                total_errors += errs
            say(f"{clients:2d} concurrent clients, batch 1: gRPC {conc['grpc'][clients]['rps']:.0f} req/s "
                f"({conc['grpc'][clients]['errors']:.0f} errors), REST {conc['rest'][clients]['rps']:.0f} req/s "
                f"({conc['rest'][clients]['errors']:.0f} errors)")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    ok = dg <= GRPC_MS and dr <= REST_MS and b_ratio["grpc"] >= BATCH_GOAL and total_errors == 0
    return Outcome(
        "serving",
        f"gRPC p50 +{dg:.2f} ms (p99 {p['grpc'][1]:.2f}), REST p50 +{dr:.2f} ms (p99 {p['rest'][1]:.2f}) over "
        f"in-process {p['in-process'][0]:.2f} ms; batch 64 gRPC {b_ratio['grpc']:.2f}x REST {b_ratio['rest']:.2f}x; "
        f"{total_errors} errors at 1/4/16 clients",
        f"gRPC <= +{GRPC_MS} ms, REST <= +{REST_MS} ms, batch 64 >= {BATCH_GOAL}x, 0 errors",
        ok,
        {"p50_p99_ms": p, "grpc_delta_ms": dg, "rest_delta_ms": dr, "grpc_transport_ms": tg,
         "rest_transport_ms": tr, "batch64_images_s": ips,
         "batch64_ratio": b_ratio, "concurrency": conc},
    )
