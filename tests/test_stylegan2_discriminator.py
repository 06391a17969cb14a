"""Discriminator shapes, features and the minibatch standard deviation layer."""
import numpy as np
import pytest
import tensorflow as tf

from models.stylegan2 import Discriminator, DiscriminatorConfig
from models.stylegan2.discriminator import minibatch_stddev


@pytest.fixture(scope="module")
def tiny_d():
    return Discriminator(DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64))


def test_scores_and_features(tiny_d):
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    scores = tiny_d(x)
    assert scores.shape == (4, 1) and np.all(np.isfinite(scores.numpy()))
    feats = tiny_d.features(x)
    assert [tuple(f.shape[1:3]) for f in feats] == [(32, 32), (16, 16), (8, 8), (4, 4)]


def test_any_batch_size_works(tiny_d):
    for n in (1, 3, 6):
        assert tiny_d(np.zeros((n, 32, 32, 3), np.float32)).shape == (n, 1)


def test_official_config_shapes():
    d = Discriminator(DiscriminatorConfig(resolution=256))
    shapes = dict((n, tuple(v.shape)) for n, v in d.named_variables())
    assert shapes["b256.fromrgb.weight"] == (1, 1, 3, 128)
    assert shapes["b256.conv1.weight"] == (3, 3, 128, 256)
    assert shapes["b256.skip.weight"] == (1, 1, 128, 256)
    assert "b256.skip.bias" not in shapes
    assert shapes["b4.conv.weight"] == (3, 3, 513, 512)
    assert shapes["b4.fc.weight"] == (512 * 16, 512)
    assert shapes["b4.out.weight"] == (512, 1)


def test_minibatch_stddev_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4, 4, 6)).astype(np.float32)
    out = minibatch_stddev(tf.constant(x), group_size=4, num_channels=2).numpy()
    assert out.shape == (8, 4, 4, 8)
    np.testing.assert_array_equal(out[..., :6], x)
    m = 8 // 4
    for i in range(8):
        members = x[i % m::m]  # official grouping: sample i sits in group i % (n / group)
        std = np.sqrt(members.var(axis=0) + 1e-8)  # [4, 4, 6]
        for f in range(2):
            expected = std[..., f * 3:(f + 1) * 3].mean()
            np.testing.assert_allclose(out[i, :, :, 6 + f], expected, rtol=1e-5)


def test_identical_samples_have_no_spread():
    x = np.ones((4, 4, 4, 2), np.float32)
    out = minibatch_stddev(tf.constant(x), 4, 1).numpy()
    np.testing.assert_allclose(out[..., 2], 1e-4, rtol=1e-3)
