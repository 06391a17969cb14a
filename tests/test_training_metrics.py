"""Quality metrics: identity Fréchet distance, precision/recall, one-face rate, attribute shares."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.faces import aligned_face_count
from models.training.metrics import (distribution, distribution_difference,
                                     frechet_distance, one_face_rate, precision_recall,
                                     utkface_label_distribution)
from tests.conftest import SHARED

LONDON = SHARED / "faces" / "london"
NO_FACE = SHARED / "faces" / "no_face"
needs_photos = pytest.mark.skipif(not (LONDON.is_dir() and NO_FACE.is_dir()),
                                  reason=f"{LONDON} or {NO_FACE} is absent (shared test photos)")


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((400, 16))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_mean_shift_is_the_squared_shift():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8))  # correlated features
    for shift in (0.5, 2.0):
        delta = np.full(8, shift)
        # Same covariance, so FD = |Δμ|² exactly (up to rounding).
        assert frechet_distance(x, x + delta) == pytest.approx(8 * shift ** 2, rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20000, 3)) * [1.0, 2.0, 3.0]
    b = rng.standard_normal((20000, 3)) * [2.0, 2.0, 1.0] + [1.0, 0.0, 0.0]
    # Σ (σa − σb)² + |Δμ|² for diagonal covariances: 1 + 0 + 4 + 1 = 6.
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.03)
    # Fewer samples than dimensions: singular covariances still give a finite, real value.
    assert np.isfinite(frechet_distance(rng.standard_normal((5, 128)),
                                        rng.standard_normal((6, 128))))


def test_identity_spread_is_the_share_of_the_real_variance():
    from models.training.metrics import identity_spread

    real = np.random.default_rng(3).standard_normal((4000, 8))
    assert identity_spread(real[:2000], real[2000:]) == pytest.approx(1.0, abs=0.05)
    assert identity_spread(0.5 * real[:2000] + 3, real[2000:]) == pytest.approx(0.25, abs=0.02)


def test_precision_and_recall_on_separated_clusters():
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal([10, 0], 0.1, (100, 2))])
    both = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal([10, 0], 0.1, (100, 2))])
    one_mode = rng.normal(0, 0.1, (200, 2))
    far = rng.normal([0, 50], 0.1, (200, 2))
    p, r = precision_recall(real, both)
    assert p > 0.9 and r > 0.9
    p, r = precision_recall(real, one_mode)  # mode collapse: realistic but covers half
    assert p > 0.9 and 0.35 < r < 0.6
    assert precision_recall(real, far) == (0.0, 0.0)
    half = np.concatenate([rng.normal(0, 0.1, (100, 2)), far[:100]])  # half the fakes are off
    p, _ = precision_recall(real, half)
    assert 0.4 < p < 0.6
    with pytest.raises(ValueError, match="more than 3 samples"):
        precision_recall(real[:3], both)


def test_attribute_distribution_difference_in_percentage_points():
    gen = {"gender": distribution(["male", "male", "male", "female"], ("male", "female"))}
    ref = {"gender": distribution(["male", "female"], ("male", "female"))}
    diff = distribution_difference(gen, ref)
    assert diff == {"gender": {"pp": {"male": 25.0, "female": -25.0}, "max_abs_pp": 25.0}}
    with pytest.raises(ValueError, match="not among"):
        distribution(["robot"], ("male", "female"))
    labels = utkface_label_distribution(["25_0_1_2017.jpg.chip.jpg", "3_1_0_2017.jpg.chip.jpg"])
    assert labels["gender"] == {"male": 0.5, "female": 0.5}
    assert labels["age_group"]["20-29"] == 0.5 and labels["age_group"]["0-9"] == 0.5
    assert labels["ethnicity"]["black"] == 0.5 and labels["ethnicity"]["white"] == 0.5
    assert utkface_label_distribution(["face.png"]) is None


def _read(path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].copy()


@needs_photos
def test_one_face_rate_on_real_photos():
    faces = [_read(p) for p in sorted(LONDON.glob("*.jpg"))[:6]]
    assert one_face_rate(faces) == 1.0
    # Aligned at 64 px, as generated faces are, they are still found after upscaling.
    import cv2

    small = [cv2.resize(f[64:448, 64:448], (64, 64), interpolation=cv2.INTER_AREA) for f in faces]
    assert one_face_rate(small) >= 5 / 6
    others = [_read(p) for p in sorted(NO_FACE.glob("*.jpg"))]
    assert [aligned_face_count(o) for o in others] == [0] * len(others)
    assert one_face_rate(faces[:3] + others) == pytest.approx(3 / (3 + len(others)))


@needs_photos
def test_evaluate_a_bundle_against_real_photos(tiny_bundle_dir, tmp_path):
    from tests.conftest import ligan

    out = tmp_path / "metrics.json"
    r = ligan("train", "metrics", "--bundle", str(tiny_bundle_dir), "--real", str(LONDON),
              "--samples", "8", "--psi", "0.7", "--json", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "identity Fréchet distance" in r.stdout and "one-face rate" in r.stdout
    result = json.loads(out.read_text())
    assert result["samples"] == 8 and result["real_samples"] == 8
    assert result["real_one_face_rate"] == 1.0
    assert result["fd_identity"] > 0 and 0 <= result["precision"] <= 1
    assert result["one_face_rate"] < 0.5  # random weights do not draw faces
    assert result["fine_detail_power"] > 0 and "fine-detail power" in r.stdout
    assert result["identity_spread"] > 0 and "identity spread" in r.stdout
    assert result["fid"] is None


@needs_photos
def test_fine_detail_power_tells_blur_and_grain_from_photos():
    """Generated over real power at the finest third of frequencies: about 1 for other photos
    of the same kind, below for blurred ones, above for grainy ones."""
    import cv2

    from models.training.spectrum import fine_detail_power

    photos = np.stack([cv2.resize(cv2.imread(str(p))[:, :, ::-1], (64, 64),
                                  interpolation=cv2.INTER_AREA)
                       for p in sorted(LONDON.glob("*.jpg"))[:40]]).astype(np.float32)
    first, second = photos[:20], photos[20:]
    blurred = np.stack([cv2.GaussianBlur(p, (5, 5), 1.0) for p in second])
    grainy = second + np.random.default_rng(0).normal(0, 12, second.shape)
    assert 0.6 < fine_detail_power(second, first) < 1.6
    assert fine_detail_power(blurred, first) < 0.3 * fine_detail_power(second, first)
    assert fine_detail_power(grainy, first) > 1.5 * fine_detail_power(second, first)
    with pytest.raises(ValueError, match="differ in size"):
        fine_detail_power(second, photos[:, :32, :32])


def test_evaluate_with_an_attribute_model_compares_distributions(tiny_generator, tmp_path):
    from models.attributes.model import AttributeConfig, AttributeModel
    from models.training.metrics import RealSet, evaluate_generator

    rng = np.random.default_rng(0)
    folder = tmp_path / "utk"
    folder.mkdir()
    import cv2

    for i, name in enumerate(["25_0_0_1", "35_1_1_2", "45_0_2_3", "55_1_3_4", "65_0_4_5"]):
        cv2.imwrite(str(folder / f"{name}.jpg.chip.jpg"), rng.integers(0, 255, (32, 32, 3),
                                                                    dtype=np.uint8))
    real = RealSet(folder, 5, 32, progress=False)
    assert real.labels["gender"] == {"male": 0.6, "female": 0.4}
    model = AttributeModel(AttributeConfig(resolution=32, work_resolution=16, channel_base=256,
                                           channel_max=32), seed=1)
    result = evaluate_generator(tiny_generator, real, 6, psi=0.7, attribute_model=model,
                                progress=False)
    attrs = result["attributes"]
    assert attrs["reference"] == "labels"
    assert set(attrs["difference"]) == {"gender", "age_group", "ethnicity"}
    g = attrs["generated"]["gender"]
    assert attrs["difference"]["gender"]["pp"]["male"] == pytest.approx(
        100 * (g["male"] - 0.6), abs=0.01)
    # Also against the classifier's predictions on the same real faces (its errors cancel).
    from models.training.metrics import format_table, predicted_distribution, scalars

    assert attrs["real_predicted"] == predicted_distribution(model, real.images)
    rp = attrs["real_predicted"]["gender"]["male"]
    assert attrs["difference_predicted"]["gender"]["pp"]["male"] == pytest.approx(
        100 * (g["male"] - rp), abs=0.01)
    # The second instrument: a probe on the identity embeddings, fitted on the labelled faces.
    probe = result["attributes_probe"]
    assert set(probe["generated"]) == {"gender", "age_group", "ethnicity"}
    assert probe["real"]["gender"] == {"male": 0.6, "female": 0.4}
    pg = probe["generated"]["gender"]
    assert probe["difference"]["gender"]["pp"]["male"] == pytest.approx(
        100 * (pg["male"] - 0.6), abs=0.01)
    assert 0.0 <= probe["accuracy"]["gender"] <= 1.0
    table = format_table(result)
    assert "generated vs real (labels)" in table and "generated vs real (predicted too)" in table
    assert "identity-embedding probe" in table and "probe: generated vs real (labels)" in table
    assert "metrics/ethnicity_probe_max_abs_pp" in scalars(result)
    json.dumps(result)  # JSON-able


def test_the_embedding_probe_reads_generated_faces_by_the_real_faces_labels():
    from models.training.metrics import embedding_probe, scalars

    rng = np.random.default_rng(0)
    axis = np.zeros(128)
    axis[0] = 1.0
    real = np.concatenate([rng.normal(0, 0.3, (60, 128)) + axis,
                           rng.normal(0, 0.3, (60, 128)) - axis])
    labels = {"gender": ["male"] * 60 + ["female"] * 60, "ethnicity": ["asian"] * 120}
    fake = rng.normal(0, 0.3, (30, 128)) + axis  # all on the male side
    probe = embedding_probe(real, labels, fake)
    assert probe["accuracy"]["gender"] > 0.95
    assert probe["generated"]["gender"] == {"male": 1.0, "female": 0.0}
    assert probe["real_predicted"]["gender"]["male"] == pytest.approx(0.5, abs=0.05)
    # One class only: nothing to learn, and the report says why.
    assert "ethnicity" not in probe["generated"]
    assert "1 class" in probe["skipped"]["ethnicity"]
    assert "label_agreement" not in probe
    # A conditional generator's faces against the groups they were drawn with.
    drawn = {"gender": ["male"] * 20 + ["female"] * 10, "ethnicity": ["asian"] * 30}
    with_labels = embedding_probe(real, labels, fake, fake_labels=drawn)
    assert with_labels["label_agreement"] == {"gender": pytest.approx(20 / 30, abs=1e-4)}
    result = {"attributes_probe": with_labels}
    assert scalars(result)["metrics/gender_label_agreement"] == pytest.approx(0.6667, abs=1e-4)


def test_the_labels_a_conditional_generator_drew_are_those_of_its_faces():
    """drawn_labels replays generated_images' latents: its groups are the ones each face's z
    was mapped with."""
    from models.conditioning import LAYOUTS, label_groups
    from models.stylegan2.config import GeneratorConfig
    from models.stylegan2.generator import Generator
    from models.training.metrics import _latents, drawn_labels

    g = Generator(GeneratorConfig(z_dim=16, w_dim=16, resolution=32, mapping_layers=1,
                                  channel_base=64, channel_max=16,
                                  label_groups=label_groups("utkface")), seed=0)
    traits = LAYOUTS["utkface"]
    got = drawn_labels(g, traits, 37, seed=3, batch_size=16)
    assert {t: len(v) for t, v in got.items()} == {t: 37 for t in traits}
    z = np.concatenate(list(_latents(g, 37, 3, 16)))
    rows = g.mapping.labels_from_z(z).numpy()
    assert got["gender"] == [traits["gender"][i] for i in rows[:, :2].argmax(axis=1)]
    assert got["ethnicity"] == [traits["ethnicity"][i] for i in rows[:, 10:].argmax(axis=1)]
    assert len(set(got["age_group"])) > 2


@needs_photos
def test_the_trainer_reports_metrics_at_every_snapshot(tmp_path):
    from models.bundle import load_bundle
    from models.training.stylegan2 import Trainer
    from tests.conftest import tiny_train_config

    run = tmp_path / "run"
    cfg = tiny_train_config(total_kimg=0.016, snapshot_kimg=0.008, tick_kimg=0.008,
                            metrics_real=str(LONDON), metrics_samples=4)
    assert Trainer(cfg, run).train()["finished"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    snaps = [x for x in lines if x.get("snapshot")]
    assert [s["kimg"] for s in snaps] == [0.008, 0.016]
    for s in snaps:
        assert s["quality"]["samples"] == 4 and s["quality"]["real_one_face_rate"] == 1.0
        assert s["metrics/fd_identity"] == s["quality"]["fd_identity"] > 0
        assert 0 <= s["metrics/one_face_rate"] <= 1
    assert [x["kimg"] for x in lines if not x.get("snapshot")] == [0.008, 0.016]  # ticks stay
    manifest = load_bundle(run / "bundle", parts=()).manifest
    assert manifest["training"]["metrics"]["fd_identity"] == snaps[-1]["metrics/fd_identity"]


def test_real_vs_generated_detectors_tell_apart_only_what_differs():
    """Sharp noisy 'photos' against smooth 'renders': the pixel detector separates them and
    the embedding detector, given identical embeddings, stays near chance."""
    from models.training.realness import real_vs_generated

    rng = np.random.default_rng(0)
    sharp = (rng.random((60, 16, 16, 3)) * 255).astype(np.uint8)
    smooth = np.repeat(np.repeat(sharp[:, ::4, ::4], 4, axis=1), 4, axis=2)
    same = rng.standard_normal((120, 8))
    out = real_vs_generated(same[:60], same[60:], sharp, smooth, seed=0)
    assert out["faces_each"] == 60 and out["goal"] == 0.75
    assert out["pixel_accuracy"] >= 0.9
    assert out["embedding_accuracy"] <= 0.7
