"""``models.lineup_evaluation``: labels, pooled measures, and a real run on London photos."""
from __future__ import annotations

from pathlib import Path

import pytest

import numpy as np

from models.lineup_evaluation import (LOOKALIKE_BAND, EmbeddingProbe, PhotoEvaluation,
                                      SuspectLabels, choose_suspects, evaluate_lineups,
                                      format_table, labels_for, lineup_sheet, read_labels_csv,
                                      summarise, suspect_stands_out, utkface_labels)

ROOT = Path(__file__).resolve().parents[1]
LONDON = ROOT.parent / "shared" / "faces" / "london"
UTKFACE = ROOT.parent / "shared" / "data" / "utkface"
BUNDLE = ROOT / "models" / "bundles" / "default"


def test_labels_csv_reads_the_london_columns_and_maps_ethnicity_to_utkface_groups(tmp_path):
    path = tmp_path / "info.csv"
    path.write_text("file,age,gender,ethnicity,expression\n"
                    "a.jpg,24,female,white,neutral\nb.jpg,28,Male,east_asian,smiling\n"
                    "c.jpg,,,west_asian,\n")
    labels = read_labels_csv(path)
    assert labels["a.jpg"] == SuspectLabels("female", 24, "white")
    assert labels["b.jpg"] == SuspectLabels("male", 28, "asian")
    assert labels["c.jpg"] == SuspectLabels(None, None, "other")


@pytest.mark.parametrize("body,message", [
    ("name,age\nx.jpg,3\n", "'file' column"),
    ("file,age\n", "'file' column"),
    ("file,age\nx.jpg,old\n", "row 2: age must be a whole number"),
    ("file,gender\nx.jpg,m\ny.jpg,robot\n", "row 3: unknown gender 'robot'"),
    ("file,ethnicity\nx.jpg,martian\n", "row 2: unknown ethnicity 'martian'"),
])
def test_a_bad_labels_file_is_refused_naming_the_row(tmp_path, body, message):
    path = tmp_path / "labels.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        read_labels_csv(path)


def test_utkface_names_carry_labels_and_the_table_comes_first():
    assert utkface_labels("34_1_3_20170104.jpg.chip.jpg") == SuspectLabels("female", 34, "indian")
    assert utkface_labels("photo.jpg") is None
    table = {"34_1_3_20170104.jpg": SuspectLabels("male", 50, None)}
    assert labels_for("/x/34_1_3_20170104.jpg", table).gender == "male"
    assert not labels_for("/x/photo.jpg", {}).known


def test_suspects_are_chosen_by_labelled_age_then_drawn_reproducibly():
    names = [f"/h/{age}_{age % 2}_0_2017{age:04d}.jpg.chip.jpg" for age in range(1, 90)]
    names += ["/h/photo.jpg", "/h/labelled.jpg"]
    table = {"labelled.jpg": SuspectLabels("male", 40, None)}
    adults = choose_suspects(names, table, ages=(20, 70))
    assert len(adults) == 52 and "/h/labelled.jpg" in adults  # 51 UTKFace names + the table's
    assert "/h/photo.jpg" not in adults and not any("/h/1_" in p or "/h/19_" in p for p in adults)
    drawn = choose_suspects(names, table, ages=(20, 70), sample=10, seed=3)
    assert len(set(drawn)) == 10 and set(drawn) <= set(adults) and drawn == sorted(drawn)
    assert drawn == choose_suspects(list(reversed(names)), table, ages=(20, 70), sample=10,
                                    seed=3)
    assert drawn != choose_suspects(names, table, ages=(20, 70), sample=10, seed=4)
    assert choose_suspects(names[:3], {}) == sorted(names[:3])  # nothing asked: all, sorted


@pytest.mark.parametrize("kwargs, message", [
    ({"ages": (70, 20)}, "0 ≤ low ≤ high"),
    ({"ages": (95, 99)}, "no photo has a labelled age within 95-99"),
    ({"sample": 0}, "at least 1 photo"),
    ({"sample": 5}, "cannot draw 5 photos from 2"),
])
def test_choosing_suspects_refuses_what_cannot_be_met(kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_suspects(["/h/30_0_0_1.jpg", "/h/40_1_1_2.jpg"], {}, **kwargs)


def test_summaries_pool_fillers_over_photos_and_leave_out_photos_that_failed():
    lo, hi = LOOKALIKE_BAND
    a = PhotoEvaluation("a.jpg", 0, SuspectLabels("male"), reconstruction_distance=0.5,
                        filler_distances=[lo, hi + 0.01, 0.5], face_found=[True, True, False],
                        gender_match=[True, False, True], page_seconds=2.0)
    b = PhotoEvaluation("b.jpg", 0, SuspectLabels("female"), reconstruction_distance=0.7,
                        filler_distances=[0.6], face_found=[True], gender_match=[True],
                        page_seconds=4.0)
    bad = PhotoEvaluation("c.jpg", 0, SuspectLabels(), error="no face")
    s = summarise([a, b, bad])
    assert (s["photos"], s["photos_used"]) == (3, 2)
    assert s["gender"] == {"share": 0.75, "n": 4}
    assert s["lookalike"] == {"share": 0.75, "n": 4}  # the band's ends count as inside
    assert s["farther_than_band"]["share"] == 0.25
    assert s["reconstruction"] == {"share": 0.5, "n": 2}
    assert s["face_found"]["share"] == 0.75
    assert s["page_seconds"] == 3.0
    assert s["ethnicity"] == {"share": None, "n": 0}  # nothing known, nothing claimed


def test_the_suspect_stands_out_among_fillers_more_alike_than_the_suspect():
    """Lineups are the suspect and the next 5 fillers in page order; the suspect stands out
    when its mean distance to the fillers exceeds every filler's mean distance to the others."""
    twins = np.full((5, 5), 0.38)  # near-twins of each other, 0.55 from the suspect
    apart = np.full((5, 5), 0.70)  # as unlike each other as different people
    pairs = np.full((11, 11), 0.6)
    pairs[:5, :5], pairs[5:10, 5:10] = twins, apart
    np.fill_diagonal(pairs, 0.0)
    assert suspect_stands_out(np.full(11, 0.55), pairs) == [True, False]  # the 11th left out
    assert suspect_stands_out(np.full(4, 0.55), pairs[:4, :4]) == []
    # one filler as far from the others as the suspect is from them: nobody stands out more
    pairs[0, 1:5] = pairs[1:5, 0] = 0.55
    to_suspect = np.full(5, 0.55)
    assert suspect_stands_out(to_suspect, pairs[:5, :5]) == [False]
    a = PhotoEvaluation("a.jpg", 0, SuspectLabels(), suspect_stands_out=[True, True, False])
    b = PhotoEvaluation("b.jpg", 0, SuspectLabels(), suspect_stands_out=[True])
    assert summarise([a, b])["suspect_stands_out"] == {"share": 0.75, "n": 4}


def test_the_probe_reads_traits_from_embeddings_as_its_labels_taught_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 128))
    x[:30, 0] += 4.0  # the "female" faces lie apart along one axis
    labels = {"gender": ["female"] * 30 + ["male"] * 30,
              "ethnicity": ["white"] * 60, "age_group": ["20-29", "30-39"] * 30}
    probe = EmbeddingProbe(x, labels, "synthetic")
    assert set(probe.traits) == {"gender", "age_group"}  # one class only: no ethnicity probe
    far = np.zeros((2, 128))
    far[0, 0] = 8.0
    read = probe.read(far)
    assert read[0]["gender"] == "female" and read[1]["gender"] == "male"
    assert "ethnicity" not in read[0] and probe.read(np.zeros((0, 128))) == []


def test_arguments_are_checked_before_any_work():
    with pytest.raises(ValueError, match="no photos"):
        evaluate_lineups(None, [], {})
    with pytest.raises(ValueError, match="per page"):
        evaluate_lineups(None, ["a.jpg"], {}, per_page=0)
    with pytest.raises(ValueError, match="steps"):
        evaluate_lineups(None, ["a.jpg"], {}, steps=(-1,))
    with pytest.raises(ValueError, match="sheet shows 1 to 24 fillers"):
        evaluate_lineups(None, ["a.jpg"], {}, sheet="s.png", sheet_fillers=25)


def test_the_sheet_has_a_row_per_usable_photo_and_blank_tiles_for_a_short_page():
    side, zoom = 4, 2
    full = PhotoEvaluation("a.jpg", 0, SuspectLabels(),
                           pictures=np.full((2 + 3, side, side, 3), 10, np.uint8))
    short = PhotoEvaluation("b.jpg", 0, SuspectLabels(),
                            pictures=np.full((2 + 1, side, side, 3), 20, np.uint8))
    failed = PhotoEvaluation("c.jpg", 0, SuspectLabels(), error="no face")
    sheet = lineup_sheet([full, failed, short], fillers=3, zoom=zoom)
    tile, pad = side * zoom, 2 * zoom
    assert sheet.shape == (2 * tile + 3 * pad, 5 * tile + 6 * pad, 3)
    first_row = sheet[pad:pad + tile]
    second_row = sheet[2 * pad + tile:2 * pad + 2 * tile]
    x = lambda col: slice(pad + col * (tile + pad), pad + col * (tile + pad) + tile)
    assert (first_row[:, x(4)] == 10).all() and (second_row[:, x(2)] == 20).all()
    assert (second_row[:, x(3)] == 255).all() and (second_row[:, x(4)] == 255).all()
    assert "pictures" not in full.to_dict()
    with pytest.raises(ValueError, match="every photo was skipped"):
        lineup_sheet([failed])


@pytest.fixture(scope="module")
def london_report(tmp_path_factory):
    if not LONDON.is_dir():
        pytest.skip(f"the London photos are not here ({LONDON}); they live in ../shared/faces")
    from models.bundle import load_bundle

    bundle = load_bundle(BUNDLE)
    photos = [LONDON / "001_03.jpg", LONDON / "005_03.jpg", ROOT / "web_ui" / "index.html"]
    probe = (EmbeddingProbe.from_folder(UTKFACE, bundle.resolution, samples=40)
             if UTKFACE.is_dir() else None)
    if probe is None:
        print(f"{UTKFACE} is absent: the probe's rows are not checked")
    lines: list[str] = []
    sheet = tmp_path_factory.mktemp("sheet") / "sheet.png"
    report = evaluate_lineups(bundle, photos, read_labels_csv(LONDON / "info.csv"), steps=(0,),
                              per_page=4, probe=probe, sheet=sheet, sheet_fillers=3,
                              progress=lines.append)
    return report, lines


def test_a_real_run_measures_every_photo_and_reports_what_it_could_not_use(london_report):
    report, lines = london_report
    assert len(lines) == 3 and "skipped" in lines[2]
    used = [p for p in report["photos"] if p["error"] is None]
    assert len(used) == 2 and report["photos"][2]["error"]
    for p in used:  # a trait-matched page may come back short around the encoder's guess
        assert 3 <= len(p["filler_distances"]) <= 4
        assert len(p["filler_distances"]) == len(p["gender_match"]) == len(p["age_match"])
        assert p["reference"] == "labels" and 0 < p["reconstruction_distance"] < 2
        # dlib's distances, measured after the bundle's identity network ranked the page
        assert all(0 < d < 2 for d in p["filler_distances"])
    assert report["measure"] == "identity-net"
    summary = report["paths"][0]["summary"]
    matches = [m for p in used for m in p["gender_match"]]
    assert summary["gender"] == {"share": sum(matches) / len(matches), "n": len(matches)}


def test_the_sheet_draws_each_usable_photo_its_reconstruction_and_first_fillers(london_report):
    from PIL import Image

    report, _ = london_report
    sheet = np.asarray(Image.open(report["sheet"]))
    tile, pad = 64 * 2, 4  # the default bundle's 64 px faces at 2x zoom
    assert sheet.shape == (2 * tile + 3 * pad, 5 * tile + 6 * pad, 3)  # 2 photos; 2 + 3 tiles
    tiles = [sheet[pad + r * (tile + pad):pad + r * (tile + pad) + tile,
                   pad + c * (tile + pad):pad + c * (tile + pad) + tile]
             for r in range(2) for c in range(5)]
    assert all(t.std() > 10 for t in tiles)  # faces, not blank tiles
    assert not np.array_equal(tiles[0], tiles[1])  # the photo, then its reconstruction


def test_the_table_prints_the_run_s_values_beside_the_goals(london_report):
    report, _ = london_report
    table = format_table(report)
    summary = report["paths"][0]["summary"]
    row = next(line for line in table.splitlines() if "suspect's gender" in line)
    n = summary["gender"]["n"]
    assert f"{100 * summary['gender']['share']:.0f} % of {n}" in row and "≥ 95 %" in row
    assert "| encoder alone |" in table.splitlines()[0]
    assert "2 of 3 photos used" in table and "skipped index.html" in table
    if report["probe"]:
        assert summary["probe_gender"]["n"] == n and "by the dlib probe" in table
        assert report["probe"]["faces"] == 40 and "40 labelled faces" in table
