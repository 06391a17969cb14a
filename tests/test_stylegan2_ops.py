"""The resampling and modulation primitives against their textbook definitions in NumPy."""
import numpy as np
import pytest
import tensorflow as tf

from models.stylegan2 import ops


def fir_np(x: np.ndarray, kernel: np.ndarray, pad0: int, pad1: int) -> np.ndarray:
    """Per-channel 2-D convolution (flipped kernel) of NHWC x after zero padding."""
    x = np.pad(x, [(0, 0), (pad0, pad1), (pad0, pad1), (0, 0)])
    k = kernel[::-1, ::-1]
    kh, kw = k.shape
    out = np.zeros((x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1, x.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += k[i, j] * x[:, i:i + out.shape[1], j:j + out.shape[2], :]
    return out


def test_fir_kernel_is_normalised_and_separable():
    k = ops.fir_kernel(gain=4.0)
    assert k.shape == (4, 4)
    assert k.sum() == pytest.approx(4.0)
    np.testing.assert_allclose(k, np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64 * 4, rtol=1e-6)


def test_upsample_2d_matches_zero_insertion_and_filter():
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype(np.float32)
    up = np.zeros((2, 10, 10, 3), np.float32)
    up[:, ::2, ::2] = x
    expected = fir_np(up, ops.fir_kernel(gain=4.0), 2, 1)
    np.testing.assert_allclose(ops.upsample_2d(tf.constant(x)).numpy(), expected, atol=1e-5)


def test_upsample_keeps_a_constant_image_constant():
    x = tf.ones([1, 6, 6, 2]) * 0.5
    y = ops.upsample_2d(x).numpy()
    np.testing.assert_allclose(y[:, 2:-2, 2:-2], 0.5, atol=1e-6)


def test_conv2d_down_is_blur_then_strided_conv():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    blurred = fir_np(x, ops.fir_kernel(), 2, 2)  # 10 x 10
    expected = np.zeros((2, 4, 4, 4))
    for i in range(4):
        for j in range(4):
            patch = blurred[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            expected[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    np.testing.assert_allclose(ops.conv2d_down(tf.constant(x), tf.constant(w)).numpy(), expected,
                               atol=1e-4)


@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_equals_per_sample_modulated_kernels(up):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 4, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)  # correlation layout
    styles = rng.standard_normal((3, 5)).astype(np.float32)
    gain = 1 / np.sqrt(45)
    weight = ops.to_scatter_layout(w) if up else w
    got = ops.modulated_conv2d(tf.constant(x), tf.constant(weight), tf.constant(styles), gain,
                               demodulate=True, up=up).numpy()
    for n in range(3):
        wn = w * gain * styles[n][None, None, :, None]
        wn = wn / np.sqrt((wn ** 2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
        xn = tf.constant(x[n:n + 1])
        if up:
            u = np.zeros((1, 8, 8, 5), np.float32)
            u[:, ::2, ::2] = x[n:n + 1]
            u = np.pad(u, [(0, 0), (2, 1), (2, 1), (0, 0)])
            y = tf.nn.conv2d(u, wn.astype(np.float32), 1, "VALID").numpy()
            ref = fir_np(y, ops.fir_kernel(gain=4.0), 1, 1)
        else:
            ref = tf.nn.conv2d(xn, wn.astype(np.float32), 1, "SAME").numpy()
        np.testing.assert_allclose(got[n:n + 1], ref, atol=1e-4)


def test_scatter_layout_round_trips():
    w = np.random.default_rng(3).standard_normal((3, 3, 4, 7))
    back = ops.to_scatter_layout(ops.to_scatter_layout(w))
    np.testing.assert_array_equal(back, w)


def test_bias_act_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        ops.bias_act(tf.zeros([1, 2]), None, act="relu6")
