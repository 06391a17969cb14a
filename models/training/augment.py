"""Differentiable augmentation (DiffAugment-style) for training GANs on small datasets.

The same random colour, translation and cutout transforms are applied to every image the
discriminator sees, real or generated, and gradients flow through them to the generator. This
keeps the discriminator from memorising a small training set (UTKFace has ~24k faces) without
leaking the augmentations into generated images.
"""
from __future__ import annotations

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` → the tuple; ``""`` or ``"none"`` → ()."""
    if policy in ("", "none"):
        return ()
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from "
                         f"{', '.join(POLICIES)} (comma-separated) or none")
    return parts


def augment(images: tf.Tensor, policy: tuple[str, ...], rng: tf.random.Generator) -> tf.Tensor:
    """Apply the policy's transforms to NHWC images in [-1, 1] with per-image random draws."""
    for name in policy:
        images = _TRANSFORMS[name](images, rng)
    return images


def _color(x: tf.Tensor, rng: tf.random.Generator) -> tf.Tensor:
    n = tf.shape(x)[0]
    brightness = rng.uniform([n, 1, 1, 1]) - 0.5
    x = x + brightness
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (rng.uniform([n, 1, 1, 1]) * 2.0) + mean  # saturation
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (rng.uniform([n, 1, 1, 1]) + 0.5) + mean  # contrast


def _translation(x: tf.Tensor, rng: tf.random.Generator, ratio: float = 0.125) -> tf.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (exact pixel shifts)."""
    n = tf.shape(x)[0]
    h, w = x.shape[1], x.shape[2]
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = tf.cast(rng.uniform_full_int([n], dtype=tf.int32) % (2 * max_dy + 1) - max_dy, tf.float32)
    dx = tf.cast(rng.uniform_full_int([n], dtype=tf.int32) % (2 * max_dx + 1) - max_dx, tf.float32)
    ones, zeros = tf.ones([n]), tf.zeros([n])
    # Output pixel (y, x) reads input (y - dy, x - dx).
    transforms = tf.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.constant([h, w]),
        fill_value=0.0, interpolation="NEAREST", fill_mode="CONSTANT")


def _cutout(x: tf.Tensor, rng: tf.random.Generator, ratio: float = 0.5) -> tf.Tensor:
    """Zero one square of ``ratio`` × the image size at a random place in each image."""
    n = tf.shape(x)[0]
    h, w = x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = rng.uniform_full_int([n], dtype=tf.int32) % (h + 1 - ch % 2)
    cx = rng.uniform_full_int([n], dtype=tf.int32) % (w + 1 - cw % 2)
    ys = tf.range(h)[None, :] - (cy[:, None] - ch // 2)
    xs = tf.range(w)[None, :] - (cx[:, None] - cw // 2)
    inside_y = tf.logical_and(ys >= 0, ys < ch)
    inside_x = tf.logical_and(xs >= 0, xs < cw)
    mask = tf.logical_and(inside_y[:, :, None], inside_x[:, None, :])
    return x * tf.cast(tf.logical_not(mask), x.dtype)[:, :, :, None]


_TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}
