"""Converting generator output to pictures: uint8 conversion, PNG files, grids."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """NHWC floats nominally in [-1, 1] → uint8 [0, 255], rounded and clipped as in the
    official code."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(images * 127.5 + 128.0, 0, 255).astype(np.uint8)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write one HWC uint8 (or float in [-1, 1]) image as PNG, atomically."""
    path = Path(path)
    if image.dtype != np.uint8:
        image = to_uint8(image[None])[0]
    if image.shape[-1] == 1:
        image = image[..., 0]
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def make_grid(images: np.ndarray, cols: int | None = None, pad: int = 2,
              background: int = 255) -> np.ndarray:
    """Tile N HWC uint8 images into one image, ``cols`` per row (about square by default)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c), background,
                   np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid
