"""The backend's HTTP API end to end: a real server on a loopback port with the tiny bundle, a
real callback receiver standing in for the master daemon, every response and callback validated
against docs/api/backend.yaml."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from openapi_core import OpenAPI
from PIL import Image

from backend_server.tasks import TaskType, discover
from backend_server.testing import CallbackReceiver, start_backend
from tests.conftest import BACKEND_AUTH as AUTH
from tests.conftest import BACKEND_T as T
from tests.conftest import SECRET, Api, validate_callbacks
from tests.conftest import wait_backend_state as wait_state

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def openapi():
    return OpenAPI.from_dict(yaml.safe_load((REPO / "docs/api/backend.yaml").read_text()))


@pytest.fixture(scope="module")
def bundle(tiny_bundle_dir):
    from backend_server.backend import warm_up
    from models.bundle import load_bundle

    b = load_bundle(tiny_bundle_dir)
    warm_up(b)
    return b


def _explode(ctx):
    ctx.progress(5, "about to fail")
    raise RuntimeError("the test task exploded on purpose")


def _reject_all(params, env):
    params.finish()
    return {}


EXPLODE = TaskType("explode", "a task that raises (tests only)", _reject_all, _explode)


@pytest.fixture(scope="module")
def receiver():
    rx = CallbackReceiver(SECRET).start()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def server(bundle, receiver, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    registry = {**discover(), "explode": EXPLODE}
    backend, http, url = start_backend(bundle, results, receiver.url, SECRET, registry=registry,
                                       retry_initial=0.05, retry_max=0.3, grace=1.0)
    yield backend, url, results
    backend.shutdown(flush_timeout=2)
    http.stop()


@pytest.fixture(scope="module")
def api(server, openapi):
    return Api(server[1], openapi)


# -- random ---------------------------------------------------------------------------------


def test_random_streams_faces_to_disk_with_records(api, server, receiver, openapi, bundle):
    _, _, results = server
    task_id = api.post_task("random", {"amount": 70, "seed": 123, "truncation_psi": 0.7})
    body = receiver.result_of(task_id, T)
    assert body["state"] == "done", body["error"]
    assert body["type"] == "random" and body["error"] is None
    result = body["result"]
    assert result["seed"] == 123 and result["faces_total"] == 70 and len(result["faces"]) == 70
    folder = results / result["folder"]
    assert result["folder"] == f"tasks/{task_id}"
    lines = (folder / "records.jsonl").read_text().splitlines()
    assert len(lines) == 70
    assert [json.loads(line)["id"] for line in lines] == [f["id"] for f in result["faces"]]
    assert len(set(f["parameters"]["seed"] for f in result["faces"])) == 70
    for face in result["faces"][:3] + result["faces"][-2:]:
        assert face["image"] in result["files"]
        img = np.asarray(Image.open(results / face["image"]))
        assert img.shape == (32, 32, 3)
        assert face["truncation_psi"] == 0.7 and face["latent_space"] == "z"
        assert face["bundle_hash"] == bundle.hash
    assert {"tasks/%s/records.jsonl" % task_id, "tasks/%s/task.json" % task_id} <= set(
        result["files"])
    recorded = json.loads((folder / "task.json").read_text())
    assert recorded["params"]["seed"] == 123 and recorded["bundle_hash"] == bundle.hash
    # progress came while it ran, never went back, and GET agrees with the callback
    progress = [c.body["progress"] for c in receiver.of("on-progress", task_id)]
    assert progress and progress == sorted(progress)
    task = api.task(task_id)
    assert task["state"] == "done" and task["progress"] == 100
    assert task["result"]["faces_total"] == 70 and task["params"]["seed"] == 123
    validate_callbacks(openapi, receiver, task_id)
    # the same sampler seed makes the same faces; a given folder is used
    again = api.post_task("random", {"amount": 5, "seed": 123, "truncation_psi": 0.7,
                                     "folder": "experiment/again"})
    second = receiver.result_of(again, T)
    assert second["result"]["folder"] == "experiment/again"
    assert [f["latent"] for f in second["result"]["faces"]] == \
        [f["latent"] for f in result["faces"][:5]]
    same = np.asarray(Image.open(results / second["result"]["faces"][0]["image"]))
    assert np.array_equal(same, np.asarray(Image.open(results / result["faces"][0]["image"])))
    # a folder is never mixed with other results
    err = api.post_task("random", {"amount": 1, "folder": "experiment/again"}, expect=409)
    assert "holds a random task with other settings" in err and "amount 5" in err
    (results / "other").mkdir()
    (results / "other" / "notes.txt").write_text("not ours")
    err = api.post_task("random", {"amount": 1, "folder": "other"}, expect=409)
    assert "already holds other files" in err


def test_an_interrupted_random_task_resumes_in_its_folder(api, server, receiver):
    from backend_server.tasks.random_faces import face_seeds

    _, _, results = server
    params = {"amount": 1500, "seed": 99, "folder": "resumable", "noise_mode": "random"}
    first = api.post_task("random", params)
    wait_state(api, first, lambda t: t["progress"] > 0)
    err = api.post_task("random", params, expect=409)  # not while it is still writing there
    assert "another task is writing into folder 'resumable'" in err
    api.call("DELETE", f"/tasks/{first}")
    partial = receiver.result_of(first, T)
    assert partial["state"] == "cancelled", partial
    made = partial["result"]["faces_total"]
    assert 0 < made < 1500 and partial["result"]["folder"] == "resumable"
    before = (results / "resumable" / "records.jsonl").read_text().splitlines()
    with open(results / "resumable" / "records.jsonl", "a") as fh:
        fh.write('{"id": "a torn line from a kill')  # as if killed mid-write

    resumed = api.post_task("random", {k: v for k, v in params.items() if k != "seed"})
    # The rest of 1,500 faces: on two busy cores (a second test worker, a background job) this
    # took over 30 s while progress kept coming, so it gets a longer guard than a short task.
    body = receiver.result_of(resumed, 4 * T)
    assert body["state"] == "done", body["error"]
    result = body["result"]
    assert result["resumed_at"] == made and result["seed"] == 99
    assert result["faces_total"] == 1500
    lines = (results / "resumable" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 1500 and lines[:made] == before
    seeds = [json.loads(line)["parameters"]["seed"] for line in lines]
    expected = face_seeds(99)
    assert seeds == [next(expected) for _ in range(1500)]  # as if never interrupted
    files = all_files(api, resumed)
    assert len(files) == result["files_total"] and sum(f.endswith(".png") for f in files) == 1500


def test_random_records_the_sampler_seed_it_chose(api, receiver):
    task_id = api.post_task("random", {"amount": 2})
    body = receiver.result_of(task_id, T)
    seed = body["result"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2 ** 32
    assert api.task(task_id)["params"]["seed"] == seed


def all_files(api: Api, task_id: str, limit: int = 1000) -> list[str]:
    """Every file of a task, read page by page from ``GET /tasks/<id>/files``."""
    files: list[str] = []
    while True:
        page = api.call("GET", f"/tasks/{task_id}/files",
                        params={"offset": len(files), "limit": limit}).json()
        assert page["offset"] == len(files) and page["limit"] == limit
        files += page["files"]
        if len(files) >= page["total"] or not page["files"]:
            assert len(files) == page["total"]
            return files


def test_result_carries_at_most_the_configured_faces(api, server, receiver):
    backend, _, results = server
    limits = backend.queue.env.limits
    old = limits.result_faces
    object.__setattr__(limits, "result_faces", 3)
    try:
        task_id = api.post_task("random", {"amount": 10, "seed": 5})
        body = receiver.result_of(task_id, T)
    finally:
        object.__setattr__(limits, "result_faces", old)
    result = body["result"]
    assert result["faces_total"] == 10 and len(result["faces"]) == 3
    assert sum(f.endswith(".png") for f in result["files"]) == 10
    assert result["files_total"] == len(result["files"]) == 12  # task.json, records, images
    records = (results / result["records"]).read_text().splitlines()
    assert len(records) == 10  # every record is on disk even if not in the result


def test_a_bulk_result_carries_the_first_files_and_pages_through_all(api, server, receiver):
    """600 faces with the result limits lowered: the result (callback and GET) holds the
    first files and the totals, small whatever the amount; the files route pages through
    every path, in the order they were written."""
    backend, _, results = server
    limits = backend.queue.env.limits
    old = limits.result_faces, limits.result_files
    object.__setattr__(limits, "result_faces", 4)
    object.__setattr__(limits, "result_files", 50)
    try:
        task_id = api.post_task("random", {"amount": 600, "seed": 11})
        body = receiver.result_of(task_id, 4 * T)
    finally:
        object.__setattr__(limits, "result_faces", old[0])
        object.__setattr__(limits, "result_files", old[1])
    assert body["state"] == "done", body["error"]
    result = body["result"]
    assert result["faces_total"] == 600 and len(result["faces"]) == 4
    assert result["files_total"] == 602 and len(result["files"]) == 50
    assert result["files"][:2] == [f"tasks/{task_id}/task.json", result["records"]]
    rest = {k: v for k, v in result.items() if k != "faces"}
    assert len(json.dumps(rest)) < 5_000  # 50 paths, not 602
    assert api.task(task_id)["result"]["files"] == result["files"]
    files = all_files(api, task_id, limit=128)
    assert files[:50] == result["files"] and len(set(files)) == 602
    assert sorted(p.relative_to(results).as_posix() for p in
                  (results / "tasks" / task_id).iterdir()) == sorted(files)
    page = api.call("GET", f"/tasks/{task_id}/files", params={"offset": 600}).json()
    assert page["files"] == files[600:] and page["total"] == 602 and page["state"] == "done"
    for bad in ({"offset": -1}, {"limit": 0}, {"limit": 10_001}, {"offset": "x"}):
        r = api.call("GET", f"/tasks/{task_id}/files", params=bad)
        assert r.status_code == 400 and "must be a whole number" in r.json()["error"]
    assert api.call("GET", "/tasks/nope/files").status_code == 404


# -- face -----------------------------------------------------------------------------------


def test_face_rerenders_any_face_of_the_session(api, server, receiver, openapi):
    _, _, results = server
    source_task = api.post_task("random", {"amount": 3, "seed": 77, "noise_mode": "random"})
    source = receiver.result_of(source_task, T)["result"]["faces"][1]
    same_id = api.post_task("face", {"face_id": source["id"]})
    same = receiver.result_of(same_id, T)
    assert same["state"] == "done", same["error"]
    rec = same["result"]["faces"][0]
    assert rec["parents"] == [source["id"]] and rec["operation"] == "face"
    assert rec["id"] != source["id"] and rec["latent"] == source["latent"]
    original = np.asarray(Image.open(results / source["image"]))
    again = np.asarray(Image.open(results / rec["image"]))
    assert np.array_equal(original, again), "re-rendering must be bit-identical"

    other_id = api.post_task("face", {"face_id": source["id"], "truncation_psi": 0.3})
    other = receiver.result_of(other_id, T)["result"]["faces"][0]
    assert other["truncation_psi"] == 0.3 and other["parameters"]["source"] == source["id"]
    assert not np.array_equal(original, np.asarray(Image.open(results / other["image"])))
    # the re-rendered face is a face of the session too
    third = api.post_task("face", {"face_id": other["id"]})
    assert receiver.result_of(third, T)["state"] == "done"
    validate_callbacks(openapi, receiver, other_id)


def test_face_unknown_or_malformed_id(api):
    err = api.post_task("face", {"face_id": "0" * 32}, expect=404)
    assert "no face 000" in err and "this session" in err
    err = api.post_task("face", {"face_id": "../../etc/passwd"}, expect=400)
    assert "32 hexadecimal digits" in err
    err = api.post_task("face", {}, expect=400)
    assert "face_id is required" in err


# -- task types -----------------------------------------------------------------------------


def test_the_api_lists_exactly_the_task_types_that_exist_and_refuses_others(api):
    spec = yaml.safe_load((REPO / "docs/api/backend.yaml").read_text())
    assert sorted(spec["components"]["schemas"]["TaskType"]["enum"]) == sorted(discover())
    err = api.post_task("bogus", expect=422)
    assert "unknown task type 'bogus'" in err and "random" in err


# -- cancellation and failures --------------------------------------------------------------


def test_cancel_running_and_queued_tasks(api, server, receiver, openapi):
    _, _, results = server
    running = api.post_task("random", {"amount": 30000, "seed": 1})
    queued = api.post_task("random", {"amount": 5})
    wait_state(api, running, lambda t: t["state"] == "running" and t["progress"] > 0)
    assert api.task(queued)["state"] == "queued"

    resp = api.call("DELETE", f"/tasks/{queued}")
    assert resp.status_code == 202 and resp.json()["state"] == "cancelled"
    body = receiver.result_of(queued, T)
    assert body["state"] == "cancelled" and body["result"] is None

    resp = api.call("DELETE", f"/tasks/{running}")
    assert resp.status_code == 202 and resp.json()["state"] in ("running", "cancelled")
    t0 = time.monotonic()
    body = receiver.result_of(running, T)
    assert time.monotonic() - t0 < 10, "a running task must stop at its next step"
    assert body["state"] == "cancelled"
    made = body["result"]["faces_total"]
    assert 0 < made < 30000
    lines = (results / body["result"]["records"]).read_text().splitlines()
    assert len(lines) == made  # what was made is on disk and accounted for
    assert api.task(running)["state"] == "cancelled"
    resp = api.call("DELETE", f"/tasks/{running}")
    assert resp.status_code == 409 and "already ended" in resp.json()["error"]
    assert len(receiver.of("on-result", running)) == 1
    validate_callbacks(openapi, receiver, running)
    # the worker goes on
    after = api.post_task("random", {"amount": 2})
    assert receiver.result_of(after, T)["state"] == "done"


def test_a_failing_task_is_reported_and_the_worker_lives_on(api, receiver, openapi):
    task_id = api.post_task("explode", documented=False)  # registered by this test module
    body = receiver.result_of(task_id, T)
    assert body["state"] == "failed" and body["result"] is None
    assert "the test task exploded on purpose" in body["error"]
    task = api.task(task_id)
    assert task["state"] == "failed" and "exploded" in task["error"]
    validate_callbacks(openapi, receiver, task_id)
    after = api.post_task("random", {"amount": 2})
    assert receiver.result_of(after, T)["state"] == "done"


# -- hostile and malformed requests ---------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {SECRET}x"},
    {"Authorization": SECRET}, {"Authorization": f"Basic {SECRET}"},
    {"Authorization": f"bearer  {SECRET}"}, {"Authorization": "Bearer "}])
def test_every_endpoint_needs_the_secret(api, headers):
    for method, path in [("GET", "/health"), ("POST", "/tasks"), ("GET", "/tasks/x"),
                         ("DELETE", "/tasks/x"), ("GET", "/tasks/x/files"),
                         ("GET", "/nothing-here")]:
        kw = {"json": {"type": "random", "params": {"amount": 1}}} if method == "POST" else {}
        resp = api.call(method, path, headers=headers, check=path != "/nothing-here", **kw)
        assert resp.status_code == 401, (method, path, resp.text)
        assert "Authorization: Bearer" in resp.json()["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_health(api, bundle):
    health = api.call("GET", "/health").json()
    assert health["status"] == "ok" and health["bundle_hash"] == bundle.hash
    assert health["session_id"] == "s1" and health["job_id"] == "j1"


@pytest.mark.parametrize("params, status, words", [
    ({"amount": 1, "attributes": True}, 422, "no attribute model"),
    ({"amount": 1, "attributes": "yes"}, 400, "must be true or false"),
    ({"amount": 30001}, 422, "from 1 to 30000"),
    ({"amount": 10 ** 12}, 422, "from 1 to 30000"),
    ({"amount": -5}, 422, "from 1 to 30000"),
    ({"amount": 0}, 422, "from 1 to 30000"),
    ({"amount": 1.5}, 400, "whole number"),
    ({"amount": "10"}, 400, "got the string '10'"),
    ({"amount": True}, 400, "got the boolean true"),
    ({"amount": None}, 400, "amount is required"),
    ({}, 400, "amount is required"),
    ({"amount": 1, "truncation_psi": "NaN"}, 400, "truncation_psi must be a number"),
    ({"amount": 1, "truncation_psi": -3}, 422, "from -2.0 to 2.0"),
    ({"amount": 1, "truncation_cutoff": -1}, 422, "truncation_cutoff must be from 0"),
    ({"amount": 1, "noise_mode": "loud"}, 422, "one of const, random, none"),
    ({"amount": 1, "seed": 2 ** 32}, 422, "seed must be from 0 to 4294967295"),
    ({"amount": 1, "seed": -1}, 422, "seed must be from 0"),
    ({"amount": 1, "amunt": 2}, 400, "unknown parameter(s) for task type random: amunt"),
    ({"amount": 1, "folder": "../outside"}, 422, "outside the session's results folder"),
    ({"amount": 1, "folder": "a/../../outside"}, 422, "outside the session's results folder"),
    ({"amount": 1, "folder": "/etc/ligan"}, 422, "absolute path"),
    ({"amount": 1, "folder": "escape/inside"}, 422, "outside the session's results folder"),
    ({"amount": 1, "folder": "."}, 409, "not the results folder itself"),
    ({"amount": 1, "folder": "x\u0000y"}, 400, "not a usable path"),
])
def test_bad_parameters_are_refused_with_what_to_change(api, server, tmp_path, params, status,
                                                         words):
    _, _, results = server
    link = results / "escape"
    if not link.exists():
        link.symlink_to(tmp_path, target_is_directory=True)  # a link pointing outside
    err = api.post_task("random", params, expect=status)
    assert words in err, err
    assert not list(tmp_path.iterdir()), "nothing may be written outside the results folder"


@pytest.mark.parametrize("data, status, words", [
    (b'{"type": "random", "params": {"amount": NaN}}', 400, "NaN is not a JSON number"),
    (b'{"type": "random", "params": {"amount": 1, "truncation_psi": Infinity}}', 400,
     "Infinity is not a JSON number"),
    (b'{"type": "random", "params": {"amount": 1, "truncation_psi": 1e999}}', 422,
     "got inf"),
    (b"", 400, "the body is empty"),
    (b"not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'{"params": {}}', 400, "type is required"),
    (b'{"type": 5}', 400, "type must be a string"),
    (b'{"type": "random", "params": [1]}', 400, "params must be a JSON object"),
    (b'{"type": "random", "params": {"amount": 1}, "priority": 9}', 400, "unknown field"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nests too deeply"),
    (b'{"type": "random", "params": {"amount": 1, "x": "' + b"a" * (2 << 20) + b'"}}', 413,
     "larger than"),
])
def test_malformed_bodies(api, data, status, words):
    resp = api.call("POST", "/tasks", data=data,
                    headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error"]


def test_unknown_ids_and_routes(api):
    for path in ["/tasks/" + "f" * 32, "/tasks/..%2F..%2Fetc%2Fpasswd", "/tasks/%00"]:
        resp = api.call("GET", path, check=False)
        assert resp.status_code == 404 and "error" in resp.json(), path
    resp = api.call("DELETE", "/tasks/" + "f" * 32)
    assert resp.status_code == 404
    resp = api.call("PUT", "/tasks", check=False)
    assert resp.status_code == 405 and "not allowed" in resp.json()["error"]
    resp = api.call("GET", "/../../etc/passwd", check=False)
    assert resp.status_code == 404 and "POST /tasks" in resp.json()["error"]


# -- callbacks ------------------------------------------------------------------------------


def test_callbacks_survive_the_daemon_being_down(bundle, tmp_path, openapi):
    """The daemon is unreachable (port closed) while tasks run and end; once it is back every
    result arrives, once, in order after its progress, and the worker was never blocked."""
    rx = CallbackReceiver(SECRET).start()
    backend, http, url = start_backend(bundle, tmp_path / "results", rx.url, SECRET,
                                       retry_initial=0.05, retry_max=0.2)
    try:
        api = Api(url, openapi)
        rx.stop()  # down: connection refused
        ids = [api.post_task("random", {"amount": 20, "seed": i}) for i in range(3)]
        for task_id in ids:  # the tasks ran to the end although nothing could be delivered
            wait_state(api, task_id, lambda t: t["state"] == "done")
        assert not rx.callbacks
        assert backend.callbacks.pending() <= 2 * len(ids)  # progress was coalesced
        time.sleep(0.5)  # several failed retries
        rx.start()  # up again, same port
        for task_id in ids:
            assert rx.result_of(task_id, T)["state"] == "done"
        rx.wait_for(lambda cbs: backend.callbacks.pending() == 0, T, "an empty outbox")
        for task_id in ids:
            kinds = [c.kind for c in rx.callbacks if c.body.get("task_id") == task_id]
            assert kinds.count("on-result") == 1 and kinds[-1] == "on-result"
        validate_callbacks(openapi, rx)
        # the daemon answering 503 is retried too
        rx.fail_with = 503
        task_id = api.post_task("random", {"amount": 1})
        wait_state(api, task_id, lambda t: t["state"] == "done")
        time.sleep(0.3)
        rx.fail_with = None
        assert rx.result_of(task_id, T)["state"] == "done"
        assert rx.rejected == 0
    finally:
        backend.shutdown(flush_timeout=1)
        http.stop()
        rx.stop()
