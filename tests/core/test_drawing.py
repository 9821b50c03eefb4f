"""mnistkit.drawing: a drawn digit becomes an MNIST-like 28x28, whatever its size, place and polarity."""

from __future__ import annotations

import io
import base64

import numpy as np
import pytest
from helpers.browser import SEVEN_STROKES, render_strokes
from PIL import Image

from mnistkit import data
from mnistkit.drawing import (
    CENTRE,
    EmptyCanvasError,
    naive_resize,
    preprocess,
    to_data_url,
    to_ink,
    to_png,
)
from mnistkit.errors import DataError, MnistkitError


@pytest.fixture(scope="module")
def test_digits() -> tuple[np.ndarray, np.ndarray, str]:
    """1,000 official test digits when ../shared/data is there, else the offline sample's test split."""
    path = data.find_official_test_set()
    if path is not None:
        x = data.read_idx(path / data.FILES["test_images"])[:1000]
        y = data.read_idx(path / data.FILES["test_labels"])[:1000]
        return x, y, "official t10k"
    ds = data.offline_sample()
    return ds.x_test, ds.y_test, "offline sample"


@pytest.fixture(scope="module")
def centroids() -> np.ndarray:
    """A nearest-centroid classifier trained on the offline sample: no TensorFlow, a second to build."""
    ds = data.offline_sample()
    x = ds.x_train.reshape(-1, 784).astype(np.float32) / 255.0
    return np.stack([x[ds.y_train == k].mean(axis=0) for k in range(10)])


def classify(centroids: np.ndarray, images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, np.float32).reshape(len(images), -1)
    if x.max() > 1.0:
        x = x / 255.0
    return np.argmin(((x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)


def paste(digit: np.ndarray, rng: np.random.Generator, canvas: int = 280) -> np.ndarray:
    """A test digit enlarged to a random size, dark on a light page at a random place, as RGBA."""
    side = int(rng.integers(60, 250))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    page = np.full((canvas, canvas), 255, np.uint8)
    oy, ox = rng.integers(0, canvas - side + 1, size=2)
    page[oy : oy + side, ox : ox + side] = 255 - big
    rgba = np.stack([page, page, page, np.full_like(page, 255)], axis=-1)
    return rgba


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    total = image.sum()
    return float((ys * image).sum() / total), float((xs * image).sum() / total)


def test_pasted_digits_come_out_cropped_to_20_and_centred(test_digits: tuple[np.ndarray, np.ndarray, str]) -> None:
    x, _, _ = test_digits
    rng = np.random.default_rng(0)
    for digit in x[:300]:
        out = preprocess(paste(digit, rng))
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
        rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert max(height, width) == 20 and min(height, width) <= 20
        cy, cx = centre_of_mass(out)
        assert abs(cy - CENTRE) <= 0.5 + 1e-6 and abs(cx - CENTRE) <= 0.5 + 1e-6


def test_classifier_keeps_its_accuracy_on_pasted_digits_and_naive_resize_does_not(
    test_digits: tuple[np.ndarray, np.ndarray, str], centroids: np.ndarray
) -> None:
    x, y, source = test_digits
    x, y = x[:500], y[:500]
    rng = np.random.default_rng(1)
    canvases = [paste(d, rng) for d in x]
    clean = (classify(centroids, x) == y).mean()
    drawn = (classify(centroids, np.stack([preprocess(c) for c in canvases])) == y).mean()
    naive = (classify(centroids, np.stack([naive_resize(c) for c in canvases])) == y).mean()
    assert clean > 0.7, f"nearest centroid on {source}: {clean:.3f}"
    assert drawn >= clean - 0.03, f"{source}: clean {clean:.3f}, preprocessed {drawn:.3f}"
    assert naive < drawn - 0.3, f"{source}: naive resize {naive:.3f} should be far worse than {drawn:.3f}"


def test_polarity_and_encodings_give_the_same_image(test_digits: tuple[np.ndarray, np.ndarray, str]) -> None:
    digit = test_digits[0][3]
    rgba = paste(digit, np.random.default_rng(2))
    reference = preprocess(rgba)
    gray = rgba[..., 0]
    assert np.allclose(preprocess(gray), reference, atol=1e-5)
    assert np.allclose(preprocess(255 - gray), reference, atol=1e-5)  # light ink on a dark page
    assert np.allclose(preprocess(gray.astype(np.float32) / 255.0), reference, atol=1e-5)
    png = to_png(gray)
    assert np.allclose(preprocess(png), reference, atol=1e-5)
    assert np.allclose(preprocess("data:image/png;base64," + base64.b64encode(png).decode()), reference, atol=1e-5)
    # Strokes on a transparent canvas: alpha is the ink, whatever colour it is.
    transparent = np.zeros_like(rgba)
    transparent[..., 0] = 200
    transparent[..., 3] = 255 - gray
    assert np.allclose(preprocess(transparent), reference, atol=1e-5)


def test_empty_canvas_says_draw_a_digit() -> None:
    for blank in (np.full((280, 280), 255, np.uint8), np.zeros((280, 280, 4), np.uint8), to_png(np.zeros((5, 5))), ""):
        with pytest.raises(EmptyCanvasError, match="the canvas is empty: draw a digit first") as info:
            preprocess(blank)
        assert isinstance(info.value, MnistkitError) and info.value.field == "canvas"
    with pytest.raises(EmptyCanvasError):
        naive_resize(np.full((50, 50), 255, np.uint8))


def test_garbage_is_a_data_error_not_a_crash() -> None:
    with pytest.raises(DataError, match="could not be decoded"):
        preprocess(b"not a png")
    with pytest.raises(DataError, match="2-D image"):
        preprocess(np.zeros((2, 3, 4, 5)))


def test_to_ink_and_png_roundtrip() -> None:
    image = np.zeros((28, 28), np.float32)
    image[10:18, 12:14] = 1.0
    back = np.asarray(Image.open(io.BytesIO(to_png(image, scale=4))))
    assert back.shape == (112, 112) and back[40:72, 48:56].min() == 255 and back[:40].max() == 0
    assert to_data_url(image).startswith("data:image/png;base64,")
    assert np.array_equal(to_ink(image), image)


def test_synthetic_drawn_seven_is_a_seven(centroids: np.ndarray) -> None:
    """The strokes the browser test draws, rendered here: preprocessing must make them a recognisable 7."""
    canvas = render_strokes(SEVEN_STROKES)
    image = preprocess(canvas)
    assert classify(centroids, image[None])[0] == 7
