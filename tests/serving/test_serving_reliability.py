"""Soak: 16 clients mix good and bad requests for ~20 s (``MNISTKIT_SOAK_SECONDS``); nothing good fails.

A quarter of the clients open a connection per request (as curl and most scripts do: the server once grew
with every one of them). Prints ``FIGURE wrong_status=... good_errors=... p99_ms=... rss_growth_mb=...``
for RELIABILITY.md; the growth is from the end of the first quarter (warm) to the end.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from typing import Any

import numpy as np
import pytest


pytestmark = [pytest.mark.slow, pytest.mark.reliability]

GOOD = np.zeros((1, 28, 28), np.float32)
BAD_REST: list[tuple[str, bytes, int]] = [
    ("/v1/models/mnist:predict", json.dumps({"instances": np.zeros((1, 27, 28)).tolist()}).encode(), 400),
    ("/v1/models/mnist:predict", b'{"instances": [[[0.0,', 400),
    ("/v1/models/mnist:predict", b'{"instances": []}', 400),
    ("/v1/models/nope:predict", json.dumps({"instances": GOOD.tolist()}).encode(), 404),
    ("/v1/models/mnist/versions/9:predict", json.dumps({"instances": GOOD.tolist()}).encode(), 404),
]


def test_soak_good_and_bad_requests(server: Any, sample: Any) -> None:
    import grpc

    from mnistkit.serving.client import ModelClient
    from mnistkit.serving.status import RequestError

    seconds = float(os.environ.get("MNISTKIT_SOAK_SECONDS", "20"))
    images = sample.x_test[:4]
    with ModelClient(port=server.grpc_port) as c:
        expected = [p.digit for p in c.predict(images)]
    lock = threading.Lock()
    counts = {"good": 0, "bad": 0, "wrong_status": 0, "good_errors": 0}
    latencies: list[float] = []
    problems: list[str] = []
    deadline = time.monotonic() + seconds

    def note(key: str, detail: str | None = None) -> None:
        with lock:
            counts[key] += 1
            if detail and len(problems) < 20:
                problems.append(detail)

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    rss: dict[str, float] = {}
    warm = threading.Timer(seconds / 4, lambda: rss.setdefault("warm", rss_mb()))
    warm.start()

    def fresh_connection_predict() -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        try:
            conn.request("POST", "/v1/models/mnist:predict", json.dumps({"instances": (images / 255.0).tolist()}),
                         {"Content-Type": "application/json", "Connection": "close"})
            return [p["classes"] for p in json.loads(conn.getresponse().read())["predictions"]]
        finally:
            conn.close()

    def worker(i: int) -> None:
        rng = np.random.default_rng(i)
        protocol, port = ("grpc", server.grpc_port) if i % 2 else ("rest", server.rest_port)
        per_request = i % 4 == 0  # REST with a new connection each time
        client = ModelClient(port=port, protocol=protocol, timeout=30)
        bad_grpc = ModelClient(port=server.grpc_port, model_name="nope", timeout=30)
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
        try:
            while time.monotonic() < deadline:
                if rng.random() < 0.7:
                    t = time.perf_counter()
                    try:
                        got = fresh_connection_predict() if per_request else [p.digit for p in client.predict(images)]
                    except Exception as exc:  # noqa: BLE001 - counted
                        note("good_errors", f"{protocol}: {exc!r}")
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - t)
                    note("good")
                    if got != expected:
                        note("good_errors", f"{protocol}: wrong answer {got}")
                elif protocol == "rest":
                    path, body, want = BAD_REST[int(rng.integers(len(BAD_REST)))]
                    try:
                        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        payload = json.loads(resp.read())
                        status = resp.status
                    except Exception as exc:  # noqa: BLE001
                        conn.close()
                        note("wrong_status", f"rest bad request raised {exc!r}")
                        continue
                    note("bad")
                    if status != want or "error" not in payload:
                        note("wrong_status", f"{path}: {status} != {want}")
                else:
                    try:
                        bad_grpc.predict(GOOD)
                        note("wrong_status", "grpc unknown model answered")
                    except RequestError as exc:
                        note("bad")
                        if exc.code != grpc.StatusCode.NOT_FOUND.name:
                            note("wrong_status", f"grpc: {exc.code}")
        finally:
            client.close()
            bad_grpc.close()
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    warm.join()
    growth = rss_mb() - rss["warm"]
    p99 = float(np.percentile(latencies, 99) * 1000) if latencies else float("nan")
    print(
        f"\nFIGURE wrong_status={counts['wrong_status']} good_errors={counts['good_errors']} "
        f"p99_ms={p99:.1f} good={counts['good']} bad={counts['bad']} clients=16 seconds={seconds:g} "
        f"rss_growth_mb={growth:.1f}"
    )
    assert counts["wrong_status"] == 0, problems
    assert counts["good_errors"] == 0, problems
    assert counts["good"] > 0 and counts["bad"] > 0
    assert growth < 64, f"the server grew {growth:.0f} MB after warm-up"
    # The server still answers afterwards.
    with ModelClient(port=server.rest_port, protocol="rest") as c:
        assert [p.digit for p in c.predict(images)] == expected
