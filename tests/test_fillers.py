"""Fillers around a suspect's latent, and the projector that finds that latent."""
import numpy as np
import pytest

from models.bundle import load_bundle
from models.fillers import filler_page
from models.images import to_uint8
from models.latent import fit_pca
from models.projector import project


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir):
    return load_bundle(tiny_bundle_dir, parts=("generator", "discriminator"))


@pytest.fixture(scope="module")
def pca(bundle):
    return fit_pca(bundle.generator, num_samples=2000, num_components=16, seed=1)


@pytest.fixture(scope="module")
def center(bundle):
    z = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    return bundle.generator.map_compiled(z).numpy()[0]


def test_a_page_is_ranked_reproducible_and_recorded(bundle, pca, center):
    page = filler_page(bundle, pca, center, page=1, per_page=6, radius=2.0, seed=4,
                       near_clone_threshold=0.0, parents=["suspect-1"])
    assert len(page.records) == 6 and page.images.shape == (6, 32, 32, 3)
    assert list(page.distances) == sorted(page.distances)
    assert page.radius == pytest.approx(2.0 * 1.5)
    rec = page.records[0]
    assert rec.operation == "fillers" and rec.parents == ["suspect-1"]
    assert rec.latent_space == "w+" and rec.bundle_hash == bundle.hash
    assert rec.parameters["identity_distance"] == pytest.approx(page.distances[0])
    # The record re-renders its face exactly.
    from models.generate import render_record

    np.testing.assert_array_equal(render_record(bundle, rec), page.images[0])
    again = filler_page(bundle, pca, center, page=1, per_page=6, radius=2.0, seed=4,
                        near_clone_threshold=0.0)
    assert [r.latent for r in again.records] == [r.latent for r in page.records]


def test_later_pages_move_further_from_the_suspect(bundle, pca, center):
    def mean_offset(p):
        page = filler_page(bundle, pca, center, page=p, per_page=4, radius=1.0,
                           radius_growth=2.0, near_clone_threshold=0.0, seed=2)
        ws = np.asarray([r.latent for r in page.records])
        return np.mean(np.linalg.norm(pca.to_whitened(ws[:, 0]) - pca.to_whitened(center[0]),
                                      axis=1))
    first, third = mean_offset(0), mean_offset(2)
    assert first <= 1.0 + 1e-6 and 3.0 < third <= 5.0 + 1e-6


def test_near_clones_are_left_out_and_counted(bundle, pca, center):
    page = filler_page(bundle, pca, center, per_page=4, radius=0.5, near_clone_threshold=10.0)
    assert page.records == [] and page.near_clones == page.candidates > 0
    mixed = filler_page(bundle, pca, center, per_page=4, radius=0.5, near_clone_threshold=0.4)
    assert len(mixed.records) + mixed.near_clones <= mixed.candidates
    assert all(d >= 0.4 for d in mixed.distances)


def test_filler_arguments_are_checked(bundle, pca, center):
    with pytest.raises(ValueError, match="faces per page must be from 1 to 200"):
        filler_page(bundle, pca, center, per_page=0)
    with pytest.raises(ValueError, match="radius must be a finite number"):
        filler_page(bundle, pca, center, radius=float("inf"))
    with pytest.raises(ValueError, match=r"latent must be \[8, 32\]"):
        filler_page(bundle, pca, center[:3])


@pytest.mark.parametrize("space", ["w", "w+"])
def test_projector_reconstructs_a_generated_face(bundle, space):
    g = bundle.generator
    true_ws = g.map_compiled(np.random.default_rng(5).standard_normal((1, 32)).astype(np.float32),
                             0.5).numpy()[0]
    target = to_uint8(g.synthesize(true_ws[None]).numpy())[0]
    start = to_uint8(g.synthesize(np.tile(g.w_avg.numpy(), [1, 8, 1])).numpy())[0]
    seen = []
    result = project(bundle, target, space=space, steps=120, progress=lambda p, m: seen.append(p))
    mse = lambda a: float(np.mean((a.astype(np.float64) - target) ** 2))  # noqa: E731
    # Stated tolerance: the reconstruction error falls to under a quarter of the average face's.
    assert mse(result.image) < 0.25 * mse(start)
    assert result.losses[-1] < result.losses[0] and result.steps == 120
    assert seen[-1] == 100.0
    if space == "w":
        assert np.all(result.ws == result.ws[0])  # one w, broadcast


def test_projector_stops_at_its_time_limit_and_on_cancel(bundle):
    target = np.zeros((32, 32, 3), np.uint8)
    assert project(bundle, target, steps=10_000, time_limit=1.0).stopped == "time limit"
    assert project(bundle, target, steps=100, should_stop=lambda: True).stopped == "cancelled"
    with pytest.raises(ValueError, match="aligned 32×32 RGB"):
        project(bundle, np.zeros((16, 16, 3), np.uint8))
