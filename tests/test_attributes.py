"""The attribute model, its training job, W directions, filters and edits.

What each test proves is said in its docstring. No trained face generator exists in tests, so
the "semantic" tests use a tiny random generator and a classifier trained for a few dozen steps
on its own images, labelled by a simple image statistic (mean brightness → ``Smiling``): that
checks the machinery (sampling → prediction → scikit-learn boundary → guided sampling and
edits) end to end, not that any real attribute is recognised.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

from setup.config import load_settings
from tests.conftest import SHARED, ligan

SMILING = "Smiling"


# -- parsing ---------------------------------------------------------------------------------


def test_parse_filter_the_issue_example():
    from models.attributes import parse_filter

    spec = parse_filter("men, 40-49, beard, no glasses, not smiling")
    got = {c.trait: (c.values if c.values is not None else c.present) for c in spec.constraints}
    assert got == {"gender": frozenset({"male"}), "age_group": frozenset({"40-49"}),
                   "beard": True, "glasses": False, "smiling": False}


@pytest.mark.parametrize("text, trait, expected", [
    ("Women", "gender", frozenset({"female"})),
    ("30-49", "age_group", frozenset({"30-39", "40-49"})),
    ("40s", "age_group", frozenset({"40-49"})),
    ("60+", "age_group", frozenset({"60-69", "70+"})),
    ("70-99", "age_group", frozenset({"70+"})),
    ("age 20 to 29", "age_group", frozenset({"20-29"})),
    ("asian", "ethnicity", frozenset({"asian"})),
    ("other ethnicity", "ethnicity", frozenset({"other"})),
    ("without  Glasses", "glasses", False),
    ("clean-shaven", "beard", False),
    ("grey hair", "gray_hair", True),
    ("black hair", "black_hair", True),
    ("old", "young", False),
])
def test_parse_filter_phrases(text, trait, expected):
    from models.attributes import parse_filter

    (c,) = parse_filter(text).constraints
    assert c.trait == trait
    assert (c.values if c.values is not None else c.present) == expected


@pytest.mark.parametrize("text, expected", [
    ("man with beard", "gender in {male}, beard"),
    ("a woman without glasses", "gender in {female}, not glasses"),
    ("men with beards and glasses", "gender in {male}, beard, glasses"),
    ("women who are smiling, 20-29", "gender in {female}, smiling, age_group in {20-29}"),
    ("an Asian man wearing glasses", "ethnicity in {asian}, gender in {male}, glasses"),
    ("Asians", "ethnicity in {asian}"),
])
def test_parse_filter_takes_plain_wording(text, expected):
    """'man with beard' was refused; only 'men, beard' worked."""
    from models.attributes import parse_filter

    assert parse_filter(text).describe() == expected


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("men, martian", "unknown filter phrase 'martian'"),
    ("45-54", "start at a decade"),
    ("40-45", "last year"),
    ("50-40", "end is before the start"),
    ("men, women", "asked for twice"),
    ("beard, clean-shaven", "asked for twice"),
    ("no men", "unknown filter phrase"),
    ("man with bread", "did you mean 'beard'"),
    ("people", "says nothing about the faces"),
])
def test_parse_filter_rejects_bad_phrases_clearly(text, fragment):
    from models.attributes import FilterError, parse_filter

    with pytest.raises(FilterError, match=fragment):
        parse_filter(text)


def test_repeating_the_same_phrase_is_fine():
    from models.attributes import parse_filter

    assert len(parse_filter("men, man and male").constraints) == 1


# -- predictions and the filter on predictions -----------------------------------------------


def _random_outputs(n: int, seed: int):
    from models.attributes.heads import CELEBA_HEADS, CLASS_HEADS, HeadOutputs

    rng = np.random.default_rng(seed)
    classes = {k: rng.dirichlet(np.ones(len(v)) * 0.5, n) for k, v in CLASS_HEADS.items()}
    return HeadOutputs(classes, rng.random((n, len(CELEBA_HEADS))))


def test_prediction_dicts_follow_the_probabilities():
    """Labels come from the raw probabilities: argmax for classes (the median class for the
    ordered age groups), p ≥ 0.5 for traits; beard is 1 − No_Beard and gender averages
    UTKFace's head with CelebA's Male."""
    from models.attributes.heads import AGE_GROUPS, CELEBA_HEADS

    out = _random_outputs(50, 1)
    preds = out.to_dicts()
    nb = out.celeba[:, CELEBA_HEADS.index("No_Beard")]
    male = 0.5 * (out.classes["gender"][:, 0] + out.celeba[:, CELEBA_HEADS.index("Male")])
    for i, p in enumerate(preds):
        assert p["beard"]["label"] == (1 - nb[i] >= 0.5)
        assert p["gender"]["label"] == ("male" if male[i] >= 0.5 else "female")
        assert p["ethnicity"]["label"] == max(p["ethnicity"]["p"], key=p["ethnicity"]["p"].get)
        ages = list(p["age_group"]["p"].values())
        median = AGE_GROUPS.index(p["age_group"]["label"])
        assert sum(ages[:median]) < 0.5 + 1e-3 and sum(ages[:median + 1]) >= 0.5 - 1e-3


@pytest.mark.parametrize("p, label", [
    ([0.3, 0, 0, 0.25, 0.25, 0, 0, 0.2], "30-39"),  # flat: the middle, not the stray peak
    ([0, 0, 0.9, 0.1, 0, 0, 0, 0], "20-29"),
    ([0, 0, 0.5, 0.5, 0, 0, 0, 0], "20-29"),  # the half is reached at the first of two
    ([0.2, 0, 0, 0, 0, 0, 0, 0.8], "70+"),
])
def test_age_is_read_as_the_median_group(p, label):
    """An ordered trait names the class where the cumulative probability reaches one half;
    other class traits the most probable class."""
    from models.attributes.heads import AGE_GROUPS, label_index

    assert AGE_GROUPS[label_index("age_group", np.array(p))] == label
    assert label_index("ethnicity", np.array([0.3, 0.25, 0.25, 0.2, 0])) == 0
    batch = np.array([p, p[::-1]])
    assert list(label_index("age_group", batch)) == [AGE_GROUPS.index(label),
                                                     label_index("age_group", np.array(p[::-1]))]


def test_directions_label_samples_as_readings_name_them():
    """The samples a direction is fitted on are labelled by the class their reading names:
    a flat age reading counts for its median decade, not for a stray peak."""
    from models.attributes.directions import sample_targets
    from models.attributes.heads import BINARY_TRAITS, CLASS_HEADS

    rng = np.random.default_rng(0)
    scores = {t: rng.dirichlet(np.ones(len(n)), 2) for t, n in CLASS_HEADS.items()}
    scores["age_group"] = np.array([[0.3, 0, 0, 0.25, 0.25, 0, 0, 0.2],
                                    [0, 0, 0.9, 0.1, 0, 0, 0, 0]])
    scores.update({t: np.array([0.7, 0.2]) for t in BINARY_TRAITS})
    targets = sample_targets(scores)
    assert list(targets["age_group=30-39"]) == [True, False]
    assert list(targets["age_group=0-9"]) == [False, False]
    assert list(targets["age_group=20-29"]) == [False, True]
    winner = scores["gender"].argmax(axis=1)
    assert list(targets["gender=male"]) == list(winner == 0)
    assert all(list(targets[t]) == [True, False] for t in BINARY_TRAITS)


def test_hair_is_read_as_one_colour_or_unsure():
    """The hair trait is a distribution over the four colours and ``unsure`` (what the
    independent hair heads leave to 1): a face is read as a colour only when that colour is the
    likeliest class, so hidden hair reads ``unsure`` rather than as its likeliest colour."""
    from models.attributes.heads import (CELEBA_HEADS, HAIR_HEADS, READ_CLASSES, HeadOutputs,
                                         hair_distribution)

    p = np.array([[0.78, 0.01, 0.0, 0.0], [0.44, 0.03, 0.0, 0.0], [0.9, 0.6, 0.0, 0.0]])
    dist = hair_distribution(p)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(dist[0], [0.78, 0.01, 0.0, 0.0, 0.21], atol=1e-9)
    np.testing.assert_allclose(dist[2], [0.6, 0.4, 0.0, 0.0, 0.0], atol=1e-9)
    out = _random_outputs(3, 4)
    celeba = np.zeros((3, len(CELEBA_HEADS)))
    celeba[:, [CELEBA_HEADS.index(h) for h in HAIR_HEADS]] = p
    preds = HeadOutputs(out.classes, celeba).to_dicts()
    assert [r["hair"]["label"] for r in preds] == ["black", "unsure", "black"]
    assert set(preds[1]["hair"]["p"]) == set(READ_CLASSES["hair"])
    assert preds[1]["hair"]["p"]["unsure"] == pytest.approx(0.53, abs=1e-4)


def test_filter_returns_exactly_the_matching_faces():
    """On 400 random predictions, the filter keeps a face iff every constraint holds when
    checked by hand against the probabilities."""
    from models.attributes import filter_faces, parse_filter
    from models.attributes.heads import AGE_GROUPS, CELEBA_HEADS

    out = _random_outputs(400, 2)
    preds = out.to_dicts()
    spec = parse_filter("men, 30-49, beard, no glasses, not smiling")
    kept = set(filter_faces(preds, spec))
    col = {c: out.celeba[:, CELEBA_HEADS.index(c)] for c in CELEBA_HEADS}
    male = 0.5 * (out.classes["gender"][:, 0] + col["Male"]) >= 0.5
    median_age = (np.cumsum(out.classes["age_group"], axis=1) >= 0.5).argmax(1)
    age = np.isin(median_age,
                  [AGE_GROUPS.index("30-39"), AGE_GROUPS.index("40-49")])
    want = male & age & (col["No_Beard"] <= 0.5) & (col["Eyeglasses"] < 0.5) & (col[SMILING] < 0.5)
    assert kept == set(np.flatnonzero(want))
    assert 0 < len(kept) < 400  # the check is not vacuous


def test_matches_rejects_foreign_dicts():
    from models.attributes import matches, parse_filter

    with pytest.raises(ValueError, match="lacks beard"):
        matches({"gender": {"label": "male"}}, parse_filter("beard"))


# -- a tiny trained classifier on a tiny generator ---------------------------------------------
# (``trained_bundle``, the tiny bundle with a briefly trained attribute model, is in
# tests/conftest.py: tests/test_backend_attribute_tasks.py uses it too)


def test_part_round_trip_and_directions(trained_bundle):
    """The attributes part survives save/load (same predictions from a fresh load, hashes
    verified, also from a packed bundle) and keeps its directions next to the weights."""
    from models.attributes import Directions, load_attribute_model, predict_attributes
    from models.bundle import describe, load_bundle, pack_bundle

    a = load_bundle(trained_bundle)
    images = (np.random.default_rng(0).random((4, 32, 32, 3)) * 255).astype(np.uint8)
    p1 = predict_attributes(a, images)
    assert load_attribute_model(a) is load_attribute_model(a)  # built once per bundle
    packed = pack_bundle(trained_bundle, trained_bundle.parent / "packed.ligan")
    p2 = predict_attributes(load_bundle(packed), images)
    assert p1 == p2
    d = Directions.from_bundle(a)
    assert SMILING.lower() in d.items
    n = d.items["smiling"].normal
    assert abs(np.linalg.norm(n) - 1) < 1e-5
    config = describe(trained_bundle)["parts"]["attributes"]["config"]
    assert "non-commercial" in config["licence"]
    assert config["directions"]["fit"]["num_samples"] == 400


def test_direction_and_edit_move_the_prediction(trained_bundle):
    """The fitted smiling boundary separates the classifier's own labels on held-out samples,
    and editing +2 vs −2 along it raises the predicted p(smiling) for the same faces; an edit
    restricted to some layers changes only those w+ entries."""
    from models.attributes import Directions, edit
    from models.attributes.model import load_attribute_model
    from models.bundle import load_bundle

    bundle = load_bundle(trained_bundle)
    g = bundle.generator
    d = Directions.from_bundle(bundle).get("smiling")
    assert d.accuracy > 0.75
    z = np.random.default_rng(9).standard_normal((16, g.cfg.z_dim)).astype(np.float32)
    ws = g.map_compiled(z).numpy()
    model = load_attribute_model(bundle)
    p = {s: model.predict(g.synthesize(edit(ws, d, s))).trait_scores()["smiling"]
         for s in (-2.0, 0.0, 2.0)}
    assert p[2.0].mean() > p[0.0].mean() > p[-2.0].mean()
    assert (p[2.0] > p[-2.0]).mean() >= 0.8
    part = edit(ws, d, 1.5, layers=[0, 1])
    assert np.array_equal(part[:, 2:], ws[:, 2:]) and not np.allclose(part[:, :2], ws[:, :2])


@pytest.mark.parametrize("kwargs, fragment", [
    ({"strength": float("nan")}, "strength"), ({"strength": 11.0}, "strength"),
    ({"strength": 1.0, "layers": [99]}, "layers must be"), ({"strength": 1.0, "layers": []},
                                                              "layers must be"),
])
def test_edit_rejects_bad_parameters(trained_bundle, kwargs, fragment):
    from models.attributes import Directions, edit
    from models.bundle import load_bundle

    bundle = load_bundle(trained_bundle)
    d = Directions.from_bundle(bundle).get("smiling")
    with pytest.raises(ValueError, match=fragment):
        edit(np.zeros((bundle.generator.num_ws, 32), np.float32), d, **kwargs)


def test_unknown_or_skipped_direction_is_a_clear_error(trained_bundle):
    from models.attributes import Directions
    from models.bundle import load_bundle

    d = Directions.from_bundle(load_bundle(trained_bundle))
    with pytest.raises(ValueError, match="unknown attribute 'moustache'"):
        d.get("moustache")
    skipped = next(iter(d.skipped))
    with pytest.raises(ValueError, match="samples on one side"):
        d.get(skipped)


def test_generate_matching_returns_only_matching_faces(trained_bundle):
    """Guided and blind sampling both return faces that match per the classifier when their
    images are classified again, and count every candidate."""
    from models.attributes import generate_matching, parse_filter, predict_attributes
    from models.bundle import load_bundle

    bundle = load_bundle(trained_bundle)
    spec = parse_filter("smiling")
    for guided in (True, False):
        res = generate_matching(bundle, spec, 6, guided=guided, max_candidates=200, seed=4)
        assert res.accepted == 6 and res.candidates >= 6
        again = predict_attributes(bundle, res.images)
        assert all(p["smiling"]["label"] for p in again)
        assert len(res.ws) == 6
    guided = generate_matching(bundle, parse_filter("not smiling"), 12, max_candidates=500)
    blind = generate_matching(bundle, parse_filter("not smiling"), 12, guided=False,
                              max_candidates=500)
    assert guided.candidates <= blind.candidates


@pytest.mark.parametrize("kwargs, fragment", [
    ({"n": 0}, "n must be"), ({"n": 2, "max_candidates": 0}, "max_candidates"),
    ({"n": 2, "margin": -1.0}, "margin"), ({"n": 2, "psi": 0.0}, "psi"),
    ({"n": 2, "pool": 0}, "pool"),
])
def test_generate_matching_rejects_bad_parameters(trained_bundle, kwargs, fragment):
    from models.attributes import generate_matching, parse_filter
    from models.bundle import load_bundle

    with pytest.raises(ValueError, match=fragment):
        generate_matching(load_bundle(trained_bundle), parse_filter("smiling"), **kwargs)


def test_records_keep_predictions_and_edits_reproduce(trained_bundle):
    """Predictions are stored under parameters["attributes"]; an edit record re-renders to its
    own image and names its parent."""
    from models.attributes.records import annotate, edit_strip
    from models.bundle import load_bundle
    from models.generate import render_record, z_from_seed
    from models.records import FaceRecord, latent_to_list

    bundle = load_bundle(trained_bundle)
    rec = FaceRecord(bundle_hash=bundle.hash, latent_space="z",
                     latent=latent_to_list(z_from_seed(5, 32)), operation="generate",
                     parameters={"seed": 5})
    (pred,) = annotate(bundle, [rec])
    assert rec.parameters["attributes"] == pred and "smiling" in pred
    records, images = edit_strip(bundle, rec, "smiling", [-1.0, 0.0, 1.0], layers=[0, 1, 2])
    assert [r.parameters["strength"] for r in records] == [-1.0, 0.0, 1.0]
    assert records[1].parents == [rec.id]
    assert np.array_equal(render_record(bundle, records[2]), images[2])
    with pytest.raises(ValueError, match="strengths"):
        edit_strip(bundle, rec, "smiling", [])


# -- the training job ----------------------------------------------------------------------------


def _fake_utkface(folder: Path, n: int) -> None:
    import cv2

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{10 + 3 * i}_{i % 2}_{i % 5}_2017{i:010d}.jpg.chip.jpg"), img)
    cv2.imwrite(str(folder / "39_1_20170116174525125.jpg.chip.jpg"), img)  # malformed: no race


def test_training_job_resumes_and_adds_the_part(tmp_path, tiny_bundle_dir, caplog):
    """UTKFace-style names are parsed (a malformed one skipped with a warning), training stops
    at --max-minutes-like limits and resumes, writes held-out metrics per head, and the part
    lands in the bundle with its licence."""
    from models.attributes.train import AttributeTrainConfig, AttributeTrainer
    from models.bundle import load_bundle, read_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, bundle)
    utk = tmp_path / "utk"
    _fake_utkface(utk, 60)
    cfg = dict(bundle=str(bundle), utkface=str(utk), steps=6, batch_size=8, work_resolution=16,
               channel_base=256, channel_max=32, tick_steps=2, snapshot_steps=3, progress=False)
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="ligan.train"):
        trainer = AttributeTrainer(AttributeTrainConfig(**cfg, export=False), run)
    assert "skipped 1 file" in caplog.text
    trainer.stop.reason = "SIGTERM"  # as the signal handler would
    first = trainer.train()
    assert first == {**first, "steps": 1, "finished": False}
    summary = AttributeTrainer(AttributeTrainConfig(**cfg), run).train()
    assert summary["steps"] == 6 and summary["finished"]
    assert (run / "cache" / "utkface_16.npz").is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert any("test/age_group/accuracy" in line for line in lines)
    part = read_manifest(bundle)["parts"]["attributes"]
    assert "non-commercial" in part["config"]["licence"]
    from models.attributes import predict_attributes

    preds = predict_attributes(load_bundle(bundle), np.zeros((2, 32, 32, 3), np.uint8))
    assert len(preds) == 2


def test_training_config_errors_are_clear(tmp_path, tiny_bundle_dir):
    from models.attributes.train import AttributeTrainConfig, AttributeTrainer
    from models.bundle import BundleError

    with pytest.raises(ValueError, match="at least one labelled dataset"):
        AttributeTrainConfig(bundle=str(tiny_bundle_dir))
    with pytest.raises(ValueError, match="steps must be"):
        AttributeTrainConfig(bundle=str(tiny_bundle_dir), utkface="x", steps=0)
    with pytest.raises(BundleError):
        AttributeTrainer(AttributeTrainConfig(bundle=str(tmp_path / "nope"), utkface="x"),
                         tmp_path / "run")
    with pytest.raises(ValueError, match="UTKFace folder .* does not exist"):
        AttributeTrainer(AttributeTrainConfig(bundle=str(tiny_bundle_dir),
                                              utkface=str(tmp_path / "missing")), tmp_path / "r")


def test_celeba_faces_are_aligned_and_split_by_identity(tmp_path):
    """CelebA-style folders are aligned with our pipeline (photos without a face are skipped)
    and every identity lands on one side of the split."""
    from models.attributes.data import celeba_faces
    from models.attributes.heads import CELEBA_HEADS

    london, no_face = SHARED / "faces" / "london", SHARED / "faces" / "no_face"
    if not london.is_dir() or not no_face.is_dir():
        pytest.skip(f"real photos missing in {SHARED / 'faces'}")
    (tmp_path / "images").mkdir()
    photos = sorted(london.glob("*_0[38].jpg"))[:4] + sorted(no_face.glob("*.jpg"))[:1]
    rows = []
    for i, photo in enumerate(photos):
        (tmp_path / "images" / photo.name).symlink_to(photo)
        rows.append([photo.name, *(["1"] * len(CELEBA_HEADS)), str(i // 2)])
    header = ["file", *CELEBA_HEADS, "identity"]
    (tmp_path / "attributes.csv").write_text(
        "\n".join(",".join(r) for r in [header, *rows]) + "\n")
    faces = celeba_faces(tmp_path, 32, test_fraction=0.5)
    assert len(faces) == 4 and faces.images.shape == (4, 32, 32, 3)
    assert faces.test[0] == faces.test[1] and faces.test[2] == faces.test[3]
    assert (faces.celeba_mask == 1).all() and (faces.age == -1).all()


# -- the command line --------------------------------------------------------------------------


def _run_cli(argv: list[str], bundle=None) -> int:
    from setup.commands.attributes import register, register_train

    settings = dataclasses.replace(load_settings({}), bundle=bundle)
    parser = argparse.ArgumentParser(prog="ligan")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub, settings)
    train = sub.add_parser("train")
    register_train(train.add_subparsers(dest="train_command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args, settings)


def test_cli_errors_are_one_clear_line(trained_bundle, tmp_path):
    from setup.entry import CommandError

    cases = [
        (["attributes", "generate", "--bundle", str(trained_bundle), "--where", "martians"],
         "unknown filter phrase 'martians'"),
        (["attributes", "generate", "--bundle", str(trained_bundle), "--where", "smiling",
          "-n", "0"], "n must be"),
        (["attributes", "generate", "--where", "smiling"], "no bundle"),
        (["attributes", "filter", str(tmp_path / "none.jsonl"), "--where", "men"],
         "no records file"),
        (["attributes", "edit", "x.jsonl#abc", "--bundle", str(trained_bundle),
          "--attribute", "smiling", "--strengths", "1,a"], "--strengths must be numbers"),
        (["attributes", "edit", str(tmp_path / "r.jsonl#abc"), "--bundle", str(trained_bundle),
          "--attribute", "smiling"], "no records file"),
        (["train", "attributes", "--bundle", str(trained_bundle), "--run-dir",
          str(tmp_path / "run")], "at least one labelled dataset"),
    ]
    for argv, fragment in cases:
        with pytest.raises(CommandError, match=fragment):
            _run_cli(argv)


def test_cli_generate_filter_and_edit(trained_bundle, tmp_path, capsys):
    """generate writes matching faces with records; filter on those records keeps them all;
    edit writes a strip."""
    out = tmp_path / "out"
    assert _run_cli(["attributes", "generate", "--bundle", str(trained_bundle), "--where",
                     "smiling", "-n", "3", "--outdir", str(out)]) == 0
    assert "3 of 3 faces matching" in capsys.readouterr().out
    records = out / "records.jsonl"
    assert len(records.read_text().splitlines()) == 3
    assert _run_cli(["attributes", "filter", str(records), "--where", "smiling"]) == 0
    assert "3 of 3 faces match" in capsys.readouterr().out
    assert _run_cli(["attributes", "filter", str(records), "--where", "not smiling"]) == 0
    assert "0 of 3 faces match" in capsys.readouterr().out
    face_id = records.read_text().splitlines()[0].split('"id": "')[1].split('"')[0]
    assert _run_cli(["attributes", "edit", f"{records}#{face_id}", "--bundle",
                     str(trained_bundle), "--attribute", "smiling", "--layers", "coarse",
                     "--outdir", str(out)]) == 0
    assert (out / "strip.png").is_file()
    # The documented strengths, negative ones first, as a user types them into the real command.
    r = ligan("attributes", "edit", f"{records}#{face_id}", "--bundle", str(trained_bundle),
              "--attribute", "smiling", "--strengths", "-2,-1,0,1,2", "--outdir",
              str(tmp_path / "strip"))
    assert r.returncode == 0, r.stderr
    strip = [json.loads(x) for x in (tmp_path / "strip" / "records.jsonl").read_text().splitlines()]
    assert [rec["parameters"]["strength"] for rec in strip] == [-2, -1, 0, 1, 2]


# -- head pose (landmarks, no learned head) ------------------------------------------------------


def test_head_pose_from_landmarks_follows_geometry():
    """On real photos (../shared/faces/pose): a rotated photo has a large roll and upright ones
    a small one, mirroring flips the roll's sign, and these frontal faces stay "frontal"
    (dlib's landmarks are too noisy to check yaw's sign on near-frontal photos)."""
    from models.attributes.pose import head_pose
    from models.faces import load_image

    folder = SHARED / "faces" / "pose"
    if not folder.is_dir():
        pytest.skip(f"real photos missing in {folder}")
    poses = {p.name: head_pose(load_image(p)[0]) for p in sorted(folder.glob("lisa*.jpg"))}
    rolls = sorted(abs(p["roll"]) for p in poses.values())
    assert rolls[-1] > 10 and rolls[0] < 5, poses
    tilted = max(poses, key=lambda k: abs(poses[k]["roll"]))
    image = load_image(folder / tilted)[0]
    a, b = head_pose(image), head_pose(image[:, ::-1])
    assert a["roll"] * b["roll"] < 0 and abs(a["roll"] + b["roll"]) < 3
    assert a["label"] == b["label"] == "frontal"  # yaw is checked on exact landmarks below
    assert head_pose(np.zeros((64, 64, 3), np.uint8))["label"] is None


def test_head_pose_in_filters():
    from models.attributes import matches, parse_filter
    from models.attributes.pose import pose_from_landmarks

    spec = parse_filter("women, frontal")
    assert {c.trait for c in spec.constraints} == {"gender", "head_pose"}
    with pytest.raises(ValueError, match="head_pose=True"):
        matches({"gender": {"label": "female"}}, spec)
    # Synthetic landmarks: nose tip moved toward jaw point 16 turns the face "right".
    lm = np.zeros((68, 2))
    lm[0], lm[16], lm[36:42], lm[42:48], lm[30] = (0, 50), (100, 50), (30, 40), (70, 40), (50, 60)
    assert pose_from_landmarks(lm)["label"] == "frontal"
    lm[30] = (85, 60)
    turned = pose_from_landmarks(lm)
    assert turned["label"] == "right" and turned["yaw"] > 30 and turned["roll"] == 0
    assert matches({"gender": {"label": "female"}, "head_pose": turned},
                   parse_filter("women, facing right"))


def test_guidance_ranks_and_pushes_toward_the_wanted_side():
    """With two known boundaries, ranking prefers latents on the wanted sides and the margin
    push puts every latent at least that far beyond each boundary (pure NumPy)."""
    from models.attributes import Direction, parse_filter
    from models.attributes.filter import guide_ws, guides_for, match_log_prob

    rng = np.random.default_rng(0)
    n1, n2 = np.eye(8)[0], (np.eye(8)[0] + np.eye(8)[1]) / np.sqrt(2)
    dirs = types.SimpleNamespace(items={
        "smiling": Direction("smiling", n1, 0.0, 1.0, 1.0, 10, 3.0),
        "beard": Direction("beard", n2, -0.5, 1.0, 1.0, 10, 3.0)})
    guides, unguided = guides_for(parse_filter("not smiling, beard, 40-49"), dirs)
    assert unguided == ["age_group in {40-49}"]  # no direction: rejection only
    w = rng.standard_normal((2000, 8))
    score = match_log_prob(w, guides)
    ok = (w @ n1 < 0) & (w @ n2 - 0.5 > 0)
    assert score[ok].mean() > score[~ok].mean()
    top = np.argsort(-score)[:100]
    assert ok[top].mean() > 0.75 and ok[top].mean() > 3 * ok.mean()
    pushed = guide_ws(w, guides, margin=0.5, rounds=10)
    # alternating projections onto the two half-spaces converge geometrically
    assert (pushed @ n1 <= -0.5 + 1e-2).all() and (pushed @ n2 - 0.5 >= 0.5 - 1e-2).all()
