"""Latent-space operations: PCA of W, ball sampling, offsets, interpolation."""
import shutil

import numpy as np
import pytest

from models import bundle as B
from models.latent import (LatentPCA, apply_offset, fit_pca, interpolate_ws, sample_ball, slerp)


@pytest.fixture(scope="module")
def pca(tiny_generator):
    return fit_pca(tiny_generator, num_samples=2000, num_components=16, seed=1)


def test_pca_axes_are_orthonormal_and_whiten_the_samples(pca, tiny_generator):
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(16), atol=1e-6)
    assert np.all(np.diff(pca.stddev) <= 1e-9)  # sorted by explained variance
    z = np.random.default_rng(9).standard_normal((4000, 32)).astype(np.float32)
    w = tiny_generator.map_compiled(z).numpy()[:, 0]
    coords = pca.to_whitened(w)
    np.testing.assert_allclose(coords.std(axis=0), 1.0, atol=0.1)
    np.testing.assert_allclose(pca.to_whitened(pca.mean + pca.offset(coords[:3])), coords[:3],
                               atol=1e-4)


def test_pca_is_a_bundle_part(pca, tiny_bundle_dir, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    bundle = B.load_bundle(path)
    with pytest.raises(B.BundleFileMissingError, match="ligan bundle fit-pca"):
        LatentPCA.from_bundle(bundle)
    B.add_part(path, "pca", pca.arrays(), config=pca.config())
    loaded = LatentPCA.from_bundle(B.load_bundle(path))
    np.testing.assert_allclose(loaded.components, pca.components, atol=1e-6)
    assert loaded.num_samples == 2000 and loaded.num_components == 16
    assert loaded.filler_radius is None  # not calibrated yet
    loaded.filler_radius, loaded.filler_max_norm, loaded.calibration = 7.5, 19.0, {"centres": 2}
    digest = B.set_part_config(path, "pca", loaded.config())
    again = B.load_bundle(path)
    assert again.hash == digest
    assert LatentPCA.from_bundle(again).filler_radius == 7.5
    assert LatentPCA.from_bundle(again).filler_max_norm == 19.0
    assert LatentPCA.from_bundle(again).calibration == {"centres": 2}
    with pytest.raises(B.BundleFileMissingError, match="has no encoder part"):
        B.set_part_config(path, "encoder", {})


def test_pca_arguments_are_checked(tiny_generator):
    with pytest.raises(ValueError, match="components must be from 1 to 32"):
        fit_pca(tiny_generator, num_samples=100, num_components=64)
    with pytest.raises(ValueError, match="need more samples"):
        fit_pca(tiny_generator, num_samples=10, num_components=16)


def test_ball_samples_are_inside_and_uniform():
    rng = np.random.default_rng(0)
    pts = sample_ball(20000, 2, 3.0, rng)
    r = np.linalg.norm(pts, axis=1)
    assert r.max() <= 3.0
    assert abs(np.mean(r < 1.5) - 0.25) < 0.02  # area fraction of the inner half-radius disc
    assert np.all(sample_ball(5, 7, 0.0, rng) == 0)
    with pytest.raises(ValueError, match="radius"):
        sample_ball(1, 2, -1.0, rng)
    with pytest.raises(ValueError, match="radius"):
        sample_ball(1, 2, float("nan"), rng)


def test_offsets_move_only_the_chosen_layers():
    ws = np.zeros((8, 4), np.float32)
    out = apply_offset(ws, np.ones((2, 4)), layers=[0, 1, 2])
    assert out.shape == (2, 8, 4)
    assert np.all(out[:, :3] == 1) and np.all(out[:, 3:] == 0)


def test_interpolation_ends_are_the_inputs():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((8, 4)), rng.standard_normal((8, 4))
    ws, t = interpolate_ws(a, b, 5)
    assert ws.shape == (5, 8, 4) and t.tolist() == [0, 0.25, 0.5, 0.75, 1]
    np.testing.assert_array_equal(ws[0], a.astype(np.float32))
    np.testing.assert_array_equal(ws[-1], b.astype(np.float32))
    np.testing.assert_allclose(ws[2], (a + b) / 2, atol=1e-6)
    za, zb = rng.standard_normal(16), rng.standard_normal(16)
    zs, _ = slerp(za, zb, 4)
    np.testing.assert_array_equal(zs[0], za.astype(np.float32))
    np.testing.assert_array_equal(zs[-1], zb.astype(np.float32))
    with pytest.raises(ValueError, match="at least 2 steps"):
        interpolate_ws(a, b, 1)
