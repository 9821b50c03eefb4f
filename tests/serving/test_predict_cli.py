"""``mnistkit predict`` against a running server: the three image sources, both protocols, the output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnistkit.cli import main

pytestmark = pytest.mark.slow

SENTENCE = "Your model says the above number is... "


def _art_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if len(line) == 28 and set(line) <= {"@", "."}]


@pytest.fixture(scope="module")
def model_digits(exported_model: Path, sample: Any) -> np.ndarray:
    """What the served model itself answers for every test digit, computed in this process."""
    from mnistkit.predictor import saved_model_predictor

    return np.array([p.digit for p in saved_model_predictor(exported_model)(sample.x_test / np.float32(255.0))])


def _answer(out: str) -> int:
    line = [ln for ln in out.splitlines() if ln.startswith(SENTENCE)]
    assert len(line) == 1, out
    assert line[0].endswith("!")
    return int(line[0][len(SENTENCE) : -1])


def test_test_image_n_over_grpc(server: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Any,
                                model_digits: np.ndarray) -> None:
    from mnistkit.data import write_data_dir

    data_dir = write_data_dir(sample, tmp_path / "data")
    # a test digit the model reads right (the tiny test model is right on ~9 in 10): the answer is that digit
    n = next(i for i in range(7, len(model_digits)) if model_digits[i] == sample.y_test[i])
    assert main(["predict", "--port", str(server.grpc_port), "--test-image", str(n), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert len(_art_rows(out)) == 28
    assert f"The true label is {int(sample.y_test[n])}." in out
    assert "classes:" in out and "predictions:" in out
    assert _answer(out) == int(sample.y_test[n])
    from mnistkit.serving.ascii import ascii_art

    assert ascii_art(sample.x_test[n]) in out  # the digit sent is the digit drawn


def test_png_over_rest_from_env(server: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, sample: Any,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    # A big black-on-white PNG, as someone would draw it.
    digit = sample.x_test[0]
    big = 255 - np.asarray(Image.fromarray(digit).resize((140, 140), Image.BILINEAR))
    path = tmp_path / "digit.png"
    Image.fromarray(big).save(path)
    monkeypatch.setenv("TF_MODEL_SERVER_HOST", "127.0.0.1")
    monkeypatch.setenv("TF_MODEL_SERVER_PORT", str(server.rest_port))
    monkeypatch.setenv("TF_MODEL_SERVER_PROTOCOL", "rest")
    monkeypatch.setenv("TF_MNIST_IMAGE_PATH", str(path))
    assert main(["predict"]) == 0
    out = capsys.readouterr().out
    assert len(_art_rows(out)) == 28
    assert "true label" not in out  # unknown for a PNG
    assert _answer(out) == int(sample.y_test[0])


def test_random_test_digit_default(server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                   exported_model: Path) -> None:
    for var in ("TF_MNIST_IMAGE_PATH", "TF_MNIST_TEST_IMAGE_NUMBER", "TF_MODEL_SERVER_PROTOCOL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TF_MODEL_SERVER_PORT", str(server.grpc_port))
    assert main(["predict", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert len(_art_rows(out)) == 28 and "The true label is" in out
    from mnistkit.serving.ascii import ascii_art
    from mnistkit.serving.images import load_test_images
    from mnistkit.predictor import saved_model_predictor

    # the random digit is one of the default test digits: the server answers what the model says of it
    images, _, _ = load_test_images()
    shown = [i for i in range(len(images)) if ascii_art(images[i]) in out]
    assert shown, out
    expected = {p.digit for p in saved_model_predictor(exported_model)(images[shown] / np.float32(255.0))}
    assert _answer(out) in expected


def test_predict_errors_are_one_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from mnistkit.embedded_s3 import free_port

    port = free_port()
    assert main(["predict", "--port", str(port), "--protocol", "rest", "--test-image", "0"]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "mnistkit serve" in err and "Traceback" not in err
    notpng = tmp_path / "x.png"
    notpng.write_text("hello")
    assert main(["predict", "--port", str(port), "--image", str(notpng)]) == 1
    assert "not a PNG" in capsys.readouterr().err
