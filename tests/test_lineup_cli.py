"""``ligan bundle fit-pca``, ``ligan invert``, ``ligan fillers`` and ``ligan interpolate`` end to
end on a tiny random bundle and real photos."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DEFAULT_BUNDLE, SHARED, TINY_ARGS, ligan

LONDON = SHARED / "faces" / "london"
NO_FACE = SHARED / "faces" / "no_face"
needs_faces = pytest.mark.skipif(not LONDON.is_dir(), reason=f"{LONDON} is absent (shared photos)")


@pytest.fixture(scope="module")
def pca_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("lineup") / "b"
    assert ligan("bundle", "init", str(path), *TINY_ARGS).returncode == 0
    before = json.loads(ligan("bundle", "inspect", str(path), "--json").stdout)["hash"]
    r = ligan("bundle", "fit-pca", str(path), "--samples", "1000", "--components", "16",
              "--centres", "2", "--samples-per-centre", "2", "--norm-samples", "4",
              "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "%|" not in r.stderr  # no progress bars in a batch job's log
    after = json.loads(ligan("bundle", "inspect", str(path), "--json").stdout)
    assert after["hash"] != before and "pca" in after["parts"]
    assert after["hash"][:12] in r.stdout
    assert "page-1 radius" in r.stdout
    return path


def pca_config(path):
    return json.loads((path / "manifest.json").read_text())["parts"]["pca"]["config"]


def test_fit_pca_calibrates_the_filler_radius_and_recalibration_replaces_it(pca_bundle, tmp_path):
    import shutil

    cfg = pca_config(pca_bundle)
    assert cfg["filler_radius"] > 0 and cfg["filler_calibration"]["centres"] == 2
    assert len(cfg["filler_calibration"]["radius_table"]) >= 1
    assert cfg["filler_max_norm"] is None  # an untrained generator draws no faces at all
    copy = tmp_path / "b"
    shutil.copytree(pca_bundle, copy)
    r = ligan("bundle", "calibrate-fillers", str(copy), "--centres", "1",
              "--samples-per-centre", "2", "--norm-samples", "2", "--near-clone-share", "0.5")
    assert r.returncode == 0, r.stderr
    assert "no largest norm" in r.stdout
    again = pca_config(copy)
    assert again["filler_calibration"]["centres"] == 1
    assert again["filler_calibration"]["near_clone_share"] == 0.5
    assert f"radius {again['filler_calibration']['radius_table'][0]['radius']:7.3f}" in r.stdout
    r = ligan("bundle", "calibrate-fillers", str(copy), "--near-clone-share", "2")
    assert r.returncode == 2 and "near-clone share must be between 0 and 1" in r.stderr


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_faces
def test_fillers_from_a_photo(pca_bundle, tmp_path):
    out = tmp_path / "f"
    r = ligan("fillers", "--bundle", str(pca_bundle), str(LONDON / "001_03.jpg"), "--steps", "20",
              "--pages", "2", "--per-page", "3", "--near-clone-threshold", "0", "--outdir", str(out))
    assert r.returncode == 0, r.stderr
    from models.fillers import photo_radius_scale

    # the calibrated one (no --radius), scaled by how far the reconstruction is from the photo
    pages = re.findall(r"page (\d) \(radius ([\d.]+); reconstruction ([\d.]+) from the photo\): "
                       r"3 fillers", r.stdout)
    assert [p[0] for p in pages] == ["1", "2"], r.stdout
    apart = float(pages[0][2])
    radius = pca_config(pca_bundle)["filler_radius"] * photo_radius_scale(apart)
    assert float(pages[0][1]) == pytest.approx(radius, rel=0.02)  # both printed rounded
    assert float(pages[1][1]) == pytest.approx(radius * 1.5, rel=0.02)
    recs = records(out / "records.jsonl")
    suspect, fillers = recs[0], recs[1:]
    assert suspect["operation"] == "invert" and suspect["parameters"]["photo"] == "001_03.jpg"
    assert len(fillers) == 6 and all(f["parents"] == [suspect["id"]] for f in fillers)
    assert [f["parameters"]["page"] for f in fillers] == [0, 0, 0, 1, 1, 1]
    for f in fillers:
        assert Image.open(out / f["image"]).size == (32, 32)
    assert (out / "suspect_aligned.png").exists() and (out / "page01.png").exists()


@needs_faces
def test_interpolation_between_records_reproduces_its_ends(pca_bundle, tmp_path):
    gen = tmp_path / "g"
    assert ligan("generate", "--bundle", str(pca_bundle), "--seeds", "1-2", "--outdir",
                 str(gen)).returncode == 0
    a, b = records(gen / "records.jsonl")
    out = tmp_path / "i"
    r = ligan("interpolate", "--bundle", str(pca_bundle), f"{gen / 'records.jsonl'}#{a['id']}",
              f"{gen / 'records.jsonl'}#{b['id']}", "--count", "4", "--outdir", str(out))
    assert r.returncode == 0, r.stderr
    steps = records(out / "records.jsonl")
    assert [s["parameters"]["t"] for s in steps] == [0, 1 / 3, 2 / 3, 1]
    assert all(s["parents"] == [a["id"], b["id"]] for s in steps)
    for end, source in ((steps[0], a), (steps[-1], b)):
        np.testing.assert_array_equal(np.asarray(Image.open(out / end["image"])),
                                      np.asarray(Image.open(gen / source["image"])))


def test_fillers_need_a_pca(tmp_path):
    path = tmp_path / "nopca"
    assert ligan("bundle", "init", str(path), *TINY_ARGS).returncode == 0
    r = ligan("fillers", "--bundle", str(path), "x.jsonl#1", "--outdir", str(tmp_path / "o"))
    assert r.returncode == 2 and "has no PCA part; add one with 'ligan bundle fit-pca" in r.stderr


@pytest.mark.skipif(not NO_FACE.is_dir(), reason=f"{NO_FACE} is absent (shared photos)")
def test_a_photo_without_a_face_is_a_clear_error(pca_bundle, tmp_path):
    photo = sorted(NO_FACE.iterdir())[0]
    r = ligan("invert", "--bundle", str(pca_bundle), str(photo), "--outdir", str(tmp_path))
    assert r.returncode == 2 and "No face was found in the photo" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--per-page", "0"], "faces per page must be from 1 to 200"),
    (["--radius", "-1"], "radius must be a finite number"),
    (["--pages", "1000"], "--pages must be from 1 to 100"),
    (["--styles", "hair"], "--styles takes all or any of coarse, middle, fine"),
    (["--traits", "gender=robot"], "--traits: gender: 'robot' is not accepted"),
])
def test_bad_filler_arguments(pca_bundle, tmp_path, args, message):
    r = ligan("fillers", "--bundle", str(pca_bundle), f"{tmp_path}/r.jsonl#x", *args,
              "--outdir", str(tmp_path / "o"))
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_an_unknown_face_id_is_a_clear_error(pca_bundle, tmp_path):
    (tmp_path / "r.jsonl").write_text("")
    r = ligan("interpolate", "--bundle", str(pca_bundle), f"{tmp_path}/r.jsonl#abc",
              f"{tmp_path}/r.jsonl#def", "--outdir", str(tmp_path / "o"))
    assert r.returncode == 2 and "no face abc in" in r.stderr


@needs_faces
def test_lineup_evaluate_prints_the_run_s_measures_beside_the_goals(tmp_path):
    photos = [str(LONDON / f) for f in ("001_03.jpg", "005_03.jpg", "009_03.jpg")]
    r = ligan("lineup", "evaluate", *photos, "--labels", str(LONDON / "info.csv"),
              "--bundle", str(DEFAULT_BUNDLE), "--steps", "0", "--per-page", "5", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert len(report["photos"]) == 3 and all(p["error"] is None for p in report["photos"])
    assert r.stderr.count("[encoder alone]") == 3  # one progress line per photo
    from models.lineup_evaluation import format_table

    table = format_table(report)
    summary = report["paths"][0]["summary"]
    matched = sum(m for p in report["photos"] for m in p["gender_match"])
    n = sum(len(p["gender_match"]) for p in report["photos"])
    assert 12 <= n <= 15  # a trait-matched page may come back short around a poor reconstruction
    assert summary["gender"]["n"] == n and summary["gender"]["share"] == matched / n
    assert f"{100 * matched / n:.0f} % of {n}" in table
    # Fillers are trait-matched by default, so every one reads as the suspect's photo does.
    assert report["traits"]["gender"] == "auto" and "fillers matched on gender" in table
    # Whether dlib tells a page's fillers apart: every pair of a page counted once.
    for p in report["photos"]:
        k = len(p["filler_distances"])
        assert p["filler_pairs"] == k * (k - 1) // 2
        assert 0 <= p["filler_pairs_distinct"] <= p["filler_pairs"]
    pairs = sum(p["filler_pairs"] for p in report["photos"])
    distinct = sum(p["filler_pairs_distinct"] for p in report["photos"])
    assert summary["fillers_distinct"] == {"share": distinct / pairs, "n": pairs}
    assert f"| pairs of fillers dlib tells apart (0.6 or more) | {100 * distinct / pairs:.0f} % " \
        f"of {pairs} |" in table
    # Whether the suspect is the odd one out of a lineup of 6: one lineup per full page of 5.
    for p in report["photos"]:
        assert len(p["suspect_stands_out"]) == (len(p["filler_distances"]) == 5)
    odd = [s for p in report["photos"] for s in p["suspect_stands_out"]]
    assert summary["suspect_stands_out"] == {"share": sum(odd) / len(odd), "n": len(odd)}
    row = next(line for line in table.splitlines() if "least like the others" in line)
    assert f"| {100 * sum(odd) / len(odd):.0f} % of {len(odd)} | fair: 17 % (1 in 6) |" in row


@needs_faces
def test_lineup_evaluate_projects_as_the_web_ui_does(tmp_path):
    """The evaluation measures the web UI's path: its projector has the perceptual features of
    the bundle's discriminator, as the backend loads it (without them reconstructions differ).
    Both sides run in float32: in bfloat16 (which ``auto`` may pick on CPUs with native
    bfloat16) 20 steps in two processes end up to 0.01 apart, too close to the discriminator's
    effect."""
    from models.bundle import load_bundle, read_manifest
    from models.faces import aligned_face_embedding, identity_distance
    from models.inversion import invert_photo, record_photo_identity
    from models.projector import projector_parts

    photo = LONDON / "005_03.jpg"
    r = ligan("lineup", "evaluate", str(photo), "--bundle", str(DEFAULT_BUNDLE), "--steps", "20",
              "--per-page", "2", "--json", env={"LIGAN_PRECISION": "float32"})
    assert r.returncode == 0, r.stderr
    reported = json.loads(r.stdout)["photos"][0]["reconstruction_distance"]

    def reconstruction_distance(parts):
        inv = invert_photo(load_bundle(DEFAULT_BUNDLE, parts=parts), photo, steps=20)
        embedding, _ = aligned_face_embedding(inv.projection.image)
        return float(identity_distance(embedding, record_photo_identity(inv.record)))

    parts = projector_parts(read_manifest(DEFAULT_BUNDLE))
    assert "discriminator" in parts
    assert reported == pytest.approx(reconstruction_distance(parts), abs=2e-3)
    assert abs(reported - reconstruction_distance(("generator",))) > 2e-3


def test_photo_commands_take_a_bundle_without_a_discriminator(pca_bundle, tmp_path):
    """Projecting photos uses the discriminator where the bundle has one and does without it
    where it has none, rather than refusing the bundle."""
    from models.bundle import load_bundle, save_bundle
    from setup.commands.bundle import load_bundle_for_projection

    assert load_bundle_for_projection(pca_bundle).discriminator is not None
    generator_only = tmp_path / "g"
    save_bundle(generator_only, load_bundle(pca_bundle).generator, name="g", creator="tests",
                description="a generator alone")
    assert load_bundle_for_projection(generator_only).discriminator is None
    if LONDON.is_dir():  # a photo command on it (it refused: "has no discriminator part")
        r = ligan("mix", "--bundle", str(generator_only), "--outdir", str(tmp_path / "o"),
                  "--target", str(LONDON / "001_03.jpg"), "--source", str(LONDON / "005_03.jpg"),
                  "--steps", "2")
        assert r.returncode == 0, r.stderr
    else:
        print(f"the photo command part is not run: {LONDON} is absent (shared photos)")


@pytest.mark.parametrize("args, message", [
    (["nowhere.jpg"], "no such photo: nowhere.jpg"),
    ([str(LONDON / "001_03.jpg"), "--steps", "0,x"], "--steps takes whole numbers"),
    ([str(LONDON / "001_03.jpg"), "--traits", "hair=red"], "--traits: hair: 'red' is not accepted"),
    ([str(LONDON / "001_03.jpg"), "--labels", str(LONDON / "001_03.jpg")], "labels file"),
    ([str(LONDON / "001_03.jpg"), "--sheet", "/nowhere/sheet.png"],
     "cannot write the sheet: no folder /nowhere"),
    ([str(LONDON / "001_03.jpg"), "--sheet", "s.png", "--sheet-fillers", "0"],
     "the sheet shows 1 to 24 fillers"),
    ([str(LONDON / "001_03.jpg"), "--ages", "70"], "--ages takes LOW-HIGH in whole years"),
    ([str(LONDON / "001_03.jpg"), "--ages", "20-70"], "no photo has a labelled age within 20-70"),
    ([str(LONDON / "001_03.jpg"), "--sample", "5"], "cannot draw 5 photos from 1"),
])
def test_lineup_evaluate_refuses_bad_input_in_one_line(args, message):
    r = ligan("lineup", "evaluate", *args, "--bundle", str(DEFAULT_BUNDLE))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
