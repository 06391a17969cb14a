"""The trait probe: gender, ethnicity and age group read from a photo's dlib embedding.

Its fit and reading on synthetic embeddings (labels it must recover), its training command on a
set written here (no dlib needed) and on one it builds from UTKFace, and its use for a suspect
photo's reading with the default bundle, measured against the shared London labels.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DEFAULT_BUNDLE, SHARED, ligan

LONDON = SHARED / "faces" / "london"
UTKFACE = SHARED / "data" / "utkface"


def _faces(n: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """``n`` embeddings whose position carries their labels, with UTKFace-style keys."""
    from models.attributes.heads import CLASS_HEADS

    rng = np.random.default_rng(seed)
    labels = {"age_group": rng.integers(0, 8, n), "gender": rng.integers(0, 2, n),
              "ethnicity": rng.integers(0, 5, n)}
    x = rng.normal(0, 0.05, (n, 128))
    offset = 0
    for trait, y in labels.items():  # each trait on its own axes
        x[np.arange(n), offset + y] += 1.0
        offset += len(CLASS_HEADS[trait])
    keys = [f"{10 * a + 5}_{g}_{e}_2017011{i:07d}.jpg.chip.jpg"
            for i, (a, g, e) in enumerate(zip(labels["age_group"], labels["gender"],
                                              labels["ethnicity"]))]
    return x.astype(np.float32), labels, keys


def test_the_probe_recovers_labels_and_reads_like_the_attribute_model():
    from models.attributes.heads import CLASS_HEADS
    from models.attributes.identity_probe import TraitProbe, fit_trait_probe
    from models.training.metrics import make_probe

    x, labels, _ = _faces(600)
    probe = fit_trait_probe(x[:500], {t: y[:500] for t, y in labels.items()})
    probs = probe.probabilities(x[500:])
    for trait, p in probs.items():
        assert p.shape == (100, len(CLASS_HEADS[trait]))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
        assert np.mean(p.argmax(1) == labels[trait][500:]) > 0.95
    # the stored weights give scikit-learn's probabilities, binary trait included
    for trait in ("gender", "ethnicity"):
        ref = make_probe().fit(x[:500], labels[trait][:500]).predict_proba(x[500:])
        np.testing.assert_allclose(probs[trait], ref, atol=1e-6)
    again = TraitProbe.from_arrays(probe.arrays())
    np.testing.assert_allclose(again.probabilities(x[:5])["age_group"],
                               probe.probabilities(x[:5])["age_group"], atol=1e-5)
    reading = probe.read(x[0])
    assert reading["gender"]["label"] == CLASS_HEADS["gender"][labels["gender"][0]]
    assert set(reading["ethnicity"]["p"]) == set(CLASS_HEADS["ethnicity"])
    # a class that no training face had is never read
    only = fit_trait_probe(x[:500], {"ethnicity": np.where(labels["ethnicity"][:500] == 4, 0,
                                                           labels["ethnicity"][:500])})
    assert (only.probabilities(x)["ethnicity"].argmax(1) != 4).all()


def test_the_probe_refuses_what_it_cannot_fit_or_load():
    from models.attributes.identity_probe import TraitProbe, fit_trait_probe

    x, labels, _ = _faces(50)
    with pytest.raises(ValueError, match="gender needs faces of two classes"):
        fit_trait_probe(x, {"gender": np.zeros(50, int)})
    arrays = fit_trait_probe(x, {"gender": labels["gender"]}).arrays()
    with pytest.raises(ValueError, match="gender needs coef"):
        TraitProbe.from_arrays({**arrays, "gender/intercept": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="unknown trait"):
        TraitProbe.from_arrays({**arrays, "hat/coef": np.zeros((2, 128))})


def _write_set(folder: Path, resolution: int, n: int, gan_held_out: int = 0) -> list[str]:
    """A distillation set of ``n`` labelled "UTKFace" faces (one chunk; the first
    ``gan_held_out`` in the GAN's held-out share) and 5 generated ones; the faces' keys."""
    x, _, keys = _faces(n)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    total = n + 5
    np.savez(folder / "chunk-0-of-1-0000.npz",
             images=rng.integers(0, 255, (total, resolution, resolution, 3), dtype=np.uint8),
             embeddings=np.concatenate([x, rng.normal(0, 1, (5, 128)).astype(np.float32)]),
             faces=np.ones(total, np.int32), source=np.array([0] * n + [2] * 5, np.int32),
             key=np.array(keys + [f"gen-{i}-0" for i in range(5)]),
             group=np.array(keys + [f"gen-{i}" for i in range(5)]),
             test=np.arange(total) < gan_held_out)
    return keys


def test_training_fits_on_a_set_measures_held_out_faces_and_adds_the_part(tmp_path,
                                                                         tiny_bundle_dir):
    from models.attributes.data import UTK_TEST_FRACTION, held_out_by_key
    from models.attributes.identity_probe import PROBE_PART, load_trait_probe
    from models.bundle import load_bundle

    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle_dir)
    run = tmp_path / "run"
    keys = _write_set(run / "set", 32, 400, gan_held_out=30)
    measured = ligan("train", "trait-probe", "--bundle", str(bundle_dir), "--run-dir", str(run),
                     "--no-export")
    assert measured.returncode == 0, measured.stderr
    assert "fitted on" in measured.stdout and "ethnicity" in measured.stdout
    assert "added to" not in measured.stdout and not load_bundle(bundle_dir).has_part(PROBE_PART)
    done = ligan("train", "trait-probe", "--bundle", str(bundle_dir), "--run-dir", str(run))
    assert done.returncode == 0, done.stderr
    assert "added to" in done.stdout
    bundle = load_bundle(bundle_dir)
    config = bundle.manifest["parts"][PROBE_PART]["config"]
    held_out = config["held_out"]
    # the attribute model's held-out share (about 10 % of 400) measures; it and the GAN's
    # held-out share (the lineup evaluation's suspects) are both left out of the fit
    assert 20 < held_out["faces"] < 60 and UTK_TEST_FRACTION == 0.1
    in_either = [held_out_by_key(k, UTK_TEST_FRACTION) or i < 30 for i, k in enumerate(keys)]
    assert sum(in_either) > held_out["faces"]
    assert config["training"]["faces"] == 400 - sum(in_either)
    assert held_out["probe"]["gender"] > 0.9 and held_out["probe"]["ethnicity"] > 0.9
    assert "attribute_model" not in held_out  # the tiny bundle has no attribute model
    assert "non-commercial" in config["licence"]
    assert load_trait_probe(bundle).read(np.zeros(128, np.float32))["gender"]["label"] \
        in ("male", "female")


def test_training_builds_a_set_from_utkface_and_refuses_too_few_faces(tmp_path,
                                                                      tiny_bundle_dir):
    no_set = ligan("train", "trait-probe", "--bundle", str(tiny_bundle_dir), "--run-dir",
                   str(tmp_path / "empty"))
    assert no_set.returncode == 2 and "give --utkface" in no_set.stderr
    if not UTKFACE.is_dir():
        pytest.skip(f"{UTKFACE} is absent (shared data, read in place)")
    run, bundle_dir = tmp_path / "run", tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle_dir)  # 64 px: dlib finds the faces of its crops
    few = ligan("train", "trait-probe", "--bundle", str(bundle_dir), "--run-dir", str(run),
                "--utkface", str(UTKFACE), "--faces", "24", "--workers", "1")
    assert few.returncode == 2 and "need at least 10 of each" in few.stderr
    # the faces were embedded and kept: a rerun reuses them
    from models.training.identity_data import load_set

    data = load_set(run / "set")
    assert 0 < len(data) <= 24 and set(np.unique(data.source).tolist()) == {0}


def test_a_photo_is_read_by_the_default_bundle_s_probe(default_bundle):
    """The London photos (not in UTKFace): the probe's readings are kept with the inversion,
    and read their labels at least as well as the attribute model does."""
    if not LONDON.is_dir():
        pytest.skip(f"{LONDON} is absent (shared test photos)")
    from models.attributes.heads import CLASS_HEADS, label_index
    from models.attributes.identity_probe import PROBE_READER, PROBE_TRAITS, load_trait_probe
    from models.filler_traits import PHOTO_ATTRIBUTES, read_traits
    from models.inversion import align_photo, invert_photo, photo_identity

    inv = invert_photo(default_bundle, str(LONDON / "032_03.jpg"), steps=0)
    kept = inv.record.parameters[PHOTO_ATTRIBUTES]
    model_reading = read_traits(default_bundle, inv.aligned[None])[0]
    probe = load_trait_probe(default_bundle)
    by_probe = probe.read(photo_identity(inv.aligned))
    for trait in kept:
        if trait in PROBE_TRAITS:  # the mean of both readers' probabilities
            assert kept[trait]["reader"] == PROBE_READER
            for name, p in kept[trait]["p"].items():
                assert p == pytest.approx((model_reading[trait]["p"][name]
                                           + by_probe[trait]["p"][name]) / 2, abs=2e-4)
            p = np.array(list(kept[trait]["p"].values()))
            assert kept[trait]["label"] == CLASS_HEADS[trait][int(label_index(trait, p))]
        else:
            assert kept[trait] == model_reading[trait]
    with open(LONDON / "info.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f)][::2]  # one photo per person
    right = {"probe": 0, "model": 0}
    for row in rows:
        aligned, _ = align_photo(LONDON / row["file"], default_bundle.resolution,
                                 framing=default_bundle.framing)
        right["probe"] += probe.read(photo_identity(aligned))["gender"]["label"] == row["gender"]
        right["model"] += read_traits(default_bundle, aligned[None])[0]["gender"]["label"] \
            == row["gender"]
    assert right["probe"] >= right["model"] and right["probe"] >= 0.9 * len(rows)
