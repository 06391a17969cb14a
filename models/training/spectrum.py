"""Radial power spectrum of faces: how much fine detail a generator draws, and a loss on it.

A generator that blurs has too little power at high spatial frequencies, one that draws grain
and streaks too much; photos' spectra fall off smoothly. The spectrum of a batch is the mean
power of its grey images' 2-D Fourier transform in rings of integer radius 1 … size/2 − 1
(the DC term and the corners beyond the Nyquist circle are left out).

- :func:`fine_detail_power` (a quality metric): generated over real power, averaged over the
  finest third of the rings; 1 matches photos, 0.5 is blur, 1.5 grain.
- :func:`spectral_loss` (``--spectral-weight``): squared difference of the generated batch's
  log ring powers to the real faces', a term in the generator's loss that pulls its spectrum
  toward the photos' (Durall et al. 2020, "Watch your up-convolution"). The trainer's target
  is a moving average of the real batches' powers: one batch's spectrum is too noisy a target
  (two batches of 32 photos differ by 0.03, more than a generator with 1.3× the photos' fine
  power differs from them).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

#: Power of a ring is compared in logs; this keeps empty (all-flat) batches finite.
LOG_EPSILON = 1e-8


def _ring_index(size: int) -> np.ndarray:
    """Ring (0 … size/2 − 2) of each unshifted FFT frequency of a size × size image; −1 for the
    DC term and for frequencies beyond the Nyquist circle."""
    freq = np.fft.fftfreq(size) * size
    radius = np.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).astype(int)
    ring = radius - 1
    ring[(radius < 1) | (radius >= size // 2)] = -1
    return ring


def radial_power(images: tf.Tensor) -> tf.Tensor:
    """Mean spectral power per ring of a batch of NHWC square images: a [size/2 − 1] vector.

    Images in any fixed range; colours are averaged to grey and each image's mean removed.
    """
    images = tf.convert_to_tensor(images)
    size = int(images.shape[1])
    if images.shape[2] != size or size < 8:
        raise ValueError(f"the spectrum needs square images of at least 8 px, got "
                         f"{images.shape[1]}×{images.shape[2]}")
    grey = tf.reduce_mean(tf.cast(images, tf.float32), axis=-1)
    grey -= tf.reduce_mean(grey, axis=[1, 2], keepdims=True)
    power = tf.reduce_mean(tf.abs(tf.signal.fft2d(tf.complex(grey, tf.zeros_like(grey)))) ** 2,
                           axis=0) / float(size * size)
    ring = _ring_index(size).reshape(-1)
    keep = np.flatnonzero(ring >= 0)
    return tf.math.unsorted_segment_mean(tf.gather(tf.reshape(power, [-1]), keep),
                                         ring[keep], size // 2 - 1)


def spectral_loss(fake: tf.Tensor, target_power: tf.Tensor) -> tf.Tensor:
    """Mean squared difference of log ring powers, ``fake``'s against ``target_power`` (a
    :func:`radial_power` vector, no gradient to it); 0 when they agree."""
    fake_log = tf.math.log(radial_power(fake) + LOG_EPSILON)
    target_log = tf.math.log(tf.stop_gradient(target_power) + LOG_EPSILON)
    return tf.reduce_mean(tf.square(fake_log - target_log))


def fine_detail_power(fake: np.ndarray | tf.Tensor, real: np.ndarray | tf.Tensor,
                      batch: int = 100) -> float:
    """Generated over real power on the finest third of the rings (mean of the ring ratios).

    Both sets are NHWC images on the same scale (e.g. uint8 RGB), read in batches of ``batch``.
    """
    def mean_power(images) -> np.ndarray:
        images = np.asarray(images, np.float32)
        total = np.zeros(images.shape[1] // 2 - 1)
        for start in range(0, len(images), batch):
            part = images[start:start + batch]
            total += radial_power(part).numpy() * len(part)
        return total / len(images)

    fake_power, real_power = mean_power(fake), mean_power(real)
    if fake_power.shape != real_power.shape:
        raise ValueError(f"generated and real faces differ in size: {len(fake_power)} and "
                         f"{len(real_power)} rings")
    fine = slice(2 * len(real_power) // 3, None)
    return float(np.mean(fake_power[fine] / np.maximum(real_power[fine], LOG_EPSILON)))
