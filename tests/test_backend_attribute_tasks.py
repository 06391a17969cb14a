"""attribute_filter and attribute_edit through the real backend API, on a bundle whose attribute
model learnt one checkable thing (see ``trained_bundle`` in tests/conftest.py)."""
from __future__ import annotations

import pytest
import yaml
from openapi_core import OpenAPI

from backend_server.tasks import discover
from backend_server.testing import CallbackReceiver, start_backend
from tests.conftest import REPO, SECRET, Api, validate_callbacks
from tests.conftest import wait_backend_state as wait_state

DONE = ("done", "failed", "cancelled", "interrupted")


@pytest.fixture(scope="module")
def api(trained_bundle, tmp_path_factory):
    from backend_server.backend import warm_up
    from models.bundle import load_bundle

    bundle = load_bundle(trained_bundle)
    warm_up(bundle)
    receiver = CallbackReceiver(SECRET).start()
    backend, http, url = start_backend(bundle, tmp_path_factory.mktemp("results"), receiver.url,
                                       SECRET, registry=discover(), grace=1.0)
    openapi = OpenAPI.from_dict(yaml.safe_load((REPO / "docs/api/backend.yaml").read_text()))
    yield Api(url, openapi), receiver, openapi
    backend.shutdown(flush_timeout=2)
    http.stop()
    receiver.stop()


def run_task(api, type_, params):
    task = wait_state(api, api.post_task(type_, params), lambda t: t["state"] in DONE,
                      timeout=120)
    assert task["state"] == "done", task["error"]
    return task


def test_attribute_filter_returns_matching_faces_and_counts_candidates(api):
    client, receiver, openapi = api
    task = run_task(client, "attribute_filter", {"filter": "smiling", "amount": 3,
                                                 "max_candidates": 200, "seed": 2})
    result = task["result"]
    assert result["accepted"] == 3 and result["candidates"] >= 3 and result["guided"] is True
    for face in result["faces"]:
        assert face["operation"] == "generate_matching"
        assert face["parameters"]["attributes"]["smiling"]["label"]
    validate_callbacks(openapi, receiver, task["task_id"])


def test_random_faces_carry_their_predicted_attributes(api):
    client = api[0]
    faces = run_task(client, "random", {"amount": 3, "seed": 4})["result"]["faces"]
    assert len(faces) == 3
    for face in faces:
        assert set(face["parameters"]["attributes"]) >= {"smiling"}
        assert 0.0 <= face["parameters"]["attributes"]["smiling"]["p"] <= 1.0
    plain = run_task(client, "random", {"amount": 1, "seed": 4, "attributes": False})
    assert "attributes" not in plain["result"]["faces"][0]["parameters"]
    # the same face either way: predictions are kept beside the latent, never change it
    assert plain["result"]["faces"][0]["latent"] == faces[0]["latent"]


def test_attribute_edit_makes_a_strip_of_strengths(api):
    client = api[0]
    face = run_task(client, "random", {"amount": 1, "seed": 8})["result"]["faces"][0]
    strip = run_task(client, "attribute_edit", {"face_id": face["id"], "attribute": "smiling",
                                                "strengths": [-2, 0, 2]})["result"]["faces"]
    assert len(strip) == 3 and all(f["parents"] == [face["id"]] for f in strip)
    assert strip[0]["parameters"]["attributes"]["smiling"]["p"] < \
        strip[2]["parameters"]["attributes"]["smiling"]["p"]


@pytest.mark.parametrize("type_, params, status, message", [
    ("attribute_filter", {"filter": "men, purple hair"}, 422, "params.filter:"),
    ("attribute_filter", {"filter": "smiling", "guided": "yes"}, 400,
     "params.guided must be true or false"),
    ("attribute_edit", {"face_id": "0" * 32, "attribute": "smiling"}, 404, "no face 000"),
    ("attribute_edit", {"attribute": "smiling"}, 400, "params.face_id is required"),
])
def test_bad_attribute_task_parameters(api, type_, params, status, message):
    err = api[0].post_task(type_, params, expect=status)
    assert message in err, err
