"""Images to ask the model about: a PNG of any size, test image N, or a random test digit.

MNIST digits are white on black, 28x28, the ink fitted into a 20x20 box and centred by its centre of
mass. A photo or a drawing is rarely like that, so ``load_png`` converts: grayscale (transparent pixels
count as white paper), then ``to_mnist``: a 28x28 image is kept (inverted when its background is light),
any other is framed by ``mnistkit.drawing.preprocess``, the one owner of MNIST framing, so
``mnistkit predict --image`` sees a digit exactly as the drawing pad does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from mnistkit.errors import ConfigError, DataError

__all__ = ["MAX_SIDE", "load_png", "to_mnist", "load_test_images", "pick_test_image"]

MAX_SIDE = 4096
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def to_mnist(gray: ArrayLike) -> np.ndarray:
    """A 2-D grayscale array (uint8, or float in [0, 1]) -> uint8 ``[28, 28]`` white-on-black, MNIST-framed.

    A blank image (no ink) is a ``DataError``: there is nothing to classify.
    """
    from mnistkit.drawing import EmptyCanvasError, preprocess

    arr = np.asarray(gray)
    if arr.ndim != 2 or arr.size == 0:
        raise DataError(
            f"expected a 2-D grayscale image, got shape {list(arr.shape)}", field="image", value=list(arr.shape)
        )
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if arr.shape == (28, 28):
        # Already MNIST-sized: kept, only inverted when the border (the paper) is light.
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        return 255 - arr if float(border.mean()) > 127.5 else arr
    try:
        framed = preprocess(arr)
    except EmptyCanvasError:
        raise DataError("the image is blank: there is no ink to classify", field="image") from None
    return (framed * 255.0).round().astype(np.uint8)


def load_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a PNG of any size as an MNIST-style uint8 ``[28, 28]`` image; clear errors for bad files."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(len(_PNG_MAGIC))
    except FileNotFoundError:
        raise DataError(f"image {p} does not exist", field="image", value=str(p)) from None
    except IsADirectoryError:
        raise DataError(f"image {p} is a directory, not a PNG file", field="image", value=str(p)) from None
    except OSError as exc:
        raise DataError(f"cannot read image {p}: {exc.strerror}", field="image", value=str(p)) from None
    if not head:
        raise DataError(f"image {p} is empty (0 bytes)", field="image", value=str(p))
    if head != _PNG_MAGIC:
        raise DataError(f"image {p} is not a PNG file (wrong signature)", field="image", value=str(p))
    try:
        with Image.open(p) as img:
            w, h = img.size
            if w > MAX_SIDE or h > MAX_SIDE:
                raise DataError(
                    f"image {p} is {w}x{h}; the limit is {MAX_SIDE}x{MAX_SIDE}", field="image", value=str(p)
                )
            if w == 0 or h == 0:
                raise DataError(f"image {p} has no pixels", field="image", value=str(p))
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                gray = Image.alpha_composite(paper, rgba).convert("L")
            else:
                gray = img.convert("L")
            arr = np.asarray(gray, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"image {p} is a corrupt or unreadable PNG ({exc})", field="image", value=str(p)) from None
    return to_mnist(arr)


def load_test_images(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Test images and labels (uint8) and where they came from.

    ``data_dir`` (local or ``s3://``) is read as a data directory (its test split); without it, the
    official 10k test set when present, else the offline sample's test split.
    """
    from mnistkit import data

    if data_dir:
        if data_dir.startswith("s3://"):
            ds = data.load_data_dir(data_dir)
            return ds.x_test, ds.y_test, data_dir
        d = Path(data_dir)
        images = labels = None
        for name in (data.FILES["test_images"], data.FILES["test_images"].removesuffix(".gz")):
            if (d / name).exists():
                images = data.read_idx(d / name)
        for name in (data.FILES["test_labels"], data.FILES["test_labels"].removesuffix(".gz")):
            if (d / name).exists():
                labels = data.read_idx(d / name)
        if images is None or labels is None:
            raise DataError(
                f"data directory {d} has no test images/labels ({data.FILES['test_images']})",
                field="data_dir",
                value=str(d),
            )
        return images, labels, str(d)
    official = data.find_official_test_set()
    if official is not None:
        return load_test_images(str(official))
    ds = data.offline_sample()
    return ds.x_test, ds.y_test, "offline sample (test split)"


def pick_test_image(
    number: int | None, data_dir: str | None = None, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, int, int, str]:
    """Test image ``number`` (random when None): ``(image uint8 [28, 28], label, number, source)``."""
    images, labels, source = load_test_images(data_dir)
    n = len(images)
    if number is None:
        number = int((rng or np.random.default_rng()).integers(n))
    if not 0 <= number < n:
        raise ConfigError(
            f"test image number must be 0-{n - 1} for {source}, got {number}", field="test_image", value=number
        )
    return images[number], int(labels[number]), number, source
