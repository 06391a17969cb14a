"""A straightforward, per-sample StyleGAN2 synthesis written from the paper's equations.

It shares only the weights with ``models.stylegan2``: each sample's kernels are modulated and
demodulated explicitly, upsampling inserts zeros and convolves at full resolution, and the FIR
filter is a plain 2-D depthwise convolution. Tests use it as an independent oracle for the
batched, compiled path; ``tests/bench/generator.py`` uses it as the naive baseline.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.stylegan2 import Generator
from models.stylegan2.ops import fir_kernel, normalize_2nd_moment, to_scatter_layout

LRELU_GAIN = np.sqrt(2.0)


def _fir(x: tf.Tensor, kernel: np.ndarray, pad0: int, pad1: int) -> tf.Tensor:
    c = x.shape[-1]
    x = tf.pad(x, [[0, 0], [pad0, pad1], [pad0, pad1], [0, 0]])
    k = np.tile(kernel[::-1, ::-1, None, None], [1, 1, c, 1]).astype(np.float32)
    return tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "VALID")


def _zero_insert(x: tf.Tensor) -> tf.Tensor:
    """[1, H, W, C] → [1, 2H, 2W, C] with the samples at even positions."""
    _, h, w, c = x.shape
    out = np.zeros([1, 2 * h, 2 * w, c], np.float32)
    out[:, ::2, ::2, :] = x.numpy()
    return tf.constant(out)


def _dense(layer, x: tf.Tensor) -> tf.Tensor:
    return tf.matmul(x, layer.weight * layer.weight_gain) + layer.bias * layer.bias_gain


def _modconv(x: tf.Tensor, kernel: np.ndarray, style: np.ndarray, demodulate: bool,
             up: bool) -> tf.Tensor:
    """One sample: kernel [k, k, in, out] (correlation layout), style [in]."""
    w = kernel * style[None, None, :, None]
    if demodulate:
        w = w / np.sqrt(np.sum(w ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
    w = tf.constant(w.astype(np.float32))
    if not up:
        return tf.nn.conv2d(x, w, 1, "SAME" if kernel.shape[0] > 1 else "VALID")
    # Zero insertion, a full-resolution correlation over the whole support, then the FIR
    # filter with gain 4: the textbook definition of the official upsampling convolution.
    u = tf.pad(_zero_insert(x), [[0, 0], [2, 1], [2, 1], [0, 0]])
    y = tf.nn.conv2d(u, w, 1, "VALID")  # 2H + 1 samples
    return _fir(y, fir_kernel(gain=4.0), 1, 1)


def synthesize_one(g: Generator, ws: np.ndarray, noise_mode: str = "const") -> np.ndarray:
    """Render one w+ ([num_ws, w_dim]) with the per-sample equations; returns [H, W, C]."""
    img = x = None
    w_idx = 0
    for block in g.synthesis.blocks:
        if block.const is not None:
            x = block.const[None]
        for layer in block.layers:
            style = _dense(layer.affine, ws[None, w_idx]).numpy()[0] * layer.weight_gain
            kernel = layer.weight.numpy()
            if layer.up:
                kernel = to_scatter_layout(kernel)  # back to correlation layout
            x = _modconv(x, kernel, style, demodulate=True, up=layer.up)
            if noise_mode == "const":
                x = x + layer.noise_const[None, :, :, None] * layer.noise_strength
            x = tf.nn.leaky_relu(x + layer.bias, 0.2) * LRELU_GAIN
            w_idx += 1
        t = block.torgb
        style = _dense(t.affine, ws[None, w_idx]).numpy()[0] * t.weight_gain
        rgb = _modconv(x, t.weight.numpy(), style, demodulate=False, up=False) + t.bias
        if img is None:
            img = rgb
        else:
            img = _fir(_zero_insert(img), fir_kernel(gain=4.0), 2, 1) + rgb
    return img.numpy()[0]


def map_one(g: Generator, z: np.ndarray) -> np.ndarray:
    """z [z_dim] → w [w_dim] with the plain equations (no truncation)."""
    x = normalize_2nd_moment(tf.constant(z[None], tf.float32))
    for layer in g.mapping.layers:
        x = tf.nn.leaky_relu(_dense(layer, x), 0.2) * LRELU_GAIN
    return x.numpy()[0]
