"""The renderer's ceiling: the metrics' instruments read on reconstructions of labelled faces."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import REPO, SHARED

UTKFACE = SHARED / "data" / "utkface"
LONDON = SHARED / "faces" / "london"
needs_utkface = pytest.mark.skipif(not UTKFACE.is_dir(),
                                   reason=f"{UTKFACE} is absent (shared UTKFace data)")


@pytest.fixture(scope="module")
def real():
    from models.training.metrics import RealSet

    return RealSet(UTKFACE, 30, 64, seed=2, progress=False)


@pytest.fixture(scope="module")
def attribute_model():
    from models.bundle import load_bundle

    return load_bundle(REPO / "models" / "bundles" / "default", parts=())


@needs_utkface
def test_a_perfect_renderer_reads_exactly_like_the_photos(real, attribute_model):
    """Reconstructions identical to the photos: same person every time, and each instrument's
    accuracy and shares on them are its readings of the photos (the probe's are its
    cross-validated readings, as in the main result)."""
    from models.training.metrics import embedding_probe, predicted_distribution
    from models.training.reconstructions import format_lines, reconstruction_check

    check = reconstruction_check(lambda faces: faces.copy(), real, attribute_model,
                                 progress=False)
    assert check["samples"] == 30
    assert check["identity_distance_mean"] == 0.0 and check["same_person_rate"] == 1.0
    assert check["fd_identity"] == pytest.approx(0.0, abs=1e-3)
    assert check["real"]["gender"] == real.labels["gender"]
    model = check["instruments"]["attribute_model"]
    photos = predicted_distribution(attribute_model, real.images)
    for trait in ("gender", "age_group", "ethnicity"):
        assert model[trait]["accuracy"] == model[trait]["accuracy_photos"]
        assert model[trait]["shares"] == photos[trait]
        pp = model[trait]["difference"]["pp"]
        first = next(iter(pp))
        assert pp[first] == pytest.approx(
            100 * (photos[trait][first] - real.labels[trait][first]), abs=0.01)
    probe = check["instruments"]["probe"]
    reference = embedding_probe(real.embeddings, real.face_labels, real.embeddings)
    for trait in probe:
        assert probe[trait]["accuracy"] == probe[trait]["accuracy_photos"]
        assert probe[trait]["accuracy_photos"] == reference["accuracy"][trait]
        assert probe[trait]["shares"] == reference["real_predicted"][trait]
    assert {"gender", "ethnicity"} <= set(probe)
    text = "\n".join(format_lines(check))
    assert "reconstructions of 30 real faces" in text and "identity-embedding probe" in text
    json.dumps(check)


@needs_utkface
def test_reconstructions_of_other_people_are_not_the_same_person(real):
    """Each reconstruction is compared with its own photo: a renderer that returns someone
    else's face for each photo keeps almost no identity."""
    from models.training.reconstructions import reconstruction_check

    check = reconstruction_check(lambda faces: faces[::-1].copy(), real, progress=False)
    assert check["same_person_rate"] < 0.2
    assert check["identity_distance_mean"] > 0.6
    assert check["identity_distance_others_mean"] < check["identity_distance_mean"] + 0.1
    assert check["fd_identity"] == pytest.approx(0.0, abs=1e-3)  # same population
    assert "attribute_model" not in check["instruments"]


@pytest.mark.skipif(not LONDON.is_dir(), reason=f"{LONDON} is absent (shared test photos)")
def test_without_labels_only_identity_is_read():
    from models.training.metrics import RealSet
    from models.training.reconstructions import format_lines, reconstruction_check

    real = RealSet(LONDON, 4, 64, progress=False)
    check = reconstruction_check(lambda faces: faces.copy(), real, progress=False)
    assert check["same_person_rate"] == 1.0
    assert "instruments" not in check and "labels" in check["attributes_skipped"]
    assert "attribute readings skipped" in "\n".join(format_lines(check))


@needs_utkface
def test_metrics_of_a_bundle_with_an_encoder_read_its_reconstructions(tmp_path):
    from tests.conftest import ligan

    out = tmp_path / "metrics.json"
    r = ligan("train", "metrics", "--bundle", str(REPO / "models" / "bundles" / "default"),
              "--real", str(UTKFACE), "--samples", "8", "--real-samples", "20",
              "--json", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "reconstructions of 20 real faces" in r.stdout
    check = json.loads(out.read_text())["reconstructions"]
    assert check["samples"] == 20 and 0.0 <= check["same_person_rate"] <= 1.0
    # The shipped encoder keeps some identity: closer to its own photo than to the others.
    assert check["identity_distance_mean"] < check["identity_distance_others_mean"]
    assert set(check["instruments"]) == {"attribute_model", "probe"}
    assert 0.0 <= check["instruments"]["attribute_model"]["gender"]["accuracy"] <= 1.0
