"""Image comparison measures used by the inversion benchmark."""
from __future__ import annotations

import numpy as np
import pytest

from models.images import pixel_mse, ssim


def _face_like(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64]
    base = 128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    img = np.stack([base, base * 0.8, base * 0.6], -1) + rng.normal(0, 5, (64, 64, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_identical_images_are_perfectly_similar():
    img = _face_like()
    assert ssim(img, img) == pytest.approx(1.0)
    assert pixel_mse(img, img) == 0.0


def test_ssim_falls_with_noise_and_blur_while_mse_is_on_a_unit_scale():
    import cv2

    img = _face_like()
    noisy = np.clip(img + np.random.default_rng(1).normal(0, 40, img.shape), 0, 255).astype(
        np.uint8)
    blurred = cv2.GaussianBlur(img, (9, 9), 3)
    assert 0 < ssim(img, noisy) < 0.9 and 0 < ssim(img, blurred) < 0.95
    assert ssim(img, cv2.GaussianBlur(img, (3, 3), 0.5)) > ssim(img, blurred)
    white, black = np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8, 3), np.uint8)
    assert pixel_mse(white, black) == pytest.approx(1.0)


def test_sizes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8))
