"""Hostile clients: each attack gets a client error in bounded memory, and good requests keep being answered.

Each test prints ``FIGURE attack_<name> rss_growth_mb=... `` (the peak growth of this process, where the
server runs, sampled every few ms during the attack) for RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.serving import start_server

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

_GOOD = np.zeros((1, 28, 28), np.float32)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@contextmanager
def peak_growth() -> Iterator[dict[str, float]]:
    """The peak RSS growth (MB) of this process while the block runs, sampled every 2 ms."""
    base = _rss()
    out = {"mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        peak = base
        while not stop.wait(0.002):
            peak = max(peak, _rss())
        out["mb"] = (max(peak, _rss()) - base) / 1e6

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        stop.set()
        t.join()


def _good_rest(srv: Any) -> None:
    from mnistkit.serving.client import ModelClient

    with ModelClient(port=srv.rest_port, protocol="rest", timeout=30) as c:
        assert c.predict(_GOOD)[0].model_version == 1


def _raw_exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 15.0) -> tuple[int, dict[str, Any], bool]:
    """Send ``head`` (and ``body``), read one answer: (status, JSON body, whether the server then closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        if body:
            try:
                s.sendall(body)
            except OSError:
                pass  # the server refused and closed: what an attacker's body should meet
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"connection closed without an answer to {head[:80]!r}"
            data += chunk
        head_part, rest = data.split(b"\r\n\r\n", 1)
        lines = head_part.split(b"\r\n")
        length = int(next(v for k, _, v in (h.partition(b":") for h in lines[1:]) if k.lower() == b"content-length"))
        while len(rest) < length:
            chunk = s.recv(65536)
            assert chunk
            rest += chunk
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:  # closed with our unread bytes in its buffer: closed all the same
            closed = True
        except TimeoutError:
            closed = False
        return int(lines[0].split()[1]), json.loads(rest[:length]), closed


_FRAMING = [
    ("negative length", b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    ("non-decimal length", b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
    ("plus-signed length", b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: +10\r\n\r\n", 400),
    (
        "duplicate length",
        (b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n"),
        400,
    ),
    ("chunked", b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (
        "gzip transfer",
        (b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"),
        411,
    ),
    ("get with body", b"GET /v1/models/mnist HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 400),
    ("oversize", b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n", 413),
]


@pytest.mark.parametrize("what,head,want", _FRAMING, ids=[c[0] for c in _FRAMING])
def test_rest_refuses_bad_framing_before_reading_the_body(server: Any, what: str, head: bytes, want: int) -> None:
    """Answered from the headers alone (nothing of the body is sent), and the connection closed."""
    status, payload, closed = _raw_exchange(server.rest_port, head)
    assert status == want, (what, payload)
    assert set(payload) == {"error"} and payload["error"], payload
    assert closed, f"{what}: the connection must be dropped, not read to its end"
    _good_rest(server)


def test_rest_negative_length_with_a_huge_body_costs_no_memory(server: Any) -> None:
    """The measured attack: ``Content-Length: -1`` and then 200 MB (the old server read all of it)."""
    head = b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
    body = b"0" * (200 << 20)  # allocated before measuring: this process is both client and server
    with peak_growth() as growth:
        status, _payload, _closed = _raw_exchange(server.rest_port, head, body, timeout=60)
    print(f"\nFIGURE attack_rest_negative_length rss_growth_mb={growth['mb']:.1f} status={status} sent_mb=200")
    assert status == 400
    assert growth["mb"] < 50, growth
    _good_rest(server)


def test_idle_connections_hold_no_threads(server: Any) -> None:
    """1,000 idle connections (the old server held a thread each); good requests are still answered."""
    before = threading.active_count()
    socks = []
    with peak_growth() as growth:
        try:
            for _ in range(1000):
                socks.append(socket.create_connection(("127.0.0.1", server.rest_port), timeout=30))
            socks[-1].sendall(b"GET /v1/models/mnist HTTP/1.1\r\nHost: x\r\n")  # half a request, never finished
            t = time.perf_counter()
            _good_rest(server)
            good_ms = (time.perf_counter() - t) * 1000
            threads = threading.active_count() - before
        finally:
            for s in socks:
                s.close()
    print(
        f"\nFIGURE attack_idle_connections connections=1000 threads_added={threads} "
        f"rss_growth_mb={growth['mb']:.1f} good_request_ms={good_ms:.1f}"
    )
    assert threads <= 20, threads


def test_rest_predictions_run_on_a_fixed_pool(server: Any) -> None:
    """A connection per request (curl, urllib) must not run the model on a new thread each time: TensorFlow
    keeps per-thread state, and the server grew with every connection."""
    import http.client

    names: set[str] = set()
    real = server.backend.runner

    def recording(*args: Any) -> Any:
        names.add(threading.current_thread().name)
        return real(*args)

    server.backend.runner = recording
    body = json.dumps({"instances": _GOOD.tolist()})
    try:
        for _ in range(60):
            conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
            conn.request(
                "POST", "/v1/models/mnist:predict", body, {"Content-Type": "application/json", "Connection": "close"}
            )
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        server.backend.runner = real
    assert all(n.startswith("mnistkit-predict") for n in names), names
    assert len(names) <= server.backend.workers


def _declaring(shape: list[int], n_values: int = 1) -> Any:
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "mnist"
    t = req.inputs["x"]
    t.dtype = 1
    for d in shape:
        t.tensor_shape.dim.add().size = d
    t.float_val.extend([0.5] * n_values)
    return req


def test_grpc_judges_declared_shapes_before_decoding(server: Any) -> None:
    """16 concurrent requests of a few bytes declaring 16M floats: INVALID_ARGUMENT, no memory spent."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_target))
    stub.Predict(_declaring([1, 28, 28], 784), 30)  # connected and warm before measuring
    attacks = [
        _declaring([16777216]),
        _declaring([4096, 64, 64]),
        _declaring([21400, 28, 28]),
        _declaring([1, 28, 28, 16]),
        _declaring([1024, 28, 28, 21]),
    ]
    codes: list[str] = []
    with peak_growth() as growth:
        calls = [stub.Predict.future(attacks[i % len(attacks)], 30) for i in range(16)]
        for call in calls:
            try:
                call.result()
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
                assert "shape" in (exc.details() or "") or "batch" in (exc.details() or ""), exc.details()
    print(f"\nFIGURE attack_grpc_declared_shapes requests=16 rss_growth_mb={growth['mb']:.1f}")
    assert set(codes) == {"INVALID_ARGUMENT"}, codes
    assert growth["mb"] < 50, growth
    assert stub.Predict(_declaring([1, 28, 28], 784), 30).model_spec.version.value == 1


def test_grpc_concurrent_rpcs_are_bounded(model_base: Path) -> None:
    """More calls than ``max_concurrent_rpcs`` in flight: the excess is RESOURCE_EXHAUSTED at once."""
    _assert_rpcs_bounded(start_server(model_base, max_concurrent_rpcs=2, grpc_workers=4, rest_api_port=None), 2)


@pytest.mark.parametrize("n", [1, 3])
def test_serve_max_concurrent_rpcs_flag_bounds_grpc_calls(model_base: Path, n: int) -> None:
    """``mnistkit serve --max-concurrent-rpcs N``: N slow calls in flight, the N+1st is RESOURCE_EXHAUSTED."""
    from mnistkit.cli import build_parser
    from mnistkit.commands.serve import build_server

    from mnistkit.embedded_s3 import free_port

    spelling = "--max-concurrent-rpcs" if n == 1 else "--max_concurrent_rpcs"
    args = build_parser().parse_args(
        ["serve", "--model_base_path", str(model_base), "--port", str(free_port()), "--rest_api_port", "0",
         spelling, str(n)]
    )
    _assert_rpcs_bounded(build_server(args).start(), n)


@pytest.mark.parametrize("value", ["0", "-1", "65537"])
def test_serve_max_concurrent_rpcs_bad_values_name_the_flag(
    value: str, model_base: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnistkit.cli import main

    assert main(["serve", "--model_base_path", str(model_base), "--max-concurrent-rpcs", value]) == 1
    assert f"--max_concurrent_rpcs must be a number of calls from 1 to 65536, got {value}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--model_base_path", str(model_base), "--max-concurrent-rpcs", "many"])
    err = capsys.readouterr().err
    assert "--max_concurrent_rpcs" in err and "'many'" in err  # argparse names the flag and the value


def _assert_rpcs_bounded(srv: Any, n: int) -> None:
    """``n`` calls held inside the model, then one more: RESOURCE_EXHAUSTED; the held ones still answer."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    entered = threading.Semaphore(0)
    release = threading.Event()
    real = srv.backend.runner

    def blocking(*args: Any) -> Any:
        entered.release()
        release.wait(60)
        return real(*args)

    srv.backend.runner = blocking
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(srv.grpc_target))
        held = [stub.Predict.future(_declaring([1, 28, 28], 784), 60) for _ in range(n)]
        assert all(entered.acquire(timeout=30) for _ in range(n))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_declaring([1, 28, 28], 784), 20)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert [f.result().model_spec.version.value for f in held] == [1] * n
    finally:
        release.set()
        srv.stop()


def test_version_names_are_ascii_digits(server: Any, tmp_path: Path) -> None:
    """'²'.isdigit() is true and int('²') raises: a URL or a folder named so is not a version."""
    from mnistkit.versions import is_version_name, local_versions

    assert is_version_name("12") and not is_version_name("²") and not is_version_name("1²")
    assert not is_version_name("١") and not is_version_name("")
    for name in ("1", "²", "3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"x")
    assert local_versions(tmp_path) == [1, 3]
    status, payload, _closed = _raw_exchange(
        server.rest_port, "GET /v1/models/mnist/versions/² HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status == 400 and "version" in payload["error"]


class _FakeModel:
    def __init__(self, version: int) -> None:
        self.version = version


def _s3_manager(store: Any, url: str, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mnistkit.serving import loading
    from mnistkit.serving.manager import ModelManager

    monkeypatch.setattr(loading, "load_model", lambda path, version: _FakeModel(version))
    return ModelManager("mnist", url, s3_config=store.config, cache_dir=cache)


def _publish_fake(client: Any, url: str, version: int, tmp_path: Path) -> None:
    from mnistkit import s3

    src = tmp_path / f"src-{version}"
    src.mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(f"version {version}".encode())
    s3.publish_model_version(client, src, url, version)


def test_s3_versions_failing_download_and_cache_per_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A newest version that fails to download neither blocks the older ones nor is downloaded on every
    poll; '²' is no version on S3 either; two base URLs sharing a cache dir do not share "version 1"."""
    from mnistkit import s3
    from mnistkit.embedded_s3 import EmbeddedS3
    from mnistkit.errors import S3Error

    with EmbeddedS3(bucket="mnist") as store:
        client = s3.make_client(store.config)
        url_a, url_b = "s3://mnist/models/a", "s3://mnist/models/b"
        for v in (1, 2):
            _publish_fake(client, url_a, v, tmp_path / "a")
        _publish_fake(client, url_b, 1, tmp_path / "b")
        client.put_object(Bucket="mnist", Key="models/a/²/saved_model.pb", Body=b"x")
        assert s3.list_model_versions(client, "mnist", "models/a") == [1, 2]

        attempts: list[str] = []
        real_download = s3.download_prefix

        def failing_v2(cl: Any, bucket: str, prefix: str, dest: Any, *a: Any, **k: Any) -> Any:
            attempts.append(prefix)
            if prefix.endswith("/2"):
                raise S3Error("injected: version 2 cannot be read")
            return real_download(cl, bucket, prefix, dest, *a, **k)

        monkeypatch.setattr(s3, "download_prefix", failing_v2)
        cache = tmp_path / "cache"
        a = _s3_manager(store, url_a, cache, monkeypatch)
        for _ in range(4):
            a.poll_once()
        assert a.current is not None and a.current.version == 1
        assert attempts.count("models/a/2") == 1, attempts

        b = _s3_manager(store, url_b, cache, monkeypatch)
        b.poll_once()
        assert b.current is not None and b.current.version == 1
        assert a.local_dir != b.local_dir and a.local_dir.parent == b.local_dir.parent == cache
        assert (b.local_dir / "1" / "saved_model.pb").read_bytes() == b"version 1"
        assert "models/b/1" in attempts


def test_client_visible_errors_carry_no_local_paths(tmp_path: Path) -> None:
    """Load failures reach clients through GetModelStatus, and 'nothing loaded' through every request."""
    from mnistkit.errors import ServingError
    from mnistkit.serving import loading
    from mnistkit.serving.manager import ModelManager
    from mnistkit.serving.status import RequestError

    base = tmp_path / "secret-place" / "mnist"
    (base / "2").mkdir(parents=True)
    (base / "2" / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ServingError) as info:
        loading.load_model(base / "2", 2)
    assert "secret-place" not in str(info.value) and "version 2" in str(info.value)
    manager = ModelManager("mnist", base)
    manager.poll_once()
    with pytest.raises(RequestError) as req:
        manager.get()
    assert "secret-place" not in str(req.value)
    [st] = manager.status(2)
    assert st.error_code != "OK" and "secret-place" not in st.error_message
    with pytest.raises(RequestError) as req:
        ModelManager("mnist", tmp_path / "secret-place" / "empty").status()
    assert "secret-place" not in str(req.value)
