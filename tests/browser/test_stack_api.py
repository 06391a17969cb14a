"""The frontend through the real master daemon and a real backend, without a browser: the
contract between them (session start, event token, tasks, result images)."""
from __future__ import annotations

from frontend_server.testing import Browser
from tests.browser.conftest import LONDON
from tests.conftest import wait_until


def wait_task(b: Browser, task_id: str, timeout: float = 180) -> dict:
    def ended() -> dict | None:
        task = b.get(f"/web/tasks/{task_id}").json()
        return task if task["state"] in ("done", "failed", "cancelled") else None

    return wait_until(ended, timeout, f"task {task_id} ended", interval=0.5)


def wait_ready(b: Browser, timeout: float = 120) -> dict:
    """The user's session once it is ready."""
    def ready() -> dict | None:
        session = b.get("/web/session").json()
        return session if session["session"]["state"] == "ready" else None

    return wait_until(ready, timeout, "the session ready", interval=0.5)


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
    wait_ready(b, 120)
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
    wait_ready(b, 120)
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
