"""The TF-Serving-protocol server against a model trained by the trainer code: gRPC, REST, versions, errors."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.serving import POLL, start_server

pytestmark = pytest.mark.slow


def _rest(srv: Any, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.rest_port, timeout=30)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"null")
        return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def _grpc_request(x: np.ndarray, *, name: str = "mnist", version: int | None = None, signature: str = "serving_default",
                  key: str = "x") -> Any:
    from tensorflow_serving.apis import predict_pb2

    import tensorflow as tf

    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    req.inputs[key].CopyFrom(tf.make_tensor_proto(x))
    return req


def _stub(srv: Any) -> Any:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(srv.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)])
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _images(sample: Any, n: int) -> np.ndarray:
    return (sample.x_test[:n] / np.float32(255.0)).astype(np.float32)


# -- predictions ------------------------------------------------------------------------------------------


def test_grpc_predict_with_tf_client_is_accurate(server: Any, sample: Any) -> None:
    import tensorflow as tf

    x = _images(sample, 500)
    res = _stub(server).Predict(_grpc_request(x), 30.0)
    assert res.model_spec.name == "mnist"
    assert res.model_spec.version.value == 1
    assert res.model_spec.signature_name == "serving_default"
    classes = tf.make_ndarray(res.outputs["classes"])
    probs = tf.make_ndarray(res.outputs["predictions"])
    assert classes.dtype == np.uint8 and classes.shape == (500,)
    assert probs.dtype == np.float32 and probs.shape == (500, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (classes == probs.argmax(axis=1)).all()
    # The 2018 client reads int_val directly: TF Serving fills the typed fields.
    assert list(res.outputs["classes"].int_val[:5]) == classes[:5].tolist()
    accuracy = float((classes == sample.y_test[:500]).mean())
    assert accuracy > 0.7, accuracy


def test_rest_row_and_columnar_formats(server: Any, sample: Any) -> None:
    x = _images(sample, 20)
    status, rows, headers = _rest(server, "POST", "/v1/models/mnist:predict", {"instances": x.tolist()})
    assert status == 200, rows
    assert headers["content-type"] == "application/json"
    preds = rows["predictions"]
    assert len(preds) == 20 and set(preds[0]) == {"classes", "predictions"}
    assert all(isinstance(p["classes"], int) for p in preds)
    assert len(preds[0]["predictions"]) == 10

    status, cols, _ = _rest(server, "POST", "/v1/models/mnist/versions/1:predict", {"inputs": {"x": x.tolist()}})
    assert status == 200, cols
    assert cols["outputs"]["classes"] == [p["classes"] for p in preds]
    np.testing.assert_allclose(cols["outputs"]["predictions"], [p["predictions"] for p in preds], rtol=1e-5)

    # Named instances and an unnamed columnar value are the same request.
    status, named, _ = _rest(server, "POST", "/v1/models/mnist:predict", {"instances": [{"x": r} for r in x.tolist()]})
    assert status == 200 and [p["classes"] for p in named["predictions"]] == cols["outputs"]["classes"]
    status, bare, _ = _rest(server, "POST", "/v1/models/mnist:predict", {"inputs": x.tolist()})
    assert status == 200 and bare["outputs"]["classes"] == cols["outputs"]["classes"]
    accuracy = np.mean(np.array(cols["outputs"]["classes"]) == sample.y_test[:20])
    assert accuracy > 0.6


def test_model_client_both_protocols_agree(server: Any, sample: Any) -> None:
    from mnistkit.serving.client import ModelClient, Prediction

    images = sample.x_test[:50]  # uint8: the client scales it
    with ModelClient(port=server.grpc_port) as g, ModelClient(port=server.rest_port, protocol="rest") as r:
        pg, pr = g.predict(images), r.predict(images)
        one = g.predict_one(images[0] / 255.0)
    assert len(pg) == len(pr) == 50
    assert all(isinstance(p, Prediction) for p in pg)
    assert [p.digit for p in pg] == [p.digit for p in pr]
    assert {p.model_version for p in pg + pr} == {1}
    np.testing.assert_allclose([p.probabilities for p in pg], [p.probabilities for p in pr], atol=1e-3)
    assert len(pg[0].probabilities) == 10 and abs(sum(pg[0].probabilities) - 1) < 1e-4
    assert one.digit == pg[0].digit
    assert np.mean([p.digit for p in pg] == sample.y_test[:50]) > 0.6


def test_status_and_metadata_shapes(server: Any) -> None:
    from mnistkit.serving.client import ModelClient

    status, body, _ = _rest(server, "GET", "/v1/models/mnist")
    assert status == 200
    assert body == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert _rest(server, "GET", "/v1/models/mnist/versions/1")[1] == body
    with ModelClient(port=server.grpc_port) as g:
        assert g.status() == body
        grpc_meta = g.metadata()

    status, meta, _ = _rest(server, "GET", "/v1/models/mnist/metadata")
    assert status == 200
    assert meta["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["x"]["tensor_shape"]["dim"]] == ["-1", "28", "28"]
    assert sig["outputs"]["classes"]["dtype"] == "DT_UINT8"
    assert [d["size"] for d in sig["outputs"]["classes"]["tensor_shape"]["dim"]] == ["-1"]
    assert sig["outputs"]["predictions"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["outputs"]["predictions"]["tensor_shape"]["dim"]] == ["-1", "10"]
    assert grpc_meta["metadata"]["signature_def"] == meta["metadata"]["signature_def"]
    assert grpc_meta["model_spec"]["version"] == "1"


# -- bad requests -----------------------------------------------------------------------------------------

_GOOD = np.zeros((1, 28, 28), np.float32)


def _oversized_rest(srv: Any) -> tuple[int, Any]:
    # Announce a 9 MiB body and send none of it: the server must answer from the header alone.
    with socket.create_connection(("127.0.0.1", srv.rest_port), timeout=30) as s:
        s.sendall(
            b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 9437184\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            [h for h in data.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1]
        ):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


REST_BAD: list[tuple[str, str, Any, int]] = [
    ("wrong shape", "/v1/models/mnist:predict", {"instances": np.zeros((1, 27, 28)).tolist()}, 400),
    ("wrong dtype", "/v1/models/mnist:predict", {"instances": [[["a"] * 28] * 28]}, 400),
    ("ragged", "/v1/models/mnist:predict", {"instances": [[[0.0] * 28] * 27 + [[0.0] * 5]]}, 400),
    ("nan", "/v1/models/mnist:predict", b'{"instances": [' + json.dumps([[0.0] * 28] * 27 + [[float("nan")] * 28]).encode() + b"]}", 400),
    ("inf", "/v1/models/mnist:predict", b'{"inputs": [' + json.dumps([[0.0] * 28] * 27 + [[float("inf")] * 28]).encode() + b"]}", 400),
    ("empty batch", "/v1/models/mnist:predict", {"instances": []}, 400),
    ("empty columnar", "/v1/models/mnist:predict", {"inputs": {"x": []}}, 400),
    ("batch too large", "/v1/models/mnist:predict", {"instances": np.zeros((1025, 28, 28), np.uint8).tolist()}, 400),
    ("unknown model", "/v1/models/nope:predict", {"instances": _GOOD.tolist()}, 404),
    ("unknown version", "/v1/models/mnist/versions/7:predict", {"instances": _GOOD.tolist()}, 404),
    ("unknown signature", "/v1/models/mnist:predict", {"signature_name": "nope", "instances": _GOOD.tolist()}, 400),
    ("unknown input", "/v1/models/mnist:predict", {"inputs": {"y": _GOOD.tolist()}}, 400),
    ("malformed json", "/v1/models/mnist:predict", b'{"instances": [[[0.0, ', 400),
    ("deeply nested json", "/v1/models/mnist:predict", b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400),
    ("not an object", "/v1/models/mnist:predict", b"[1, 2]", 400),
    ("both formats", "/v1/models/mnist:predict", {"instances": _GOOD.tolist(), "inputs": _GOOD.tolist()}, 400),
    ("neither format", "/v1/models/mnist:predict", {"signature_name": "serving_default"}, 400),
    ("bad route", "/v2/models/mnist:predict", {"instances": _GOOD.tolist()}, 404),
    ("bad verb", "/v1/models/mnist:explain", {"instances": _GOOD.tolist()}, 501),
]


@pytest.mark.parametrize("what,path,body,want", REST_BAD, ids=[c[0] for c in REST_BAD])
def test_rest_bad_requests(server: Any, what: str, path: str, body: Any, want: int) -> None:
    raw = body if isinstance(body, bytes) else None
    status, payload, _ = _rest(server, "POST", path, None if raw else body, raw=raw)
    assert status == want, (what, payload)
    assert isinstance(payload, dict) and set(payload) == {"error"} and payload["error"], payload
    ok, good, _ = _rest(server, "POST", "/v1/models/mnist:predict", {"instances": _GOOD.tolist()})
    assert ok == 200 and len(good["predictions"]) == 1


def test_rest_status_errors_and_oversized_body(server: Any) -> None:
    assert _rest(server, "GET", "/v1/models/nope")[0] == 404
    assert _rest(server, "GET", "/v1/models/mnist/versions/9")[0] == 404
    assert _rest(server, "GET", "/v1/models/mnist/versions/9/metadata")[0] == 404
    assert _rest(server, "GET", "/v1/models/mnist/versions/x")[0] == 400
    status, payload = _oversized_rest(server)
    assert status == 413 and "exceeds" in payload["error"]
    assert _rest(server, "POST", "/v1/models/mnist:predict", {"instances": _GOOD.tolist()})[0] == 200


def _grpc_cases() -> list[tuple[str, Any, str]]:
    big = np.zeros((3000, 28, 28), np.float32)  # 9.4 MB: over the 8 MiB message limit
    nan = _GOOD.copy()
    nan[0, 3, 3] = np.nan
    return [
        ("wrong shape", lambda: _grpc_request(np.zeros((1, 28, 27), np.float32)), "INVALID_ARGUMENT"),
        ("wrong dtype", lambda: _grpc_request(np.zeros((1, 28, 28), np.float64)), "INVALID_ARGUMENT"),
        ("nan", lambda: _grpc_request(nan), "INVALID_ARGUMENT"),
        ("empty batch", lambda: _grpc_request(np.zeros((0, 28, 28), np.float32)), "INVALID_ARGUMENT"),
        ("batch too large", lambda: _grpc_request(np.zeros((1025, 28, 28), np.float32)), "INVALID_ARGUMENT"),
        ("oversized", lambda: _grpc_request(big), "RESOURCE_EXHAUSTED"),
        ("unknown model", lambda: _grpc_request(_GOOD, name="nope"), "NOT_FOUND"),
        ("unknown version", lambda: _grpc_request(_GOOD, version=7), "NOT_FOUND"),
        ("unknown signature", lambda: _grpc_request(_GOOD, signature="nope"), "FAILED_PRECONDITION"),
        ("unknown input", lambda: _grpc_request(_GOOD, key="y"), "INVALID_ARGUMENT"),
    ]


def test_grpc_bad_requests(server: Any) -> None:
    import grpc

    stub = _stub(server)
    for what, make, want in _grpc_cases():
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(make(), 30.0)
        assert info.value.code().name == want, (what, info.value.details())
        assert info.value.details(), what
        assert stub.Predict(_grpc_request(_GOOD), 30.0).model_spec.version.value == 1, what


def test_grpc_status_errors(server: Any) -> None:
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc

    channel = grpc.insecure_channel(server.grpc_target)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as info:
        models.GetModelStatus(req, 10.0)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = "mnist"
    meta.metadata_field.append("nonsense")
    with pytest.raises(grpc.RpcError) as info:
        _stub(server).GetModelMetadata(meta, 10.0)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_client_errors_are_serving_errors(server: Any) -> None:
    from mnistkit.errors import ServingError
    from mnistkit.serving.client import ModelClient
    from mnistkit.serving.status import RequestError

    for protocol, port in (("grpc", server.grpc_port), ("rest", server.rest_port)):
        with ModelClient(port=port, protocol=protocol, model_name="nope") as c:
            with pytest.raises(RequestError) as info:
                c.predict(_GOOD)
            assert info.value.code == "NOT_FOUND" and "nope" in str(info.value)
        with ModelClient(port=port, protocol=protocol, signature_name="nope") as c:
            with pytest.raises(ServingError, match="nope"):
                c.predict(_GOOD)
    with pytest.raises(ServingError, match=r"\[0, 1\]"):
        ModelClient(port=server.rest_port, protocol="rest").predict(np.full((28, 28), 3.0))


def test_logs_hold_no_request_bodies(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    marker = 0.123456789
    x = np.full((1, 28, 28), marker).tolist()
    with caplog.at_level(logging.DEBUG, logger="mnistkit"):
        _rest(server, "POST", "/v1/models/mnist:predict", {"instances": x})
        _rest(server, "POST", "/v1/models/mnist:predict", raw=b'{"instances": "secret-body-0.123456789"')
    assert "0.123456" not in caplog.text
    assert "secret-body" not in caplog.text


# -- concurrency ------------------------------------------------------------------------------------------


def test_sixteen_concurrent_clients(server: Any, sample: Any) -> None:
    from mnistkit.serving.client import ModelClient

    images = sample.x_test[:8]
    with ModelClient(port=server.grpc_port) as c:
        expected = [p.digit for p in c.predict(images)]
    errors: list[str] = []
    done = []
    barrier = threading.Barrier(16)

    def work(i: int) -> None:
        protocol, port = ("grpc", server.grpc_port) if i % 2 else ("rest", server.rest_port)
        try:
            with ModelClient(port=port, protocol=protocol, timeout=60) as c:
                barrier.wait(30)
                for _ in range(10):
                    got = [p.digit for p in c.predict(images)]
                    if got != expected:
                        errors.append(f"client {i}: {got} != {expected}")
                    done.append(1)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(f"client {i}: {exc!r}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(done) == 160


# -- versions ---------------------------------------------------------------------------------------------


def _wait(pred: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_hot_loads_new_version_without_failed_requests(tmp_path: Path, exported_model: Path) -> None:
    from trainer.export import publish_local

    from mnistkit.serving.client import ModelClient

    base = tmp_path / "models" / "mnist"
    publish_local(exported_model, base, 1)
    srv = start_server(base)
    stop = threading.Event()
    # (protocol, thread, sent, answered, version): two threads per protocol, so the order of answers
    # across threads is not the order of requests; a request sent just before the swap may answer
    # version 1 after another thread's later request answered version 2, as in TF Serving.
    seen: list[tuple[str, int, float, float, int]] = []
    errors: list[str] = []

    def hammer(protocol: str, port: int) -> None:
        me = threading.get_ident()
        with ModelClient(port=port, protocol=protocol) as c:
            while not stop.is_set():
                try:
                    sent = time.monotonic()
                    version = c.predict(_GOOD)[0].model_version
                    seen.append((protocol, me, sent, time.monotonic(), version))
                except Exception as exc:  # noqa: BLE001
                    errors.append(repr(exc))

    try:
        threads = [threading.Thread(target=hammer, args=a) for a in (("grpc", srv.grpc_port), ("rest", srv.rest_port)) * 2]
        for t in threads:
            t.start()
        assert _wait(lambda: len(seen) > 20)
        (base / ".tmp-junk").mkdir()  # non-numeric dirs are ignored
        publish_local(exported_model, base, 2)
        assert srv.wait_for_version(2, timeout=60)  # four busy clients share the GIL with the loader
        n = len(seen)
        assert _wait(lambda: len(seen) > n + 20)
        stop.set()
        for t in threads:
            t.join(30)
        assert errors == []
        for protocol in ("grpc", "rest"):
            assert {v for p, _, _, _, v in seen if p == protocol} == {1, 2}
        for thread in {t for _, t, _, _, _ in seen}:
            mine = [v for _, t, _, _, v in seen if t == thread]
            assert mine == sorted(mine), "within one client, version 1 never answers after version 2"
        first_v2 = min(answered for *_, answered, v in seen if v == 2)
        late_v1 = [(p, sent - first_v2) for p, _, sent, _, v in seen if v == 1 and sent > first_v2]
        assert late_v1 == [], "a request sent after version 2 answered must not get version 1"
        status = ModelClient(port=srv.rest_port, protocol="rest").status()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"), ("1", "END")]
    finally:
        stop.set()
        srv.stop()


def test_half_written_versions_are_never_served(tmp_path: Path, exported_model: Path,
                                                 caplog: pytest.LogCaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.export import publish_local

    from mnistkit.serving import loading
    from mnistkit.serving.client import ModelClient

    attempts: list[int] = []
    real_load = loading.load_model

    def counting_load(path: Any, version: int = 0) -> Any:
        attempts.append(version)
        return real_load(path, version)

    monkeypatch.setattr(loading, "load_model", counting_load)

    base = tmp_path / "models" / "mnist"
    publish_local(exported_model, base, 1)
    # Version 2: the copy has not reached saved_model.pb yet.
    shutil.copytree(exported_model, base / "2", ignore=shutil.ignore_patterns("saved_model.pb"))
    good_pb = (exported_model / "saved_model.pb").read_bytes()
    with caplog.at_level(logging.INFO, logger="mnistkit.serving"):
        srv = start_server(base)
        try:
            assert srv.version == 1  # not the incomplete 2
            # Version 3 appears while serving: saved_model.pb is there but truncated.
            shutil.copytree(exported_model, tmp_path / "v3")
            (tmp_path / "v3" / "saved_model.pb").write_bytes(good_pb[: len(good_pb) // 3])
            os.rename(tmp_path / "v3", base / "3")
            c = ModelClient(port=srv.grpc_port)
            rest = ModelClient(port=srv.rest_port, protocol="rest")

            def versions() -> dict[str, Any]:
                return {s["version"]: s for s in rest.status()["model_version_status"]}

            # The failed load is recorded when it ends (a slow machine may take longer than a few polls);
            # then a few more polls show it is not retried while unchanged.
            assert _wait(lambda: versions().get("3", {}).get("state") == "END", timeout=60)
            time.sleep(10 * POLL)
            assert srv.version == 1
            assert c.predict(_GOOD)[0].model_version == 1
            status = versions()
            assert status["1"]["state"] == "AVAILABLE"
            assert status["3"]["state"] == "END" and status["3"]["status"]["error_code"] != "OK"
            assert "2" not in status
            assert attempts.count(3) == 1, "an unchanged broken version is not reloaded on every poll"
            assert 2 not in attempts
            # A failed load is retried: once 3 is complete, it serves.
            tmp = base / "3" / ".saved_model.pb.part"
            tmp.write_bytes(good_pb)
            os.replace(tmp, base / "3" / "saved_model.pb")
            assert srv.wait_for_version(3, timeout=20 * POLL + 10)
            assert c.predict(_GOOD)[0].model_version == 3
            c.close()
            rest.close()
        finally:
            srv.stop()
    failures = [r.getMessage() for r in caplog.records if "version 3 failed to load" in r.getMessage()]
    assert len(failures) == 1, "a failing version is logged once, not on every poll"
    assert "still serving version 1" in failures[0]


def test_no_version_yet_is_unavailable_then_serves(tmp_path: Path, exported_model: Path) -> None:
    from trainer.export import publish_local

    from mnistkit.serving.client import ModelClient
    from mnistkit.serving.status import RequestError

    base = tmp_path / "models" / "mnist"  # does not exist yet
    srv = start_server(base)
    try:
        status, payload, _ = _rest(srv, "POST", "/v1/models/mnist:predict", {"instances": _GOOD.tolist()})
        assert status == 503 and "no version" in payload["error"]
        with pytest.raises(RequestError) as info:
            ModelClient(port=srv.grpc_port).predict(_GOOD)
        assert info.value.code == "UNAVAILABLE"
        assert _rest(srv, "GET", "/v1/models/mnist")[0] == 404
        publish_local(exported_model, base, 5)
        assert srv.wait_for_version(5, timeout=20 * POLL + 10)
        assert ModelClient(port=srv.rest_port, protocol="rest").predict(_GOOD)[0].model_version == 5
    finally:
        srv.stop()


def test_s3_base_path_loads_published_versions(tmp_path: Path, exported_model: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from mnistkit import s3
    from mnistkit.embedded_s3 import EmbeddedS3
    from mnistkit.serving.client import ModelClient

    with EmbeddedS3(bucket="mnist") as store, caplog.at_level(logging.DEBUG, logger="mnistkit"):
        secret = store.config.secret_access_key
        client = s3.make_client(store.config)
        url = "s3://mnist/models/mnist"
        s3.publish_model_version(client, exported_model, url, 1)
        srv = start_server(url, s3_config=store.config, cache_dir=tmp_path / "cache")
        try:
            assert srv.version == 1
            with ModelClient(port=srv.grpc_port) as c:
                assert c.predict(_GOOD)[0].model_version == 1
                s3.publish_model_version(client, exported_model, url, 2)
                assert srv.wait_for_version(2, timeout=30)
                assert c.predict(_GOOD)[0].model_version == 2
            assert sorted(p.name for p in srv.manager.local_dir.iterdir()) == ["1", "2"]
            assert srv.manager.local_dir.parent == tmp_path / "cache"  # a folder per base URL
        finally:
            srv.stop()
    assert secret not in caplog.text


def test_startup_skips_a_broken_newest_version(tmp_path: Path, exported_model: Path) -> None:
    from trainer.export import publish_local

    base = tmp_path / "models" / "mnist"
    publish_local(exported_model, base, 1)
    shutil.copytree(exported_model, base / "2")
    (base / "2" / "saved_model.pb").write_bytes(b"not a protobuf at all")
    srv = start_server(base)
    try:
        assert srv.version == 1  # the newest loadable, while 2 keeps being retried
        status, payload, _ = _rest(srv, "GET", "/v1/models/mnist/versions/2")
        assert status == 200 and payload["model_version_status"][0]["state"] == "END"
        assert "cannot load" in payload["model_version_status"][0]["status"]["error_message"]
    finally:
        srv.stop()


def test_ports_in_use_are_clear_errors(server: Any, model_base: Path) -> None:
    from mnistkit.errors import ServingError

    with pytest.raises(ServingError, match=f"gRPC on 127.0.0.1:{server.grpc_port}"):
        start_server(model_base, port=server.grpc_port)
    with pytest.raises(ServingError, match=f"REST on 127.0.0.1:{server.rest_port}"):
        start_server(model_base, rest_api_port=server.rest_port)
    assert _rest(server, "GET", "/v1/models/mnist")[0] == 200  # the first server is unharmed


def test_serve_command_serves_and_stops_on_sigterm(model_base: Path) -> None:
    import signal
    import subprocess
    import sys

    from mnistkit.embedded_s3 import free_port
    from mnistkit.serving.client import ModelClient

    grpc_port, rest_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistkit", "serve", "--model_base_path", str(model_base), "--port", str(grpc_port),
         "--rest_api_port", str(rest_port), "--file_system_poll_wait_seconds", "0.5"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        client = ModelClient(port=rest_port, protocol="rest", timeout=5)
        deadline = time.monotonic() + 90
        while True:
            try:
                assert client.predict(_GOOD)[0].model_version == 1
                break
            except Exception:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        client.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "loaded version 1" in err and "stopping" in err
    assert f"REST on http://127.0.0.1:{rest_port}/v1/models/mnist" in err


def test_serve_command_needs_a_base_path(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mnistkit.cli import main

    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)
    assert main(["serve"]) == 1
    assert "--model_base_path is required" in capsys.readouterr().err


def test_stopped_server_stops_answering_kept_alive_connections(model_base: Path) -> None:
    from mnistkit.errors import ServingError
    from mnistkit.serving.client import ModelClient

    srv = start_server(model_base)
    client = ModelClient(port=srv.rest_port, protocol="rest", timeout=5)
    assert client.predict(_GOOD)[0].model_version == 1  # opens a keep-alive connection
    srv.stop()
    with pytest.raises(ServingError, match="cannot reach"):
        client.predict(_GOOD)
    client.close()


def test_session_runner_matches_the_eager_signature_and_the_fallback(
    exported_model: Path, sample: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs signatures as Session callables; answers equal TF2's own call, and the eager
    fallback (used for sparse/composite signatures) answers the same."""
    from mnistkit.serving import loading
    from mnistkit.serving.status import RequestError
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    x = (sample.x_test[:64] / np.float32(255.0)).astype(np.float32)
    want = tf.saved_model.load(str(exported_model)).signatures["serving_default"](x=tf.constant(x))

    session_model = loading.load_model(exported_model, 1)
    assert type(session_model._keep_alive).__name__ == "Session"
    # A prepared C++ callable, not Session.run (whose per-call Python cost ~0.18 ms at batch 1).
    with monkeypatch.context() as m:
        m.setattr(type(session_model._keep_alive), "run", lambda *a, **k: pytest.fail("Session.run per request"))
        assert session_model.predict(None, {"x": x[:1]})["predictions"].shape == (1, 10)
    monkeypatch.setattr(loading, "_dense", lambda sdef: False)
    eager_model = loading.load_model(exported_model, 1)
    assert type(eager_model._keep_alive).__name__ != "Session"
    # Callable signatures as TF2 lists them (its initializer is in the SignatureDef map, not callable).
    assert list(session_model.signatures) == list(eager_model.signatures) == ["serving_default"]
    assert "__saved_model_init_op" in session_model.signature_defs  # metadata shows the map as TF Serving does

    for model in (session_model, eager_model):
        got = model.predict(None, {"x": x})
        np.testing.assert_allclose(got["predictions"], want["predictions"].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got["classes"], want["classes"].numpy())
        assert got["classes"].dtype == np.uint8 and got["predictions"].dtype == np.float32
        with pytest.raises(RequestError):
            model.predict(None, {"x": np.zeros((1, 27, 28), np.float32)})


def test_loader_picks_the_serve_meta_graph_and_stays_quiet(
    tmp_path: Path, exported_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A SavedModel with a ``train`` and a ``serve`` meta graph serves the ``serve`` one (as TF Serving);
    none tagged ``serve`` is a load error naming the tag sets; a load logs nothing from TensorFlow."""
    from mnistkit.errors import ServingError
    from mnistkit.serving import loading
    from mnistkit.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    v1 = tf.compat.v1

    def save(path: Path, tags: tuple[str, str]) -> None:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [None], name="x")
            w = v1.get_variable("w", initializer=tf.constant(1.0))
            y_first, y_second = tf.multiply(x, w * 3.0), tf.multiply(x, w * 2.0)
            with v1.Session(graph=graph) as sess:
                sess.run(v1.global_variables_initializer())
                builder = v1.saved_model.builder.SavedModelBuilder(str(path))

                def sig(y: Any) -> Any:
                    return v1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y})

                builder.add_meta_graph_and_variables(sess, [tags[0]], signature_def_map={"serving_default": sig(y_first)})
                builder.add_meta_graph([tags[1]], signature_def_map={"serving_default": sig(y_second)})
                builder.save()

    save(tmp_path / "two" / "1", ("train", "serve"))
    model = loading.load_model(tmp_path / "two" / "1", 1)
    assert model.predict(None, {"x": np.array([1.0], np.float32)})["y"].tolist() == [2.0]

    save(tmp_path / "noserve" / "1", ("train", "gpu"))
    with pytest.raises(ServingError, match=r"no meta graph tagged exactly \['serve'\].*\['gpu'\]"):
        loading.load_model(tmp_path / "noserve" / "1", 1)

    caplog.set_level(logging.INFO)
    caplog.clear()  # the TF1 builder above warns about itself; the loader must not
    loading.load_model(exported_model, 1)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("tensorflow")] == []


def test_corrupt_variables_give_a_load_error_that_says_what_is_wrong(tmp_path: Path, exported_model: Path) -> None:
    from mnistkit.errors import ServingError
    from mnistkit.serving import loading

    broken = tmp_path / "1"
    shutil.copytree(exported_model, broken)
    data = next((broken / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(ServingError) as info:
        loading.load_model(broken, 1)
    message = str(info.value)
    assert "Graph execution error" not in message and message.rstrip().endswith(("requested", "bytes")), message
