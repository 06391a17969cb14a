"""The lineup and research task types through the real backend API: fillers, interpolate,
refine, transition and style_mix, from photos and from faces of the session."""
from __future__ import annotations

import shutil
import time

import pytest
import yaml
from openapi_core import OpenAPI

from backend_server.tasks import discover
from backend_server.testing import CallbackReceiver, start_backend
from tests.conftest import REPO, SECRET, SHARED, Api, validate_callbacks
from tests.conftest import wait_backend_state as wait_state

PHOTO = SHARED / "faces" / "london" / "001_03.jpg"
pytestmark = pytest.mark.skipif(not PHOTO.exists(), reason=f"{PHOTO} is absent (shared photos)")
DONE = ("done", "failed", "cancelled", "interrupted")


@pytest.fixture(scope="module")
def setup(tiny_bundle_dir, tmp_path_factory):
    from backend_server.backend import warm_up
    from models.bundle import add_part, load_bundle
    from models.latent import fit_pca

    path = tmp_path_factory.mktemp("tasks") / "bundle"
    shutil.copytree(tiny_bundle_dir, path)
    pca = fit_pca(load_bundle(path).generator, num_samples=1000, num_components=16)
    add_part(path, "pca", pca.arrays(), config=pca.config())
    bundle = load_bundle(path, parts=("generator", "discriminator"))
    warm_up(bundle)
    results = tmp_path_factory.mktemp("results")
    (results / "uploads").mkdir()
    shutil.copy(PHOTO, results / "uploads" / "suspect.jpg")
    receiver = CallbackReceiver(SECRET).start()
    backend, http, url = start_backend(bundle, results, receiver.url, SECRET,
                                       registry=discover(), grace=1.0)
    openapi = OpenAPI.from_dict(yaml.safe_load((REPO / "docs/api/backend.yaml").read_text()))
    yield Api(url, openapi), receiver, openapi, results
    backend.shutdown(flush_timeout=2)
    http.stop()
    receiver.stop()


def run_task(api, type_, params, timeout=120):
    task_id = api.post_task(type_, params)
    task = wait_state(api, task_id, lambda t: t["state"] in DONE, timeout=timeout)
    assert task["state"] == "done", task["error"]
    return task


def test_fillers_from_an_uploaded_photo_then_more_like_a_filler(setup):
    api, receiver, openapi, results = setup
    task = run_task(api, "fillers", {"suspect_photo": "uploads/suspect.jpg", "steps": 10,
                                     "per_page": 4, "near_clone_threshold": 0})
    faces = task["result"]["faces"]
    suspect, fillers = faces[0], faces[1:]
    assert suspect["operation"] == "invert" and len(fillers) == 4
    assert all(f["parents"] == [suspect["id"]] for f in fillers)
    distances = task["result"]["identity_distances"]
    assert distances == sorted(distances) and len(distances) == 4
    assert all((results / f["image"]).is_file() for f in faces)
    validate_callbacks(openapi, receiver, task["task_id"])
    # "More like this": the same from any face of the session, page 2.
    more = run_task(api, "fillers", {"suspect_face_id": fillers[0]["id"], "page": 1,
                                     "per_page": 3, "near_clone_threshold": 0})
    assert all(f["parents"] == [fillers[0]["id"]] for f in more["result"]["faces"])
    assert more["result"]["page"] == 1


def test_filler_traits_are_checked_and_need_an_attribute_model_only_when_fixed(setup):
    api, _, _, _ = setup
    err = api.post_task("fillers", {"suspect_photo": "uploads/suspect.jpg",
                                    "traits": {"gender": "robot"}}, expect=422)
    assert "params.traits: gender: 'robot' is not accepted" in err
    err = api.post_task("fillers", {"suspect_photo": "uploads/suspect.jpg",
                                    "traits": {"gender": "female"}}, expect=422)
    assert "no attribute model to read gender" in err
    # auto (the default) on a bundle without one: unmatched, and the result says so.
    task = run_task(api, "fillers", {"suspect_photo": "uploads/suspect.jpg", "steps": 2,
                                     "per_page": 2, "near_clone_threshold": 0})
    assert task["result"]["traits"] is None and task["result"]["trait_rejected"] == 0


def test_interpolate_transition_and_style_mix_between_faces(setup):
    api, _, _, _ = setup
    made = run_task(api, "random", {"amount": 2, "seed": 5})["result"]["faces"]
    a, b = made[0]["id"], made[1]["id"]
    steps = run_task(api, "interpolate", {"a_face_id": a, "b_face_id": b, "count": 3})
    assert [f["parameters"]["t"] for f in steps["result"]["faces"]] == [0, 0.5, 1]
    frames = run_task(api, "transition", {"start_face_id": a, "distance": 0.5, "amount": 3,
                                          "seed": 9})["result"]["faces"]
    assert frames[0]["operation"] == "generate" and frames[0]["parameters"]["seed"] == 9
    assert [f["parameters"]["t"] for f in frames[1:]] == [0, 0.25, 0.5]
    chained = run_task(api, "transition", {"start_face_id": frames[2]["id"], "end_face_id": b,
                                           "amount": 2})["result"]["faces"]
    assert chained[0]["parents"] == [frames[2]["id"], b]
    mixed = run_task(api, "style_mix", {"target_face_id": a, "source_face_id": b,
                                        "styles": "middle"})["result"]["faces"]
    assert mixed[0]["parameters"]["layers"] == [4, 5, 6, 7]


def test_refine_saves_a_refined_bundle_and_fillers_from_it(setup):
    api, receiver, _, results = setup
    posted = time.monotonic()
    task = run_task(api, "refine", {"photo": "uploads/suspect.jpg", "seconds": 60, "ratio": 2,
                                    "per_page": 2, "near_clone_threshold": 0}, timeout=240)
    # Progress advances with the clock through the minute of refining, in words: it used to
    # sit at 0 % through the first (compiling) steps, then count "encoder and generator steps".
    mine = [c for c in receiver.callbacks if c.body.get("task_id") == task["task_id"]]
    ended = next(c.at for c in mine if c.kind == "on-result")
    progress = [c for c in mine if c.kind == "on-progress" and c.at < ended]
    times = [posted] + [c.at for c in progress]
    percents = [c.body["progress"] for c in progress]
    messages = [c.body["message"] for c in progress]
    refining = [p for p, m in zip(percents, messages) if "s left" in m]
    assert len(refining) >= 20 and 30 < refining[len(refining) // 2] < 70, messages
    assert percents == sorted(percents) and len(set(refining)) >= 20
    assert max(b - a for a, b in zip(times, times[1:])) < 10, list(zip(times, messages))
    assert "Adapting the model to the photo: about" in " ".join(messages)
    assert not [m for m in messages if "steps" in m or "encoder" in m], messages
    result = task["result"]
    refined = results / result["refined_bundle"]
    assert (refined / "manifest.json").is_file()
    faces = result["faces"]
    assert faces[0]["operation"] == "refine"
    assert all(f["bundle_hash"] == result["refined_bundle_hash"] for f in faces)
    assert len(faces) == 3


@pytest.mark.parametrize("type_, params, status, message", [
    ("fillers", {}, 400, "params.suspect_face_id (a face of this session) or"),
    ("fillers", {"suspect_photo": "../../etc/passwd"}, 422, "points outside the session"),
    ("fillers", {"suspect_photo": "uploads/none.jpg"}, 404, "no file 'uploads/none.jpg'"),
    ("fillers", {"suspect_face_id": "0" * 32}, 404, "no face 000"),
    ("fillers", {"suspect_photo": "uploads/suspect.jpg", "radius": -1}, 422,
     "params.radius must be a number from 0.0 to 100.0"),
    ("fillers", {"suspect_photo": "uploads/suspect.jpg", "styles": "hair"}, 422,
     "params.styles: styles must be coarse"),
    ("interpolate", {"a_face_id": "0" * 32, "a_photo": "uploads/suspect.jpg"}, 400,
     "either params.a_face_id or params.a_photo, not both"),
    ("transition", {"start_photo": "uploads/suspect.jpg", "distance": 1.5}, 422,
     "params.distance must be a number from 0.0 to 1.0"),
    ("refine", {"photo": "uploads/suspect.jpg", "seconds": 5}, 422,
     "params.seconds must be a number from 60 to 600"),
    ("style_mix", {"target_photo": "uploads/suspect.jpg", "source_photo": "uploads/suspect.jpg",
                   "colour": "red"}, 400, "unknown parameter(s) for task type style_mix: colour"),
])
def test_bad_task_parameters(setup, type_, params, status, message):
    api = setup[0]
    err = api.post_task(type_, params, expect=status)
    assert message in err, err


def test_face_at_another_psi_works_for_w_plus_faces_too(setup):
    import numpy as np

    api = setup[0]
    z_face = run_task(api, "random", {"amount": 1, "seed": 3})["result"]["faces"][0]
    other = run_task(api, "random", {"amount": 1, "seed": 4})["result"]["faces"][0]
    mixed = run_task(api, "style_mix", {"target_face_id": z_face["id"],
                                        "source_face_id": other["id"]})["result"]["faces"][0]
    assert mixed["latent_space"] == "w+" and mixed["truncation_psi"] == 1.0
    # ψ relative to the face as it is: 0 is the average face, 0.5 halves its distance to it.
    avg = run_task(api, "face", {"face_id": mixed["id"], "truncation_psi": 0.0})
    half = run_task(api, "face", {"face_id": mixed["id"], "truncation_psi": 0.5})
    a = np.asarray(avg["result"]["faces"][0]["latent"])
    h = np.asarray(half["result"]["faces"][0]["latent"])
    m = np.asarray(mixed["latent"])
    assert np.allclose(a, a[0]) and half["result"]["faces"][0]["parents"] == [mixed["id"]]
    np.testing.assert_allclose(h, (m + a) / 2, atol=1e-4)
    err = api.post_task("face", {"face_id": avg["result"]["faces"][0]["id"],
                                 "truncation_psi": 0.7}, expect=422)
    assert "made at psi 0 (the average face)" in err
