"""Dynamic batching: TF Serving's parameters file, merging and splitting, no wait when idle, a full queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest


from mnistkit.errors import ConfigError
from mnistkit.serving.batching import Batcher, BatchingParameters, parse_batching_parameters, read_batching_parameters
from mnistkit.serving.signature import Signature, TensorInfo
from mnistkit.serving.status import RequestError

_F32 = np.dtype(np.float32)
SIG = Signature(
    "serving_default",
    {"x": TensorInfo("x", _F32, "DT_FLOAT", (None, 2))},
    {"y": TensorInfo("y", _F32, "DT_FLOAT", (None,))},
    None,
)


class FakeModel:
    """Sums each row; records the batch sizes it was called with; can be held inside a call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def run(self, sig: Signature, inputs: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
        self.calls.append(len(inputs["x"]))
        self.entered.set()
        assert self.hold.wait(30)
        return {"y": inputs["x"].sum(axis=1)}


def test_parameters_file_in_tf_servings_text_format(tmp_path: Path) -> None:
    text = """
        max_batch_size { value: 8 }
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 3 }
        num_batch_threads { value: 1 }
        allowed_batch_sizes: 2
        allowed_batch_sizes: 8
        pad_variable_length_inputs: false
    """
    params = parse_batching_parameters(text)
    assert params == BatchingParameters(8, 500, 3, 1, (2, 8))
    (tmp_path / "b.txt").write_text("max_batch_size { value: 4 }")
    assert read_batching_parameters(str(tmp_path / "b.txt")).max_batch_size == 4
    assert read_batching_parameters(None) == BatchingParameters()
    with pytest.raises(ConfigError, match="max_batch_sizes"):
        parse_batching_parameters("max_batch_sizes { value: 4 }")
    with pytest.raises(ConfigError, match="allowed_batch_sizes"):
        parse_batching_parameters("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(ConfigError, match="num_batch_threads"):
        parse_batching_parameters("num_batch_threads { value: 0 }")
    with pytest.raises(ConfigError, match="batching_parameters_file"):
        read_batching_parameters(str(tmp_path / "missing.txt"))


def test_concurrent_requests_are_merged_and_split_back() -> None:
    model = FakeModel()
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    try:
        model.hold.clear()  # the first request holds the model: the others gather meanwhile
        results: dict[int, Any] = {}

        def ask(i: int) -> None:
            results[i] = batcher.run(model, SIG, {"x": np.array([[i, 1.0]], np.float32)}, ["y"])["y"]

        first = threading.Thread(target=ask, args=(100,))
        first.start()
        assert model.entered.wait(30)
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while batcher._rows < 6 and time.monotonic() < deadline:  # all six queued behind the held call
            time.sleep(0.01)
        model.hold.set()
        for t in [first, *threads]:
            t.join(30)
        assert {i: float(v[0]) for i, v in results.items()} == {i: i + 1.0 for i in [100, *range(6)]}
        assert model.calls == [1, 6]
    finally:
        batcher.stop()


def test_a_lone_request_does_not_wait_for_the_timeout() -> None:
    """An idle batcher runs a lone request at once, in the request's own thread (no hand-off)."""
    model = FakeModel()
    threads: list[threading.Thread] = []
    real = model.run
    model.run = lambda *a: (threads.append(threading.current_thread()), real(*a))[1]  # type: ignore[method-assign]
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=20_000_000))
    try:
        t = time.monotonic()
        out = batcher.run(model, SIG, {"x": np.ones((2, 2), np.float32)}, ["y"])
        assert time.monotonic() - t < 10  # the timeout is 20 s: an idle batcher runs at once
        assert out["y"].tolist() == [2.0, 2.0]
        assert threads == [threading.current_thread()]
    finally:
        batcher.stop()


def test_under_load_a_batch_waits_for_as_many_requests_as_the_last_one() -> None:
    """Idle, a batch runs at once only if as many rows wait as the last batch had: concurrent clients
    (answered together, so asking again together) are not split into a lone first request and the rest;
    a batch that the timeout cuts short lowers the expectation, so a lone client is back to no wait."""
    model = FakeModel()
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=30_000_000, num_batch_threads=1))
    try:
        model.hold.clear()
        threads = [threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))]
        threads[0].start()
        assert model.entered.wait(30)
        for _ in range(3):  # three clients ask while the first request runs: one batch of 3 next
            threads.append(
                threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
            )
            threads[-1].start()
        deadline = time.monotonic() + 30
        while batcher._rows < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        model.hold.set()
        for t in threads:
            t.join(30)
        assert model.calls == [1, 3]
        # The three ask again, one after the other: the first two wait (the batcher is idle) for the third.
        again = [
            threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.full((1, 2), i, np.float32)}, ["y"]))
            for i in range(3)
        ]
        for t in again[:2]:
            t.start()
        while batcher._rows < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert model.calls == [1, 3] and batcher._rows == 2  # not run alone: the idle batcher waits for a third
        again[2].start()
        for t in again:
            t.join(30)
        assert model.calls == [1, 3, 3]
    finally:
        model.hold.set()
        batcher.stop()
    # A short timeout: after a batch of 3, a lone request waits at most the timeout, and the next none.
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1))
    try:
        batcher._expected = 3
        batcher.run(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"])  # cut short by the timeout
        assert batcher._expected == 1
    finally:
        batcher.stop()


def test_no_batch_is_empty_when_batch_threads_race() -> None:
    """A batch thread waiting to batch a request that another batch thread took meanwhile starts over:
    it never runs an empty batch."""
    model = FakeModel()
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=300_000, num_batch_threads=2))
    sizes: list[int] = []
    real = batcher._run

    def recording(batch: list[Any]) -> None:
        sizes.append(len(batch))
        real(batch)

    batcher._run = recording  # type: ignore[method-assign]  # the test records each batch's size
    answers: list[float] = []
    try:
        model.hold.clear()
        first = threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
        first.start()
        assert model.entered.wait(30)  # batch thread A runs the first request, held
        second = threading.Thread(
            target=lambda: answers.append(
                float(batcher.run(model, SIG, {"x": np.full((1, 2), 2, np.float32)}, ["y"])["y"][0])
            )
        )
        second.start()
        deadline = time.monotonic() + 30
        while len(batcher._cond._waiters) < 1 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)  # batch thread B waits to batch the second request
        model.hold.set()  # A ends and takes the second request itself
        for t in (first, second):
            t.join(30)
        assert answers == [4.0]
    finally:
        model.hold.set()
        batcher.stop()
    assert sizes and min(sizes) >= 1, sizes


def test_a_failing_completion_callback_does_not_touch_its_batch_mates() -> None:
    """A queued request whose ``done`` callback raises (e.g. its event loop closed) is finished once; its
    batch-mate still gets its own rows, once; the batch thread lives on."""
    from mnistkit.serving.backend import ModelCall

    model = FakeModel()
    batcher = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=30_000_000, num_batch_threads=1))
    calls: list[tuple[str, Any, Any]] = []
    got_second = threading.Event()

    def broken(outputs: Any, error: Any) -> None:
        calls.append(("broken", outputs, error))
        raise RuntimeError("event loop is closed")

    def second(outputs: Any, error: Any) -> None:
        calls.append(("second", outputs, error))
        got_second.set()

    try:
        model.hold.clear()
        lone = threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
        lone.start()
        assert model.entered.wait(30)  # a lone request runs in its own thread and holds the model
        assert batcher.submit(ModelCall(model, SIG, {"x": np.full((1, 2), 2, np.float32)}, ["y"]), broken)
        assert batcher.submit(ModelCall(model, SIG, {"x": np.full((1, 2), 3, np.float32)}, ["y"]), second)
        model.hold.set()  # the two queued requests run as one batch
        lone.join(30)
        assert got_second.wait(30)
        assert [name for name, _, _ in calls] == ["broken", "second"]
        _, outputs, error = calls[1]
        assert error is None and float(outputs["y"][0]) == 6.0
        answer = batcher.run(model, SIG, {"x": np.full((2, 2), 5, np.float32)}, ["y"])  # the thread lives on
        assert answer["y"].tolist() == [10.0, 10.0]
    finally:
        model.hold.set()
        batcher.stop()
    assert model.calls[:2] == [1, 2]


def test_padding_to_allowed_sizes_and_large_requests_alone() -> None:
    model = FakeModel()
    batcher = Batcher(
        BatchingParameters(
            max_batch_size=4, allowed_batch_sizes=(4,), num_batch_threads=1, batch_timeout_micros=200_000
        )
    )
    try:
        model.hold.clear()
        held = threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
        held.start()
        assert model.entered.wait(30)
        outs: list[Any] = []
        pair = [
            threading.Thread(
                target=lambda: outs.append(
                    batcher.run(model, SIG, {"x": np.full((1, 2), 3, np.float32)}, ["y"])["y"].tolist()
                )
            )
            for _ in range(2)
        ]
        for t in pair:
            t.start()
        while batcher._rows < 2:
            time.sleep(0.01)
        model.hold.set()
        for t in [held, *pair]:
            t.join(30)
        assert outs == [[6.0], [6.0]]
        assert model.calls == [1, 4]  # two rows padded to the allowed size 4
        big = batcher.run(model, SIG, {"x": np.ones((5, 2), np.float32)}, ["y"])
        assert len(big["y"]) == 5 and model.calls[-1] == 5  # at least max_batch_size rows: run on its own
    finally:
        batcher.stop()


def test_a_full_queue_is_resource_exhausted() -> None:
    model = FakeModel()
    batcher = Batcher(BatchingParameters(max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1))
    try:
        model.hold.clear()
        t1 = threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
        t1.start()
        assert model.entered.wait(30)
        waiting = [
            threading.Thread(target=batcher.run, args=(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"]))
            for _ in range(2)
        ]
        for t in waiting:
            t.start()
        while batcher._rows < 2:
            time.sleep(0.01)
        with pytest.raises(RequestError) as info:
            batcher.run(model, SIG, {"x": np.ones((1, 2), np.float32)}, ["y"])
        assert info.value.code == "RESOURCE_EXHAUSTED"
        model.hold.set()
        for t in [t1, *waiting]:
            t.join(30)
    finally:
        model.hold.set()
        batcher.stop()


@pytest.mark.slow
def test_server_batches_across_protocols(model_base: Path, sample: Any) -> None:
    """16 concurrent clients (TF Serving gRPC and REST, v2 REST) against a batching server: every answer
    right, bad requests among them answered with their own error, and fewer model calls than requests."""
    from helpers.serving import start_server

    from mnistkit.serving.client import ModelClient

    tritonhttp = pytest.importorskip("tritonclient.http")
    srv = start_server(model_base, batching=BatchingParameters(max_batch_size=16, batch_timeout_micros=5000))
    try:
        model = srv.manager.current
        real, calls = model.run, []

        def counting(*args: Any) -> Any:
            calls.append(len(args[1]["x"]))
            return real(*args)

        model.run = counting
        images = (sample.x_test[:8] / np.float32(255.0)).astype(np.float32)
        with ModelClient(port=srv.grpc_port) as c:
            expected = [p.digit for p in c.predict(images)]
        errors: list[str] = []
        requests, refused = [0], [0]

        def work(i: int) -> None:
            try:
                if i % 3 == 2:
                    h = tritonhttp.InferenceServerClient(f"127.0.0.1:{srv.rest_port}")
                    for j in range(10):
                        inp = tritonhttp.InferInput("x", [1, 28, 28], "FP32")
                        inp.set_data_from_numpy(images[j % 8][None])
                        got = int(h.infer("mnist", [inp]).as_numpy("classes")[0])
                        if got != expected[j % 8]:
                            errors.append(f"v2 {got} != {expected[j % 8]}")
                        requests[0] += 1
                    return
                protocol, port = ("grpc", srv.grpc_port) if i % 3 else ("rest", srv.rest_port)
                bad = ModelClient(port=port, protocol=protocol, timeout=60, signature_name="nope")
                with ModelClient(port=port, protocol=protocol, timeout=60) as c, bad:
                    for j in range(10):
                        if i < 4 and j % 2:  # a bad request among the good ones: its own error only
                            try:
                                bad.predict(images[:1])
                                errors.append(f"{protocol}: unknown signature answered")
                            except RequestError as exc:
                                refused[0] += 1
                                if exc.code not in ("FAILED_PRECONDITION", "INVALID_ARGUMENT"):
                                    errors.append(f"{protocol}: unknown signature got {exc.code}")
                            continue
                        got = c.predict_one(images[j % 8]).digit
                        if got != expected[j % 8]:
                            errors.append(f"{protocol} {got} != {expected[j % 8]}")
                        requests[0] += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert refused[0] == 15 and requests[0] == 145 and sum(calls) >= 145
        # Small REST predicts were checked on the event loop and queued for a batch: no pool thread waited.
        assert srv.backend._pool is None
        # A request of max_batch_size rows runs alone, on the pool (never on the event loop).
        with ModelClient(port=srv.rest_port, protocol="rest") as c:
            many = np.concatenate([images, images])
            assert [p.digit for p in c.predict(many)] == expected + expected
        assert srv.backend._pool is not None and calls[-1] == 16
        assert len(calls) < requests[0] and max(calls) > 1, calls
    finally:
        srv.stop()


def test_serve_command_refuses_a_bad_parameters_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mnistkit.cli import main

    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size { value: 8 }\nbatch_timeout { value: 1 }\n")
    assert main(["serve", "--model_base_path", str(tmp_path), "--batching_parameters_file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "batch_timeout" in err and "Traceback" not in err
