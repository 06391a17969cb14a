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


def test_calibration_finds_page_ones_radius_and_where_faces_break(default_bundle):
    """On the trained default generator: near-clones fall with the radius, and the calibrated
    radius is the smallest measured one within the target; faces break up far from the mean,
    and the largest norm is the furthest measured one where they hold."""
    from models.filler_calibration import calibrate_fillers
    from models.latent import LatentPCA

    pca = LatentPCA.from_bundle(default_bundle)
    result = calibrate_fillers(default_bundle, pca, near_clone_share=0.25, broken_share=0.2,
                               centres=3, samples=4, steps=3, norm_samples=16, seed=3)
    table = result.radius_table
    assert result.radius_met and len(table) == 4
    assert [row["radius"] for row in table] == sorted(row["radius"] for row in table)
    assert table[0]["near_clone_share"] > table[-1]["near_clone_share"]
    assert table[0]["mean_distance"] < table[-1]["mean_distance"]
    within = [row["radius"] for row in table if row["near_clone_share"] <= 0.25]
    assert result.radius == pytest.approx(min(within), abs=1e-3)

    norms = result.norm_table
    assert norms[0]["scale"] == 1.0 and norms[0]["broken_share"] <= 0.2
    assert norms[-1]["scale"] == 2.5 and norms[-1]["broken_share"] > 0.2  # far out: broken
    holding = [row["norm"] for row in norms if row["broken_share"] <= 0.2]
    assert result.max_norm == max(holding)
    assert norms[0]["norm"] <= result.max_norm < norms[-1]["norm"]

    result.apply(pca)
    assert pca.filler_radius == result.radius and pca.filler_max_norm == result.max_norm
    assert pca.config()["filler_calibration"]["radius_table"] == table
    with pytest.raises(ValueError, match="near-clone share must be between 0 and 1"):
        calibrate_fillers(default_bundle, pca, near_clone_share=1.5)


def test_pages_use_the_calibrated_radius_and_stay_within_the_largest_norm(bundle, pca, center):
    import dataclasses

    from models.fillers import DEFAULT_RADIUS, page_radius

    assert filler_page(bundle, pca, center, per_page=1, near_clone_threshold=0.0).radius \
        == DEFAULT_RADIUS
    calibrated = dataclasses.replace(pca, filler_radius=2.5)
    assert filler_page(bundle, calibrated, center, page=2, per_page=1,
                       near_clone_threshold=0.0).radius == pytest.approx(2.5 * 2)
    assert filler_page(bundle, calibrated, center, per_page=1, radius=1.0,
                       near_clone_threshold=0.0).radius == 1.0
    # With a largest norm, later pages grow toward the radius that reaches it, never past.
    centre_norm = float(np.max(np.linalg.norm(pca.to_whitened(center), axis=-1)))
    bounded = dataclasses.replace(calibrated, filler_max_norm=centre_norm + 5.0)
    cap = np.sqrt((centre_norm + 5.0) ** 2 - centre_norm ** 2)
    radii = [page_radius(bounded, center, p) for p in range(0, 60, 3)]
    assert radii[0] == 2.5 and all(a < b for a, b in zip(radii, radii[1:]))
    assert radii[-1] < cap and radii[-1] > 2.5 + 0.9 * (cap - 2.5)
    # A suspect already beyond the largest norm keeps page 1's radius on every page.
    tight = dataclasses.replace(calibrated, filler_max_norm=centre_norm / 2)
    assert page_radius(tight, center, 5) == 2.5
    # Around a photo near the edge, later pages still widen: from the photo radius toward the
    # calibrated one, never past it.
    near_photo = [page_radius(tight, center, p, photo_distance=0.6) for p in range(0, 60, 3)]
    assert near_photo[0] < 2.5 and all(a < b for a, b in zip(near_photo, near_photo[1:]))
    assert 2.4 < near_photo[-1] < 2.5


def test_the_photo_radius_widens_as_the_reconstruction_nears_its_photo():
    """Fillers around a reconstruction lie about √(d² + moved²) from the photo (d: the
    reconstruction's distance to it): page 1 moves further the closer the reconstruction,
    within [PHOTO_RADIUS_SCALE, PHOTO_RADIUS_MAX_SCALE] of the calibrated radius."""
    from models.fillers import (PHOTO_DISTANCE_PER_RADIUS, PHOTO_FILLER_DISTANCE,
                                PHOTO_RADIUS_MAX_SCALE, PHOTO_RADIUS_SCALE, photo_radius_scale)

    scales = [photo_radius_scale(d) for d in np.linspace(0.0, 1.0, 21)]
    assert all(a >= b for a, b in zip(scales, scales[1:])) and scales[0] > scales[-1]
    assert scales[0] == PHOTO_RADIUS_MAX_SCALE and scales[-1] == PHOTO_RADIUS_SCALE
    assert 0 < PHOTO_RADIUS_SCALE < PHOTO_RADIUS_MAX_SCALE
    # between the bounds, the expected filler lands at the aimed distance from the photo
    d = 0.45
    moved = PHOTO_DISTANCE_PER_RADIUS * photo_radius_scale(d)
    assert PHOTO_RADIUS_SCALE < photo_radius_scale(d) < PHOTO_RADIUS_MAX_SCALE
    assert np.hypot(d, moved) == pytest.approx(PHOTO_FILLER_DISTANCE)


def test_fillers_around_a_photo_sample_the_radius_its_reconstruction_calls_for(bundle, pca,
                                                                               center):
    import dataclasses

    from models.faces import aligned_face_embedding, identity_distance
    from models.fillers import page_radius, photo_radius_scale, render

    calibrated = dataclasses.replace(pca, filler_radius=2.5)
    assert page_radius(calibrated, center, 0, photo_distance=0.3) == \
        pytest.approx(2.5 * photo_radius_scale(0.3))
    assert page_radius(calibrated, center, 0) == 2.5  # a generated suspect: the calibrated one
    reconstruction = aligned_face_embedding(render(bundle.generator, center[None])[0])[0]
    radii = {}
    for name, photo in (("same", reconstruction), ("far", reconstruction + 0.2)):
        page = filler_page(bundle, calibrated, center, per_page=1, near_clone_threshold=0.0,
                           measure="dlib", reference_embedding=photo)
        distance = float(identity_distance(reconstruction, photo))
        assert page.reference == "photo"
        assert page.reconstruction_photo_distance == pytest.approx(distance, abs=1e-4)
        assert page.radius == pytest.approx(2.5 * photo_radius_scale(distance))
        radii[name] = page.radius
    assert radii["same"] > radii["far"]
    # an explicit radius is taken as given
    assert filler_page(bundle, calibrated, center, per_page=1, radius=1.0, near_clone_threshold=0.0,
                       reference_embedding=reconstruction).radius == 1.0


def test_the_projector_keeps_the_latent_where_the_generator_s_faces_hold(default_bundle):
    """Unbounded, the projector's w+ wandered to 2-3x the norm where faces hold, and fillers
    around it were faces dlib could not find. Started far out on a target that latent draws
    exactly, the pixels alone let it drift further out; the prior brings it back in."""
    import tensorflow as tf

    from models.latent import LatentPCA
    from models.projector import latent_prior

    pca = LatentPCA.from_bundle(default_bundle)
    g = default_bundle.generator
    cap = pca.filler_max_norm
    far = pca.mean + 2.5 * cap * pca.stddev[0] * pca.components[0]
    init = np.tile(far.astype(np.float32), [g.num_ws, 1])
    target = to_uint8(g.synthesize(init[None]).numpy())[0]
    norm = lambda ws: float(np.linalg.norm(pca.to_whitened(ws), axis=-1).max())  # noqa: E731
    assert norm(init) == pytest.approx(2.5 * cap, rel=1e-3)
    without = project(default_bundle, target, init_ws=init, steps=30, latent_weight=0.0)
    with_prior = project(default_bundle, target, init_ws=init, steps=30)  # the default
    assert norm(without.ws) > 2 * cap
    assert norm(with_prior.ws) < norm(without.ws) - 0.5 * cap
    prior = latent_prior(default_bundle)
    assert float(prior(tf.constant(pca.mean[None, None], tf.float32))) == 0.0
    assert float(prior(tf.constant(init[None]))) == pytest.approx(1.5 ** 2, rel=1e-2)


def test_a_latent_prior_needs_a_calibrated_pca(bundle):
    target = np.zeros((32, 32, 3), np.uint8)
    assert project(bundle, target, steps=1).steps == 1  # no PCA: the prior is simply off
    with pytest.raises(ValueError, match="latent prior needs a bundle whose PCA is calibrated"):
        project(bundle, target, steps=1, latent_weight=1.0)


def test_fillers_are_measured_against_the_suspect_photo_not_its_reconstruction(default_bundle):
    """The UI showed 0.41–0.56 (to the reconstruction) where the photo was 0.65–0.76 away."""
    from models.faces import aligned_face_embedding
    from models.faces.identity import identity_distance
    from models.inversion import PHOTO_IDENTITY, invert_photo, record_photo_identity
    from models.latent import LatentPCA
    from tests.conftest import SHARED

    photo = SHARED / "faces" / "london" / "005_03.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} is absent (shared test photos)")
    inv = invert_photo(default_bundle, str(photo), steps=0)
    target, found = aligned_face_embedding(inv.aligned)
    assert found
    # The reconstruction's record keeps the photo's identity for every later task.
    np.testing.assert_allclose(inv.record.parameters[PHOTO_IDENTITY], target, atol=1e-6)
    reference = record_photo_identity(inv.record)
    page = filler_page(default_bundle, LatentPCA.from_bundle(default_bundle),
                       np.asarray(inv.record.latent, np.float32), reference_embedding=reference,
                       measure="dlib", per_page=4, seed=0)
    assert page.reference == "photo" and len(page.records) == 4
    recon, _ = aligned_face_embedding(inv.projection.image)
    for rec, image, dist, to_recon in zip(page.records, page.images, page.distances,
                                          page.reconstruction_distances):
        emb, _ = aligned_face_embedding(image)
        assert rec.parameters["identity_reference"] == "photo"
        assert dist == pytest.approx(float(identity_distance(emb, target)), abs=1e-5)
        assert to_recon == pytest.approx(float(identity_distance(emb, recon)), abs=1e-4)
        assert rec.parameters["identity_distance_reconstruction"] == pytest.approx(to_recon,
                                                                                   abs=1e-4)
    assert not np.allclose(page.distances, page.reconstruction_distances)
    # A generated suspect (no photo) is measured against its own face, as before.
    generated = filler_page(default_bundle, LatentPCA.from_bundle(default_bundle),
                            np.asarray(inv.record.latent, np.float32), measure="dlib",
                            per_page=2, seed=0)
    assert generated.reference == "face"
    np.testing.assert_allclose(generated.distances, generated.reconstruction_distances)
