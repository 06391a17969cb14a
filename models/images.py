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
              background: int = 255, zoom: int = 1) -> np.ndarray:
    """Tile N HWC uint8 images into one image, ``cols`` per row (about square by default),
    each enlarged ``zoom`` times by nearest neighbour (so the model's own pixels are what one
    sees) and ``pad`` × ``zoom`` apart."""
    if zoom < 1:
        raise ValueError(f"zoom must be at least 1, got {zoom}")
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    images = images.repeat(zoom, axis=1).repeat(zoom, axis=2)
    pad *= zoom
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


def pixel_mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two uint8 images of one size, on a [0, 1] scale."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    return float(np.mean((a.astype(np.float64) / 255.0 - b.astype(np.float64) / 255.0) ** 2))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two uint8 images of one size (Wang et al. 2004: 11-px Gaussian
    window, σ 1.5, K1 0.01, K2 0.03), averaged over the image and the colour channels.
    1 means identical; it compares local structure, so it tells a blurred reconstruction from
    a sharp one where pixel MSE barely moves."""
    import cv2

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(np.mean(s))
