"""Research operations: transitions, style mixing, faces at another truncation."""
import json

import numpy as np
import pytest
from PIL import Image

from models.bundle import load_bundle
from models.generate import generate_from_seeds, record_ws, render_record
from models.research import (at_truncation, mixing_grid, style_layer_range, style_mix,
                             transition, transition_ws)
from tests.conftest import ligan


@pytest.fixture(scope="module")
def faces(tiny_bundle_dir, tmp_path_factory):
    bundle = load_bundle(tiny_bundle_dir)
    out = tmp_path_factory.mktemp("faces")
    records = generate_from_seeds(bundle, [1, 2, 3], out, truncation_psi=0.8, progress=False)
    return bundle, records, out


def test_transition_ends_and_chaining(faces):
    bundle, (a, b, _), _ = faces
    still, images = transition(bundle, a, b, 0.0, 3)
    assert len(still) == 3
    for img in images:
        np.testing.assert_array_equal(img, render_record(bundle, a))
    frames, images = transition(bundle, a, b, 1.0, 4)
    np.testing.assert_array_equal(images[-1], render_record(bundle, b))
    assert [f.parameters["t"] for f in frames] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert all(f.parents == [a.id, b.id] for f in frames)
    half, _ = transition(bundle, a, b, 0.5, 2)
    np.testing.assert_allclose(half[-1].latent_array(),
                               (record_ws(bundle, a) + record_ws(bundle, b)) / 2, atol=1e-5)
    # A frame starts a new transition (FG-Style could not do this).
    again, _ = transition(bundle, frames[1], b, 1.0, 2)
    assert again[0].parents == [frames[1].id, b.id]
    with pytest.raises(ValueError, match="distance must be from 0"):
        transition_ws(record_ws(bundle, a), record_ws(bundle, b), 1.5, 3)
    with pytest.raises(ValueError, match="amount must be from 1 to 1000"):
        transition_ws(record_ws(bundle, a), record_ws(bundle, b), 0.5, -1)


def test_style_mixing_changes_only_the_chosen_layers(faces):
    bundle, (a, b, c), _ = faces
    layers = style_layer_range(bundle, "middle")
    assert layers == [4, 5, 6, 7]
    mixed, image = style_mix(bundle, a, b, layers)
    ws = mixed.latent_array()
    np.testing.assert_array_equal(ws[:4], record_ws(bundle, a)[:4])
    np.testing.assert_array_equal(ws[4:], record_ws(bundle, b)[4:])
    assert mixed.parents == [a.id, b.id] and not np.array_equal(image, render_record(bundle, a))
    grid = mixing_grid(bundle, [a, b], [c, a, b], style_layer_range(bundle, "0-3"))
    assert grid.shape == (3 * 32 + 4 * 2, 4 * 32 + 5 * 2, 3)
    for bad, message in (("hair", "styles must be coarse"), ("6-9", "outside 0–7"),
                         ("fine", "select no layer")):
        with pytest.raises(ValueError, match=message):
            style_layer_range(bundle, bad)


def test_faces_at_another_truncation(faces):
    bundle, (a, _, _), _ = faces
    same, image = at_truncation(bundle, a, 0.8)
    np.testing.assert_allclose(same.latent_array(), record_ws(bundle, a), atol=1e-6)
    avg, _ = at_truncation(bundle, a, 0.0)
    np.testing.assert_allclose(avg.latent_array(),
                               np.broadcast_to(bundle.generator.w_avg.numpy(), (8, 32)), atol=1e-6)
    # A w+ record made at psi 0.8, taken to psi 0.4, equals the z record mapped at 0.4.
    plus, _ = at_truncation(bundle, same, 0.4)
    direct, _ = at_truncation(bundle, a, 0.4)
    np.testing.assert_allclose(plus.latent_array(), direct.latent_array(), atol=1e-5)
    with pytest.raises(ValueError, match="no identity left"):
        at_truncation(bundle, avg, 0.5)


def test_research_commands(faces, tiny_bundle_dir, tmp_path):
    _, (a, b, _), out = faces
    ref = lambda r: f"{out / 'records.jsonl'}#{r.id}"  # noqa: E731
    r = ligan("transition", "--bundle", str(tiny_bundle_dir), ref(a), "--distance", "0.5",
              "--amount", "3", "--seed", "7", "--outdir", str(tmp_path / "t"))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (tmp_path / "t" / "records.jsonl").read_text().splitlines()]
    assert recs[0]["operation"] == "generate" and recs[0]["parameters"]["seed"] == 7
    assert [x["parameters"]["t"] for x in recs[1:]] == [0, 0.25, 0.5]
    r = ligan("mix", "--bundle", str(tiny_bundle_dir), "--target", ref(a), "--source", ref(b),
              "--source", ref(a), "--styles", "coarse", "--outdir", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "m" / "mixing_grid.png").size == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)
    r = ligan("face", "--bundle", str(tiny_bundle_dir), ref(a), "--psi", "0.3",
              "--outdir", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    r = ligan("transition", "--bundle", str(tiny_bundle_dir), ref(a), ref(b), "--distance",
              "1.5", "--outdir", str(tmp_path / "x"))
    assert r.returncode == 2 and "distance must be from 0 (stay at A) to 1" in r.stderr
