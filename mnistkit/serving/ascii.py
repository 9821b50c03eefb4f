"""Digits as ASCII art: 28 rows of 28 characters, ``@`` for ink and ``.`` for background.

The 2018 example printed the digit it sent so that a terminal user could check the answer by eye;
``mnistkit predict`` does the same, and tests can compare the rows exactly.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from mnistkit.errors import ServingError

__all__ = ["ascii_art", "INK", "BACKGROUND"]

INK = "@"
BACKGROUND = "."


def ascii_art(image: ArrayLike, threshold: float = 0.3) -> str:
    """Render a ``[28, 28]`` (or ``[1, 28, 28]``) image, float in [0, 1] or uint8 0-255, as 28 lines.

    A pixel is ink when its intensity is above ``threshold`` (a fraction of full scale): lower than one
    half so that the thin, anti-aliased edges of handwritten strokes still show.
    """
    arr = np.asarray(image)
    if arr.shape == (1, 28, 28):
        arr = arr[0]
    if arr.shape != (28, 28):
        raise ServingError(
            f"ascii_art takes a [28, 28] image, got {list(arr.shape)}", field="image", value=list(arr.shape)
        )
    scaled = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    ink = np.nan_to_num(scaled, nan=0.0) > threshold
    return "\n".join("".join(INK if v else BACKGROUND for v in row) for row in ink)
