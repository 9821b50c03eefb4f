"""Turn a drawn image into what an MNIST model expects, and why the naive way fails.

MNIST digits were size-normalised to fit a 20x20 box (keeping their aspect ratio, anti-aliased) and
then centred by centre of mass in a 28x28 field, white ink on black. A canvas drawing is nothing like
that: any size, dark ink on a light page, the digit anywhere. ``preprocess`` repeats MNIST's own
normalisation so a model trained on MNIST sees a drawn digit the way it saw its training data;
``naive_resize`` (squash the whole canvas to 28x28) is kept for the benchmark's contrast.
"""

from __future__ import annotations

import base64
import io
from typing import Union

import numpy as np

from mnistkit.errors import DataError

__all__ = [
    "EmptyCanvasError",
    "Canvas",
    "to_ink",
    "preprocess",
    "naive_resize",
    "to_png",
    "to_data_url",
    "BOX",
    "SIZE",
    "CENTRE",
]

SIZE = 28  # the MNIST field
BOX = 20  # the box MNIST fits each digit into
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column index)
_INK_THRESHOLD = 0.1  # ink below this (after background removal) is paper noise, not a stroke

Canvas = Union[np.ndarray, bytes, bytearray, str]  # noqa: UP007 - a runtime alias: `|` needs Python 3.10 objects


class EmptyCanvasError(DataError):
    """Nothing was drawn: there is no ink to classify."""


MAX_CANVAS_PIXELS = 4096 * 4096


def _decode(canvas: Canvas) -> np.ndarray:
    """PNG bytes or a ``data:image/png;base64,...`` URL -> an array; arrays pass through."""
    if isinstance(canvas, str):
        if not canvas:
            raise EmptyCanvasError("the canvas is empty: draw a digit first", field="canvas")
        payload = canvas.split(",", 1)[1] if canvas.startswith("data:") else canvas
        try:
            canvas = base64.b64decode(payload, validate=False)
        except ValueError:
            raise DataError("the canvas data URL is not valid base64", field="canvas") from None
    if isinstance(canvas, (bytes, bytearray)):
        if not canvas:
            raise EmptyCanvasError("the canvas is empty: draw a digit first", field="canvas")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(bytes(canvas))) as img:
                # Check the header's size before decoding: a few hundred KB of PNG can claim 400 M pixels.
                if img.width * img.height > MAX_CANVAS_PIXELS:
                    raise DataError(
                        f"the canvas image is {img.width}x{img.height} pixels; at most {MAX_CANVAS_PIXELS:,} "
                        "(e.g. 4096x4096) are accepted",
                        field="canvas",
                        value=[img.width, img.height],
                    )
                img.load()
                mode = "RGBA" if img.mode in ("RGBA", "LA", "P", "PA") else "L"
                return np.asarray(img.convert(mode))
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
            raise DataError(f"the canvas image could not be decoded: {exc}", field="canvas") from None
    array = np.asarray(canvas)
    if array.dtype == object or array.size == 0:
        raise DataError(f"the canvas must be a 2-D image array, got shape {list(array.shape)}", field="canvas")
    return array


def to_ink(canvas: Canvas) -> np.ndarray:
    """Any image -> float32 ``[h, w]`` ink in [0, 1] (1 = full ink, 0 = paper), whatever the polarity.

    RGBA with varying alpha (strokes on a transparent canvas) uses alpha as ink. Otherwise the image's
    luminance is used; the paper colour is the median of the border, so dark-on-light and light-on-dark
    both come out as ink-on-zero.
    """
    a = _decode(canvas)
    if a.ndim == 3 and a.shape[-1] in (1, 2, 3, 4):
        a = a.astype(np.float32)
        scale = 255.0 if a.max() > 1.0 else 1.0
        a = a / scale
        channels = a.shape[-1]
        has_alpha = channels in (2, 4)
        if has_alpha and float(a[..., -1].max() - a[..., -1].min()) > 0.0:
            # Strokes on a transparent canvas: coverage is the ink, whatever colour the pen had.
            gray = 1.0 - a[..., -1]
        else:
            rgb = a[..., :3] if channels >= 3 else a[..., :1]
            gray = rgb @ np.array([0.299, 0.587, 0.114], np.float32) if rgb.shape[-1] == 3 else rgb[..., 0]
    elif a.ndim == 2:
        gray = a.astype(np.float32)
        if gray.max() > 1.0:
            gray = gray / 255.0
    else:
        raise DataError(
            f"the canvas must be a 2-D image (gray, RGB or RGBA), got shape {list(a.shape)}", field="canvas"
        )
    gray = np.clip(np.nan_to_num(gray.astype(np.float32)), 0.0, 1.0)
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    if paper > 0.5:
        ink = (paper - gray) / max(paper, 1e-6)
    else:
        ink = (gray - paper) / max(1.0 - paper, 1e-6)
    return np.clip(ink, 0.0, 1.0).astype(np.float32)


def _resize(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image (Pillow's LANCZOS on mode ``F``; box-filters big reductions)."""
    from PIL import Image

    img = Image.fromarray(ink.astype(np.float32), mode="F")
    out = img.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _bbox(ink: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def preprocess(canvas: Canvas) -> np.ndarray:
    """A drawn digit -> float32 ``[28, 28]`` in [0, 1], white on black, normalised the way MNIST was.

    Steps: ink bounding box crop; fit into 20x20 keeping the aspect ratio (anti-aliased); paste into
    28x28 so the centre of mass sits at the centre (shifted by whole pixels, never pushing ink out of the
    field); scale so the strongest ink is 1.0. Raises ``EmptyCanvasError`` when there is no ink.
    """
    ink = to_ink(canvas)
    if float(ink.max(initial=0.0)) <= _INK_THRESHOLD:
        raise EmptyCanvasError("the canvas is empty: draw a digit first", field="canvas")
    top, bottom, left, right = _bbox(ink, _INK_THRESHOLD)
    crop = ink[top:bottom, left:right]
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    small = _resize(crop, nh, nw)
    peak = float(small.max())
    if peak <= 0.0:
        raise EmptyCanvasError("the canvas is empty: draw a digit first", field="canvas")
    small = small / peak
    # Centre of mass of the small image, in its own pixel coordinates.
    total = float(small.sum())
    ys, xs = np.indices(small.shape)
    cy, cx = float((ys * small).sum() / total), float((xs * small).sum() / total)
    # MNIST's centres of mass sit at (14, 14) in pixel-index coordinates (measured on the official
    # test set: mean 13.99, 14.00), not at the geometric 13.5.
    centre = CENTRE
    # Top-left offset that puts the centre of mass on the field's centre, clamped inside the field.
    oy = int(np.clip(np.floor(centre - cy + 0.5), 0, SIZE - nh))
    ox = int(np.clip(np.floor(centre - cx + 0.5), 0, SIZE - nw))
    out = np.zeros((SIZE, SIZE), np.float32)
    out[oy : oy + nh, ox : ox + nw] = small
    return out


def naive_resize(canvas: Canvas) -> np.ndarray:
    """The whole canvas squashed to 28x28 (white on black, [0, 1]): what ignoring MNIST's normalisation gives."""
    ink = to_ink(canvas)
    if float(ink.max(initial=0.0)) <= _INK_THRESHOLD:
        raise EmptyCanvasError("the canvas is empty: draw a digit first", field="canvas")
    return _resize(ink, SIZE, SIZE)


def to_png(image: np.ndarray, scale: int = 1) -> bytes:
    """A gray image (floats in [0, 1] or uint8) as PNG bytes, enlarged ``scale`` times with hard pixels."""
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(a)
    if scale > 1:
        img = img.resize((a.shape[1] * scale, a.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def to_data_url(image: np.ndarray, scale: int = 1) -> str:
    """``data:image/png;base64,...`` of ``to_png(image, scale)``: what an ``<img>`` or canvas can load."""
    return "data:image/png;base64," + base64.b64encode(to_png(image, scale)).decode("ascii")
