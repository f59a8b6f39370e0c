"""Image helpers shared by training, sampling and reports: scaling and grids."""

from __future__ import annotations

import math

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map float images in [-1, 1] to uint8 [0, 255] (rounded, clipped)."""
    return np.clip(np.rint((np.asarray(images, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one (rows*H', cols*W', C) image with padding."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        out[y:y + h, x:x + w] = image
    return out


VIEWABLE = 64  # px: each image of a grid at least this wide, so a 32x32 sample is not a thumbnail


def viewable_scale(size: int) -> int:
    """The whole-number enlargement that makes a ``size``-pixel image at least ``VIEWABLE`` wide."""
    return max(1, math.ceil(VIEWABLE / size))


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """``image`` (H, W, C) ``scale`` times larger, each pixel a ``scale`` x ``scale`` block
    (nearest neighbour: no smoothing is invented between a generator's pixels)."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
