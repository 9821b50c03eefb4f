"""The Open Inference Protocol (v2) beside TF Serving's, tested with Triton's stock clients (``tritonclient``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


pytestmark = pytest.mark.slow

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402 - after the importorskip


def _clients(srv: Any) -> tuple[Any, Any]:
    return (
        httpclient.InferenceServerClient(f"127.0.0.1:{srv.rest_port}"),
        grpcclient.InferenceServerClient(srv.grpc_target),
    )


def _images(sample: Any, n: int) -> np.ndarray:
    return (sample.x_test[:n] / np.float32(255.0)).astype(np.float32)


def test_health_and_metadata_with_stock_clients(server: Any) -> None:
    h, g = _clients(server)
    assert h.is_server_live() and h.is_server_ready() and h.is_model_ready("mnist")
    assert g.is_server_live() and g.is_server_ready() and g.is_model_ready("mnist")
    assert h.is_model_ready("mnist", "1") and g.is_model_ready("mnist", "1")
    assert not h.is_model_ready("mnist", "7") and not g.is_model_ready("mnist", "7")
    want = {
        "name": "mnist",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 28, 28]}],
        "outputs": [
            {"name": "classes", "datatype": "UINT8", "shape": [-1]},
            {"name": "predictions", "datatype": "FP32", "shape": [-1, 10]},
        ],
    }
    meta = h.get_model_metadata("mnist")
    meta["outputs"].sort(key=lambda o: o["name"])
    assert meta == want
    gm = g.get_model_metadata("mnist", as_json=True)
    assert gm["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "28", "28"]}]  # proto3 JSON int64
    assert sorted((o["name"], o["datatype"]) for o in gm["outputs"]) == [("classes", "UINT8"), ("predictions", "FP32")]
    assert h.get_model_metadata("mnist", "1")["versions"] == ["1"]
    assert h.get_server_metadata()["name"] == g.get_server_metadata(as_json=True)["name"] == "mnistkit"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_over_rest_answers_the_digits(server: Any, sample: Any, binary: bool) -> None:
    from mnistkit.serving.client import ModelClient

    x = _images(sample, 64)
    h, _g = _clients(server)
    inp = httpclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("classes", "predictions")]
    res = h.infer("mnist", [inp], outputs=outputs, request_id="r1")
    classes, probs = res.as_numpy("classes"), res.as_numpy("predictions")
    assert classes.dtype == np.uint8 and classes.shape == (64,) and probs.shape == (64, 10)
    assert res.get_response()["model_version"] == "1" and res.get_response()["id"] == "r1"
    with ModelClient(port=server.grpc_port) as v1:
        assert [p.digit for p in v1.predict(x)] == classes.tolist()
    assert np.mean(classes == sample.y_test[:64]) > 0.7
    # No outputs named: the client asks for all of them, in binary.
    assert h.infer("mnist", [inp]).as_numpy("classes").tolist() == classes.tolist()


def test_infer_over_grpc_answers_the_digits(server: Any, sample: Any) -> None:
    x = _images(sample, 64)
    h, g = _clients(server)
    inp = grpcclient.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res = g.infer("mnist", [inp], model_version="1")
    classes = res.as_numpy("classes")
    assert res.get_response().model_version == "1" and classes.shape == (64,)
    hin = httpclient.InferInput("x", list(x.shape), "FP32")
    hin.set_data_from_numpy(x)
    assert h.infer("mnist", [hin]).as_numpy("classes").tolist() == classes.tolist()
    only = g.infer("mnist", [inp], outputs=[grpcclient.InferRequestedOutput("predictions")])
    assert only.as_numpy("classes") is None and only.as_numpy("predictions").shape == (64, 10)


def _bad_cases() -> list[tuple[str, str, list[int], Any, str, str]]:
    good = np.zeros((1, 28, 28), np.float32)
    return [
        ("wrong shape", "x", [1, 28, 27], np.zeros((1, 28, 27), np.float32), "FP32", "INVALID_ARGUMENT"),
        ("wrong datatype", "x", [1, 28, 28], good.astype(np.float64), "FP64", "INVALID_ARGUMENT"),
        ("unknown input", "y", [1, 28, 28], good, "FP32", "INVALID_ARGUMENT"),
        ("batch too large", "x", [1025, 28, 28], np.zeros((1025, 28, 28), np.float32), "FP32", "INVALID_ARGUMENT"),
        ("nan", "x", [1, 28, 28], np.full((1, 28, 28), np.nan, np.float32), "FP32", "INVALID_ARGUMENT"),
    ]


def test_bad_requests_get_the_protocols_errors(server: Any) -> None:
    h, g = _clients(server)
    for what, name, shape, data, dtype, code in _bad_cases():
        for client, mod, want in ((h, httpclient, "400"), (g, grpcclient, f"StatusCode.{code}")):
            inp = mod.InferInput(name, shape, dtype)
            inp.set_data_from_numpy(data)
            with pytest.raises(InferenceServerException) as info:
                client.infer("mnist", [inp])
            assert info.value.status() == want, (what, info.value)
            assert info.value.message(), what
    good = np.zeros((1, 28, 28), np.float32)
    for client, mod, want in ((h, httpclient, "404"), (g, grpcclient, "StatusCode.NOT_FOUND")):
        inp = mod.InferInput("x", [1, 28, 28], "FP32")
        inp.set_data_from_numpy(good)
        with pytest.raises(InferenceServerException) as info:
            client.infer("nope", [inp])
        assert info.value.status() == want
        with pytest.raises(InferenceServerException) as info:
            client.infer("mnist", [inp], model_version="7")
        assert info.value.status() == want
        assert client.infer("mnist", [inp]).as_numpy("classes").shape == (1,)


def test_v2_declared_shapes_are_judged_before_decoding(server: Any) -> None:
    """A v2 gRPC request declaring 16M floats with 4 bytes of data is refused before decoding."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_target))
    req = service_pb2.ModelInferRequest(model_name="mnist")
    req.inputs.add(name="x", datatype="FP32", shape=[16777216])
    req.raw_input_contents.append(b"\x00" * 4)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(req, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "shape" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
