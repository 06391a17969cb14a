"""The frontend through the real master daemon and a real backend, without a browser: the
contract between them (session start, event token, tasks, result images)."""
from __future__ import annotations

import time

from frontend_server.testing import Browser
from tests.browser.conftest import LONDON


def wait_task(b: Browser, task_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        task = b.get(f"/web/tasks/{task_id}").json()
        if task["state"] in ("done", "failed", "cancelled"):
            return task
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not end in {timeout} s: {task}")


def test_fillers_through_the_daemon(live):
    b = Browser(live.url)
    b.login("officer", live.password)
    started = b.post("/web/session").json()
    assert started["session"]["state"] in ("queued", "starting", "ready")
    events = b.http.get(live.url + started["events_url"], stream=True, timeout=10)
    assert events.status_code == 200
    assert events.headers["Content-Type"].startswith("text/event-stream")
    events.close()
    upload = b.upload((LONDON / "001_03.jpg").read_bytes())
    deadline = time.time() + 120
    while b.get("/web/session").json()["session"]["state"] != "ready":
        assert time.time() < deadline, b.get("/web/session").json()
        time.sleep(0.5)
    task = b.post("/web/tasks", 202, json={"type": "fillers", "params": {
        "suspect_photo": upload["photo"], "per_page": 4, "steps": 5,
        "near_clone_threshold": 0}}).json()
    task = wait_task(b, task["task_id"])
    assert task["state"] == "done", task
    faces = task["result"]["faces"]
    assert len(faces) == 5
    image = b.get(f"/web/files/{faces[1]['image']}")
    assert image.headers["Content-Type"] == "image/png"


def test_the_proxy_does_not_share_one_users_login_with_others(live):
    """A visitor without cookies must not become whoever logged in last. (The daemon's proxy
    forwards through one requests.Session: unless its cookie jar is disabled, it stores the
    frontend's Set-Cookie and sends it with every cookie-less request.)"""
    officer = Browser(live.url)
    officer.login("officer", live.password)
    stranger = Browser(live.url)
    assert stranger.get("/web/me").json()["user"] is None, \
        "the daemon's proxy sent another user's session cookie (see master_daemon/proxy.py)"


def test_a_value_out_of_the_backends_range_reaches_the_user_as_its_422(live):
    """The frontend leaves value ranges to the backend (some come from its settings, such as
    the most faces a random task may make): the backend's refusal comes back through the real
    daemon and frontend as a 4xx with the backend's message, not a 500 or 502."""
    b = Browser(live.url)
    b.login("officer", live.password)
    b.post("/web/session")
    deadline = time.time() + 120
    while b.get("/web/session").json()["session"]["state"] != "ready":
        assert time.time() < deadline, b.get("/web/session").json()
        time.sleep(0.5)
    photo = b.upload((LONDON / "001_03.jpg").read_bytes())["photo"]
    before = len(b.get("/web/tasks").json()["tasks"])
    for path, type_, params, words in (
            ("/web/research/tasks", "random", {"amount": 30_001},
             "params.amount must be from 1 to 30000, got 30001"),
            ("/web/tasks", "fillers", {"suspect_photo": photo, "per_page": 61},
             "params.per_page must be from 1 to 60, got 61"),
            ("/web/research/tasks", "no_such_type", {}, "unknown task type 'no_such_type'")):
        err = b.post(path, 422, json={"type": type_, "params": params}).json()
        assert words in err["error"], err
    assert len(b.get("/web/tasks").json()["tasks"]) == before   # nothing was queued
