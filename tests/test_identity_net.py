"""The identity network (dlib's descriptor distilled): the network, its training job, its
agreement with dlib, and its use by fillers and the projector.

The agreement tests measure the default bundle's network against dlib on the shared London
photos, which it never saw in training; the tolerances are stated in each test and in
docs/faces.md.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DEFAULT_BUNDLE, SHARED, ligan

LONDON = SHARED / "faces" / "london"
UTKFACE = SHARED / "data" / "utkface"
CELEBA = SHARED / "data" / "celeba_attr"


def _skip_without(*folders: Path) -> None:
    for folder in folders:
        if not folder.is_dir():
            pytest.skip(f"{folder} is absent (shared data, read in place)")


# -- the network -------------------------------------------------------------------------------


def test_network_embeds_batches_and_has_a_gradient():
    import tensorflow as tf

    from models.faces.identity_net import IdentityNet, IdentityNetConfig, identity_loss

    net = IdentityNet(IdentityNetConfig(resolution=32, work_resolution=16, channel_base=256,
                                        channel_max=32, features=16, hidden=16))
    images = (np.random.default_rng(0).random((5, 32, 32, 3)) * 255).astype(np.uint8)
    out = net.embed(images, batch_size=2)
    assert out.shape == (5, 128) and out.dtype == np.float32
    np.testing.assert_allclose(net.embed(images[3]), out[3:4], atol=1e-5)  # one face
    x = tf.Variable(images.astype(np.float32) / 127.5 - 1.0)
    with tf.GradientTape() as tape:
        loss = identity_loss(net, x, out[0])
    grad = tape.gradient(loss, x)
    assert float(tf.reduce_sum(tf.abs(grad))) > 0
    with pytest.raises(ValueError, match="uint8 or float"):
        net.embed(images.astype(np.int32))


def test_config_and_missing_part_errors(tiny_bundle_dir):
    from models.bundle import BundleFileMissingError, load_bundle
    from models.faces.identity_net import (DLIB_MEASURE, IdentityNetConfig, identity_measure,
                                           load_identity_net)
    from models.stylegan2.config import ConfigError

    with pytest.raises(ConfigError, match="power of two"):
        IdentityNetConfig(resolution=48)
    bundle = load_bundle(tiny_bundle_dir)
    assert identity_measure(bundle) == DLIB_MEASURE  # no network: dlib ranks its fillers
    with pytest.raises(BundleFileMissingError, match="ligan train identity"):
        load_identity_net(bundle)


# -- training ----------------------------------------------------------------------------------


def test_training_builds_the_set_trains_and_adds_the_part(tmp_path, tiny_bundle_dir):
    """A few steps on a tiny bundle: the distillation set holds UTKFace, CelebA and generated
    groups with dlib's embeddings, the network is added to the bundle with its agreement, and
    running the command again resumes (nothing to do) instead of starting over."""
    _skip_without(UTKFACE, CELEBA)
    from models.bundle import add_part, load_bundle
    from models.faces.identity_net import (IDENTITY_PART, NET_MEASURE, identity_measure,
                                           load_identity_net)
    from models.latent import PCA_PART, fit_pca
    from models.training.identity_data import load_set

    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle_dir)
    pca = fit_pca(load_bundle(bundle_dir).generator, num_samples=200, num_components=8)
    add_part(bundle_dir, PCA_PART, pca.arrays(), pca.config())
    run = tmp_path / "run"
    args = ["train", "identity", "--bundle", str(bundle_dir), "--run-dir", str(run),
            "--utkface", str(UTKFACE), "--celeba", str(CELEBA), "--utkface-faces", "12",
            "--celeba-faces", "6", "--generated-groups", "3", "--neighbours", "2",
            "--workers", "1", "--steps", "6", "--batch", "8", "--tick-steps", "3",
            "--snapshot-steps", "6", "--no-progress"]
    done = ligan(*args)
    assert done.returncode == 0, done.stderr
    assert "finished: 6 steps; added to" in done.stdout
    data = load_set(run / "set")
    sources = set(np.unique(data.source).tolist())
    assert sources == {0, 1, 2} and data.embeddings.shape[1] == 128
    assert len(data) >= 12 + 9  # CelebA photos without a face are left out
    # dlib's embedding of an aligned 32-px face has the usual scale of its descriptor
    assert 0.5 < float(np.linalg.norm(data.embeddings, axis=1).mean()) < 2.0
    bundle = load_bundle(bundle_dir)
    assert identity_measure(bundle) == NET_MEASURE
    config = bundle.manifest["parts"][IDENTITY_PART]["config"]
    assert config["training"]["faces"]["generated"] == 9
    assert "non-commercial" in config["licence"]
    assert load_identity_net(bundle).embed(data.images[:3]).shape == (3, 128)
    again = ligan(*args)
    assert again.returncode == 0 and "finished: 6 steps" in again.stdout
    assert "resumed identity training at step 6" in (run / "log.txt").read_text()


def test_training_refuses_bad_settings(tmp_path, tiny_bundle_dir):
    bad = ligan("train", "identity", "--bundle", str(tiny_bundle_dir), "--run-dir",
                str(tmp_path / "run"), "--batch", "6")
    assert bad.returncode == 2 and "batch size must be a multiple of 4" in bad.stderr
    empty = ligan("train", "identity", "--bundle", str(tiny_bundle_dir), "--run-dir",
                  str(tmp_path / "run"), "--generated-groups", "0")
    assert empty.returncode == 2 and "distillation set would be empty" in empty.stderr


def test_agreement_measures_what_it_says():
    from models.training.identity_net import agreement

    rng = np.random.default_rng(0)
    dlib = rng.standard_normal((40, 128)).astype(np.float32) * 0.05
    group = np.repeat(np.arange(20), 2)
    same = agreement(dlib.copy(), dlib, group)
    assert same["pairs/correlation"] == pytest.approx(1.0)
    assert same["pairs/decision_agreement"] == 1.0 and same["self_distance"] == 0.0
    assert same["close_pairs"] == 20
    noisy = agreement(dlib + rng.standard_normal(dlib.shape).astype(np.float32) * 0.05, dlib,
                      group)
    assert noisy["pairs/correlation"] < 0.9 and noisy["self_distance"] > 0.3
