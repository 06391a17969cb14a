"""The master daemon with the local scheduler: real daemon on loopback, real backends (the tiny
bundle), real event streams.

Backends take 10-20 s to start (TensorFlow), so the tests of one daemon share its backends and
run in file order: start → task over SSE → replay → auth → kill -9 → restart. Every backend
process still alive at the end is killed (``_kill_jobs``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from jobs.scheduler import JobState, JobStatus, Scheduler
from master_daemon.testing import EventStream, start_daemon
from tests.conftest import (READY_S, current_backend, post_task, session, task, wait_state,
                            wait_task, wait_until)


# -- helpers -----------------------------------------------------------------------------------
def _kill_jobs(home: Path) -> None:
    """SIGKILL the process group of every local job recorded under ``home`` that still runs."""
    for record in (home / "jobs" / "local").glob("*.json"):
        try:
            pid = json.loads(record.read_text())["pid"]
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, KeyError, OSError):
            pass


# -- one daemon for the start/task/replay/auth/kill/restart tests ------------------------------
@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    h = tmp_path_factory.mktemp("daemon-home")
    yield h
    _kill_jobs(h)


@pytest.fixture(scope="module")
def daemons(home, tiny_bundle_dir):
    """A holder whose ``["d"]`` is the running daemon (the restart test replaces it)."""
    holder = {"d": start_daemon(home, tiny_bundle_dir, frontend_command=None, max_backends=2,
                                session_idle_timeout=0)}
    yield holder
    holder["d"].stop(cancel_backends=True)


SID = "user-1"


def test_start_of_interaction_task_progress_and_result_over_sse(daemons):
    d = daemons["d"]
    r = d.api("PUT", f"/api/sessions/{SID}")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["session_id"] == SID and s["state"] in ("queued", "starting")
    assert Path(s["results_dir"]).is_dir() and s["results_dir"].endswith(f"results/{SID}")
    es = EventStream(d.events_url(SID))
    try:
        assert es.status == 200 and es.headers["content-type"].startswith("text/event-stream")
        first = es.wait_for(lambda e: True, 10, "the first event")
        assert first["event"] == "session" and "id" not in first
        ready = es.wait_for(lambda e: e["event"] == "session" and e["data"]["state"] == "ready",
                            READY_S, "session ready")
        assert ready["data"]["backend"]["scheduler"] == "local"
        assert ready["data"]["backend"]["bundle_hash"]
        t = post_task(d, SID, "random", {"amount": 3, "seed": 7})
        assert t["state"] == "queued" and t["task_id"].startswith("t")
        res = es.wait_for(lambda e: e["event"] == "result" and e["data"]["task_id"] ==
                          t["task_id"], 60, "the result event")
        assert res["data"]["state"] == "done", res
        assert len(res["data"]["result"]["faces"]) == 3
        assert any(e["event"] == "progress" and e["data"]["task_id"] == t["task_id"]
                   for e in es.events)
        ids = [e["id"] for e in es.events if "id" in e]
        assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # one by one, no gaps
    finally:
        es.close()
    assert task(d, SID, t["task_id"])["state"] == "done"
    listed = d.api("GET", f"/api/sessions/{SID}/tasks").json()["tasks"]
    assert listed[0]["task_id"] == t["task_id"]


def test_reconnect_with_last_event_id_gets_missed_events(daemons):
    d = daemons["d"]
    last = session(d, SID)["last_event_id"]
    t = post_task(d, SID, "random", {"amount": 2, "seed": 8})
    wait_task(d, SID, t["task_id"], timeout=60)
    es = EventStream(d.events_url(SID), last_event_id=last)
    try:
        es.wait_for(lambda e: e["event"] == "result" and e["data"]["task_id"] == t["task_id"],
                    10, "the missed result")
        assert es.events[0]["event"] == "session" and "id" not in es.events[0]
        ids = [e["id"] for e in es.events if "id" in e]
        assert ids[0] == last + 1 and ids == list(range(last + 1, last + 1 + len(ids)))
    finally:
        es.close()


def test_tokens_secrets_and_unknown_things(daemons):
    d = daemons["d"]
    for method, path in (("GET", f"/api/sessions/{SID}"), ("PUT", "/api/sessions/x"),
                         ("POST", f"/api/sessions/{SID}/tasks"),
                         ("GET", f"/api/sessions/{SID}/tasks"),
                         ("DELETE", f"/api/sessions/{SID}/tasks/t1")):
        assert requests.request(method, d.url + path, timeout=10).status_code == 401
        r = requests.request(method, d.url + path, timeout=10,
                             headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "error" in r.json()
    assert d.api("GET", "/api/sessions/nobody").status_code == 404
    assert d.api("GET", f"/api/sessions/{SID}/tasks/tnope").status_code == 404
    assert d.api("PUT", "/api/sessions/bad%20id").status_code == 400
    assert d.api("POST", f"/api/sessions/{SID}/tasks", data="{nope").status_code == 400
    # event tokens
    assert requests.get(f"{d.url}/events/{SID}?token=forged", timeout=10).status_code == 401
    other = requests.get(f"{d.url}/events/{SID}?token={d.events_token('user-2')}", timeout=10)
    assert other.status_code == 401
    assert requests.get(d.events_url("nobody"), timeout=10).status_code == 404
    # callbacks: unknown job, wrong per-job secret
    b = current_backend(d, SID)
    assert requests.post(f"{d.url}/callbacks/b-000/on-progress", json={},
                         timeout=10).status_code == 404
    r = requests.post(f"{d.url}/callbacks/{b.backend_id}/on-progress", json={},
                      headers={"Authorization": "Bearer not-the-secret"}, timeout=10)
    assert r.status_code == 401
    # the backend's refusal is relayed as is
    r = d.api("POST", f"/api/sessions/{SID}/tasks", json={"type": "random",
                                                          "params": {"amount": 0}})
    assert r.status_code == 422 and "amount" in r.json()["error"], r.text
    r = d.api("POST", f"/api/sessions/{SID}/tasks", json={"type": "random",
                                                          "params": {"amount": 1, "x": 1}})
    assert r.status_code == 400, r.text
    # strict JSON and one body limit at the edge: refused with a reason, nothing queued
    before = len(d.api("GET", f"/api/sessions/{SID}/tasks").json()["tasks"])
    for body, status, words in (
            ('{"type": "random", "params": {"amount": NaN}}', 400, "NaN is not a JSON number"),
            ("[" * 5000 + "]" * 5000, 400, "nests too deeply"),
            ('{"type": "random", "params": {"pad": "%s"}}' % ("x" * (1 << 20)), 413,
             "over 1024 KiB")):
        r = d.api("POST", f"/api/sessions/{SID}/tasks", data=body)
        assert r.status_code == status and words in r.json()["error"], r.text
    assert len(d.api("GET", f"/api/sessions/{SID}/tasks").json()["tasks"]) == before


def test_cancel_a_task(daemons):
    d = daemons["d"]
    t = post_task(d, SID, "random", {"amount": 20000, "seed": 3})
    r = d.api("DELETE", f"/api/sessions/{SID}/tasks/{t['task_id']}")
    assert r.status_code == 202, r.text
    ended = wait_task(d, SID, t["task_id"], timeout=60)
    assert ended["state"] == "cancelled"
    assert d.api("DELETE", f"/api/sessions/{SID}/tasks/{t['task_id']}").status_code == 409


def test_kill_9_mid_task_fails_the_task_with_the_reason_then_a_fresh_backend(daemons):
    d = daemons["d"]
    old = current_backend(d, SID)
    assert old.pid
    t = post_task(d, SID, "random", {"amount": 30000, "seed": 4})
    wait_until(lambda: task(d, SID, t["task_id"])["state"] == "running", 30, "task running")
    t0 = time.monotonic()
    os.kill(old.pid, signal.SIGKILL)
    failed = wait_task(d, SID, t["task_id"], timeout=15)
    took = time.monotonic() - t0
    assert failed["state"] == "failed" and took < 10, (failed, took)
    assert "signal 9" in failed["error"] and "SIGKILL" in failed["error"], failed["error"]
    s = session(d, SID)
    assert s["state"] in ("failed", "queued", "starting") and "signal 9" in s["reason"]
    t2 = post_task(d, SID, "random", {"amount": 2, "seed": 5})
    done = wait_task(d, SID, t2["task_id"], timeout=READY_S + 30)
    assert done["state"] == "done", done
    assert current_backend(d, SID).backend_id != old.backend_id


def test_restarted_daemon_reattaches_to_its_running_backend(daemons, home, tiny_bundle_dir):
    d = daemons["d"]
    before = session(d, SID)
    assert before["state"] == "ready"
    port, token = d.daemon.port, d.token
    d.stop(cancel_backends=False)  # backends keep running
    d2 = start_daemon(home, tiny_bundle_dir, frontend_command=None, port=port, token=token,
                      max_backends=2, session_idle_timeout=0)
    daemons["d"] = d2
    after = session(d2, SID)
    assert after["state"] == "ready"
    assert after["backend"]["job_id"] == before["backend"]["job_id"]
    assert after["last_event_id"] == before["last_event_id"]
    t = post_task(d2, SID, "random", {"amount": 2, "seed": 9})
    assert wait_task(d2, SID, t["task_id"], timeout=60)["state"] == "done"
    time.sleep(2.5)  # a monitor tick or two: the re-attached job is still seen running
    assert session(d2, SID)["backend"]["state"] == "RUNNING"


def test_objects_match_the_openapi_description(daemons):
    import jsonschema
    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "docs" / "api" /
                           "master_daemon.yaml").read_text())
    from openapi_spec_validator import validate

    validate(spec)
    d = daemons["d"]

    def check(obj, name):
        jsonschema.Draft202012Validator({**spec, "$ref": f"#/components/schemas/{name}"}
                                        ).validate(obj)

    check(session(d, SID), "Session")
    tasks = d.api("GET", f"/api/sessions/{SID}/tasks").json()["tasks"]
    assert tasks
    for t in tasks:
        check(t, "TaskSummary")
        check(task(d, SID, t["task_id"]), "Task")
    page = d.api("GET", f"/api/sessions/{SID}/tasks/{tasks[0]['task_id']}/files").json()
    check(page, "FilesPage")


# -- queue limit and idle timeout --------------------------------------------------------------
def test_queue_limit_then_idle_cancel(tmp_path, tiny_bundle_dir):
    d = start_daemon(tmp_path, tiny_bundle_dir, frontend_command=None, max_backends=1,
                     session_idle_timeout=4)
    try:
        a = d.api("PUT", "/api/sessions/s-a").json()
        assert a["state"] == "starting", a
        es = EventStream(d.events_url("s-a"))
        b = d.api("PUT", "/api/sessions/s-b").json()
        assert b["state"] == "queued" and b["queue_position"] == 1 and b["backend"] is None
        time.sleep(2)
        assert session(d, "s-b")["queue_position"] == 1
        d.api("DELETE", "/api/sessions/s-a")
        assert session(d, "s-a")["state"] == "stopped"
        es.wait_for(lambda e: e["event"] == "session" and e["data"]["state"] == "stopped", 5)
        es.close()
        wait_state(d, "s-b", "ready", READY_S + 30)
        stopped = wait_state(d, "s-b", "stopped", 20)
        assert "idle" in stopped["reason"], stopped
        job = d.daemon.manager.backends
        job = next(b.job_id for b in job.values() if b.session_id == "s-b")
        wait_until(lambda: d.daemon.scheduler.state(job).final, 40, "idle backend ended")
        # the next start-of-interaction starts a new backend
        again = d.api("PUT", "/api/sessions/s-b").json()
        assert again["state"] in ("queued", "starting") and again["backend"] is None or \
            again["backend"]["job_id"] != job, again
    finally:
        d.stop(cancel_backends=True)
        _kill_jobs(tmp_path)


# -- revoked event-stream keys -----------------------------------------------------------------
def test_revoked_stream_keys_end_their_streams_and_stay_refused_after_a_restart(tmp_path):
    """A logout revokes its login's stream key: open streams with it end at once, its URL is
    refused from then on (also by a restarted daemon), other keys go on. No backend is started
    (``max_backends=0``: the session waits in the queue, its stream works)."""
    import hashlib

    from itsdangerous import URLSafeTimedSerializer

    from master_daemon.app import events_token

    key, other = (hashlib.sha256(login).hexdigest() for login in (b"login-1", b"login-2"))
    d = start_daemon(tmp_path, None, frontend_command=None, max_backends=0)

    def url(k: str, **kw) -> str:
        return f"{d.url}/events/k-1?token={events_token(d.token, 'k-1', k, **kw)}"

    try:
        assert d.api("PUT", "/api/sessions/k-1").json()["state"] == "queued"
        revoked, kept = EventStream(url(key)), EventStream(url(other))
        for es in (revoked, kept):
            assert es.status == 200
            es.wait_for(lambda e: e["event"] == "session", 10, "the snapshot")
        r = d.api("POST", "/api/sessions/k-1/revoked-keys", json={"keys": [key]})
        assert r.status_code == 200 and r.json() == {"revoked": 1}, r.text
        wait_until(lambda: revoked.closed, 5, "the revoked stream ended")
        assert not kept.closed
        again = requests.get(url(key), timeout=10)
        assert again.status_code == 401 and "revoked" in again.json()["error"]
        kept.close()
        # the login's expiry ends a stream too; expired and old-format tokens are refused
        short = EventStream(url(other, exp=time.time() + 2))
        assert short.status == 200
        wait_until(lambda: short.closed, 10, "the stream ended when its login expired")
        assert requests.get(url(other, exp=time.time() - 1), timeout=10).status_code == 401
        bare = URLSafeTimedSerializer(d.token, salt="ligan-events").dumps("k-1")
        assert requests.get(f"{d.url}/events/k-1?token={bare}", timeout=10).status_code == 401
        # only the daemon token revokes, and only well-formed keys
        assert requests.post(f"{d.url}/api/sessions/k-1/revoked-keys", json={"keys": [other]},
                             timeout=10).status_code == 401
        for body in ({"keys": ["not-a-hash"]}, {"keys": other}, {}, {"keys": [other] * 1001}):
            assert d.api("POST", "/api/sessions/k-1/revoked-keys", json=body).status_code == 400
        assert d.api("GET", "/api/sessions/k-1/revoked-keys").status_code == 405
        port, token = d.daemon.port, d.token
        d.stop()
        d = start_daemon(tmp_path, None, frontend_command=None, port=port, token=token,
                         max_backends=0)
        assert requests.get(url(key), timeout=10).status_code == 401
        fine = EventStream(url(other))
        assert fine.status == 200
        fine.close()
    finally:
        d.stop()


def test_logout_ends_the_event_stream_of_the_real_frontend(tmp_path):
    """The whole contract: the real frontend makes the token and, at logout, revokes its key
    (the two sides keep their own copy of the token's salt: this shows they agree)."""
    from frontend_server.testing import Browser, add_user

    import dataclasses

    assert add_user(tmp_path, "officer").returncode == 0
    d = start_daemon(tmp_path, None, wait_frontend_s=60)
    try:
        assert d.wait_frontend(60), (tmp_path / "logs" / "frontend.log").read_text()[-3000:]
        m = d.daemon.manager  # no backend: the session waits in the queue, its stream works
        m.settings = dataclasses.replace(m.settings, max_backends=0)
        b = Browser(d.url)
        b.login("officer")
        url = d.url + b.post("/web/session").json()["events_url"]
        es = EventStream(url)
        assert es.status == 200
        es.wait_for(lambda e: e["event"] == "session", 10, "the snapshot")
        b.post("/web/logout")
        wait_until(lambda: es.closed, 5, "the stream ended at logout")
        r = requests.get(url, timeout=10)
        assert r.status_code == 401 and "revoked" in r.json()["error"]
    finally:
        d.stop()


# -- renewal -----------------------------------------------------------------------------------
def test_renewal_before_the_time_limit_keeps_queued_tasks(tmp_path, tiny_bundle_dir,
                                                          monkeypatch):
    monkeypatch.setenv("LIGAN_BACKEND_GRACE", "1")  # read by the backends at their start
    # Renewal starts as soon as the first backend is ready (150 - 140 s < start-up time); the
    # replacement has 150 s for the long task (faces that get records render one by one: 4000
    # take about 40 s on two idle cores, and must still fit on busy ones).
    d = start_daemon(tmp_path, tiny_bundle_dir, frontend_command=None, max_backends=1,
                     session_idle_timeout=0, backend_time_limit=150, backend_renew_before=140,
                     backend_grace=1)
    try:
        d.api("PUT", "/api/sessions/r-1")
        wait_state(d, "r-1", "ready", READY_S)
        first = current_backend(d, "r-1")
        wait_until(lambda: first.renewed_by, 10, "the replacement submitted")
        # one renewal only: the replacement itself must not be renewed when it is ready
        import dataclasses

        m = d.daemon.manager
        m.settings = dataclasses.replace(m.settings, backend_renew_before=0)
        t0 = time.monotonic()
        long = post_task(d, "r-1", "random", {"amount": 4000, "seed": 1})
        short = post_task(d, "r-1", "random", {"amount": 2, "seed": 2})
        # the replacement becomes the session's backend
        wait_until(lambda: current_backend(d, "r-1").backend_id != first.backend_id,
                   READY_S, "the replacement backend")
        done_long = wait_task(d, "r-1", long["task_id"], timeout=180)
        done_short = wait_task(d, "r-1", short["task_id"], timeout=60)
        assert done_long["state"] == "done" and done_short["state"] == "done", (done_long,
                                                                                 done_short)
        took = time.monotonic() - t0
        # both were on the old backend when it was stopped, and went on on the new one
        assert m.tasks[long["task_id"]].attempts == 2, (done_long, took)
        assert m.tasks[short["task_id"]].attempts == 2
        assert m.tasks[long["task_id"]].backend_id != first.backend_id
        assert done_long["result"]["resumed_at"] > 0  # it resumed, not restarted
        assert done_long["result"]["faces_total"] == 4000
        wait_until(lambda: d.daemon.scheduler.state(first.job_id).final, 40, "old backend ended")
    finally:
        d.stop(cancel_backends=True)
        _kill_jobs(tmp_path)


def test_an_idle_session_is_stopped_at_the_renewal_point_not_renewed(tmp_path,
                                                                    tiny_bundle_dir):
    """A session nobody used during a whole renewal window is let go when its backend nears
    its time limit (it renewed for ever before, 21 jobs in 16 minutes: each replacement
    restarted the idle clock)."""
    d = start_daemon(tmp_path, tiny_bundle_dir, frontend_command=None, max_backends=1,
                     session_idle_timeout=3600, backend_time_limit=90, backend_renew_before=80)
    try:
        d.api("PUT", "/api/sessions/i-1")
        m = d.daemon.manager
        # As if the user had last done something long ago; aged before the backend is ready,
        # since on a slow machine readiness may come after the renewal point (10 s here), and
        # the first tick after it would renew a session that still looked used.
        with m._lock:
            m.sessions["i-1"].last_activity -= 1000
        state = wait_state(d, "i-1", "stopped", READY_S + 30)
        assert "not renewed" in state["reason"], state
        assert not current_backend(d, "i-1")
        mine = [b for b in m.backends.values() if b.session_id == "i-1"]
        assert len(mine) == 1 and mine[0].ready_at, mine  # it was ready, and not replaced
        assert mine[0].renewed_by == ""
        post_task(d, "i-1", "random", {"amount": 1, "seed": 1})  # the next task starts one
        wait_state(d, "i-1", "ready", READY_S)
    finally:
        d.stop(cancel_backends=True)
        _kill_jobs(tmp_path)


# -- proxy -------------------------------------------------------------------------------------
ECHO_APP = textwrap.dedent('''
    import json, sys
    from waitress import serve

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status": "ok"}']
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode()
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        status = {"/teapot": "418 I'm a teapot"}.get(path, "200 OK")
        out = json.dumps({"method": environ["REQUEST_METHOD"], "path": path,
                          "query": environ.get("QUERY_STRING", ""), "body": body,
                          "headers": headers}).encode()
        start_response(status, [("Content-Type", "application/json"), ("X-Echo", "1"),
                                ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")])
        return [out]

    serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8,
          clear_untrusted_proxy_headers=False)
''')


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    script = tmp / "echo_app.py"
    script.write_text(ECHO_APP)
    d = start_daemon(tmp, None, frontend_command=[sys.executable, str(script), "{port}"],
                     wait_frontend_s=30)
    yield d
    d.stop()


def test_proxy_passes_method_body_headers_and_status(proxied):
    d = proxied
    r = requests.put(f"{d.url}/some/path?x=1&y=%20z", data=b'{"k": 1}', timeout=10,
                     headers={"Content-Type": "application/json", "X-Custom": "yes",
                              "X-Forwarded-For": "6.6.6.6", "Connection": "keep-alive, X-Drop",
                              "X-Drop": "must not pass"})
    assert r.status_code == 200 and r.headers["X-Echo"] == "1"
    got = r.json()
    assert got["method"] == "PUT" and got["path"] == "/some/path"
    assert got["query"] == "x=1&y=%20z" and got["body"] == '{"k": 1}'
    h = got["headers"]
    assert h["X-Custom"] == "yes" and h["Content-Type"] == "application/json"
    assert "X-Drop" not in h
    assert h["X-Forwarded-For"] == "127.0.0.1"  # a browser cannot forge it
    assert h["X-Forwarded-Proto"] == "http" and h["X-Forwarded-Host"] == d.url.split("//")[1]
    # a forged Host header never reaches the frontend's links and redirects
    forged = requests.get(f"{d.url}/x", headers={"Host": "evil.example"}, timeout=10).json()
    assert forged["headers"]["X-Forwarded-Host"] == d.url.split("//")[1]
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    for method in ("POST", "DELETE", "PATCH"):
        r = requests.request(method, f"{d.url}/teapot", data="x", timeout=10)
        assert r.status_code == 418 and r.json()["method"] == method
    # the daemon's own routes are not proxied, the rest of /api is
    assert requests.get(f"{d.url}/api/sessions/x", timeout=10).status_code == 401
    assert requests.get(f"{d.url}/api/other", timeout=10).json()["path"] == "/api/other"


def test_proxy_answers_502_while_the_frontend_is_down_and_it_is_restarted(proxied):
    d = proxied
    fe = d.daemon.frontend
    old = fe.proc
    os.killpg(old.pid, signal.SIGKILL)
    old.wait(10)
    r = requests.get(f"{d.url}/page", timeout=10)
    assert r.status_code == 502 and "LiGAN" in r.text and "text/html" in r.headers["Content-Type"]
    r = requests.get(f"{d.url}/api/things", timeout=10)
    assert r.status_code == 502 and "error" in r.json()
    wait_until(lambda: requests.get(f"{d.url}/page", timeout=10).status_code == 200, 30,
               "the frontend restarted")
    assert fe.proc.pid != old.pid and fe.restarts >= 1


def test_ligan_daemon_serve_is_registered():
    from tests.conftest import ligan

    r = ligan("daemon", "serve", "--help")
    assert r.returncode == 0 and "--cancel-on-exit" in r.stdout


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4]
    except (OSError, IndexError):
        return False


def _get_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_the_frontend_exits_when_its_daemon_is_killed(tmp_path):
    """kill -9 of the daemon orphaned its frontend, which kept the port and the database."""
    import subprocess

    from master_daemon.app import free_port
    from master_daemon.testing import daemon_settings
    from setup.config import to_env
    from tests.conftest import ligan_command

    port = free_port()
    env = dict(os.environ, **to_env(daemon_settings(tmp_path, port=port)))
    daemon = subprocess.Popen(ligan_command() + ["daemon", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _get_ok(f"http://127.0.0.1:{port}/healthz"), 60, "the daemon up")
        frontend = wait_until(lambda: [c for c in _children(daemon.pid)
                                       if b"frontend_server" in Path(f"/proc/{c}/cmdline")
                                       .read_bytes()], 60, "the frontend started")[0]
        daemon.kill()
        daemon.wait(10)
        wait_until(lambda: not _alive(frontend), 20, "the orphaned frontend gone")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        _kill_jobs(tmp_path)


# -- the manager with a scheduler of the test's own (no backend processes: fast) ----------------
class ScriptedScheduler(Scheduler):
    """A scheduler whose jobs are in whatever state the test sets."""

    kind = "scripted"

    def __init__(self):
        self.jobs: dict[str, JobState] = {}
        self.cancelled: list[str] = []
        self.specs: list = []

    def submit(self, spec):
        self.specs.append(spec)
        job_id = f"job-{len(self.specs)}"
        self.jobs[job_id] = JobState(job_id, JobStatus.PENDING, reason="queued")
        return job_id

    def state(self, job_id):
        return self.jobs[job_id]

    def cancel(self, job_id):
        self.cancelled.append(job_id)

    def describe(self):
        return {"kind": self.kind}


@pytest.fixture
def scripted(tmp_path):
    """(manager, monitor, scheduler, Flask test client) around a :class:`ScriptedScheduler`."""
    import dataclasses

    from master_daemon.app import create_app
    from master_daemon.events import EventHub
    from master_daemon.manager import Manager
    from master_daemon.monitor import Monitor
    from master_daemon.proxy import Proxy
    from master_daemon.store import Store
    from setup.config import load_settings

    settings = dataclasses.replace(load_settings({}), home=tmp_path / "home",
                                   session_idle_timeout=0)
    sched = ScriptedScheduler()
    store = Store(tmp_path / "state.sqlite3")
    hub = EventHub(store)
    manager = Manager(settings, sched, store, hub, bundle=tmp_path / "bundle")
    manager.callback_base = "http://127.0.0.1:1/callbacks"
    client = create_app(manager, hub, "tok", Proxy(lambda: None)).test_client()
    yield manager, Monitor(manager), sched, client
    hub.close()
    store.close()


def test_a_job_stuck_pending_fails_its_session_from_the_structured_state(scripted):
    """The monitor acts on ``JobState.stuck``, whatever the words: no scheduler kind, no
    parsing of reasons; a job that merely waits leaves its words as the session's reason."""
    manager, monitor, sched, client = scripted
    auth = {"Authorization": "Bearer tok"}
    assert client.put("/api/sessions/bad%20id", headers=auth).status_code == 400
    r = client.put("/api/sessions/user-1", headers=auth)
    assert r.status_code == 200 and r.json["state"] == "starting", r.json
    job = r.json["backend"]["job_id"]
    spec = sched.specs[0]  # the settings' backend resources, granted by the default method
    assert spec.cpus == manager.settings.slurm_cpus and spec.gpus == manager.settings.slurm_gpus
    # checked by the HTTP layer before the manager sees it
    r = client.post("/api/sessions/user-1/tasks", headers=auth, json={"type": "random", "x": 1})
    assert r.status_code == 400 and "unknown keys ['x']" in r.json["error"]
    r = client.post("/api/sessions/user-1/tasks", headers=auth,
                    json={"type": "random", "params": {"amount": 2}})
    assert r.status_code == 202, r.json
    task_id = r.json["task_id"]

    sched.jobs[job] = JobState(job, JobStatus.PENDING, reason="waiting its turn",
                               code="Priority")
    monitor.tick()
    assert manager.get_session("user-1")["reason"] == "waiting its turn"
    assert not sched.cancelled
    sched.jobs[job] = JobState(job, JobStatus.PENDING, reason="the queue is closed",
                               code="Closed", stuck=True)
    monitor.tick()
    s = manager.get_session("user-1")
    assert s["state"] == "failed" and s["reason"] == "the job cannot start: the queue is closed"
    assert sched.cancelled == [job]
    t = manager.get_task("user-1", task_id)
    assert t["state"] == "failed" and "the queue is closed" in t["error"]


class FakeBackend:
    """A backend's HTTP API on a loopback port, enough for the daemon to send a task to it
    and page its files: ``POST /tasks``, ``GET /tasks/<id>/files``, ``GET /health``."""

    def __init__(self, files: list[str]):
        import http.server
        import threading
        from urllib.parse import parse_qs, urlsplit

        self.files = files
        self.posted: list[dict] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.posted.append(json.loads(self.rfile.read(length)))
                self._answer(202, {"task_id": f"bt{len(fake.posted)}", "state": "queued"})

            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/health":
                    return self._answer(200, {"status": "ok"})
                q = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                offset, limit = q.get("offset", 0), q.get("limit", 1000)
                self._answer(200, {"task_id": url.path.split("/")[2], "state": "done",
                                   "offset": offset, "limit": limit, "total": len(fake.files),
                                   "files": fake.files[offset:offset + limit]})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_task_events_carry_a_summary_and_the_files_are_paged(scripted):
    """A random task of 600 faces whose backend capped its result (4 faces, 50 of 602
    files): its ``task`` events and the task list carry counts, not the result; the one
    ``result`` event has the faces without latents and no file list; GET of the task has the
    capped result; ``…/files`` pages through all 602 paths from the backend while it lives."""
    from master_daemon.models import B_ENDED

    manager, monitor, sched, client = scripted
    auth = {"Authorization": "Bearer tok"}
    sid = "user-2"
    files = ["tasks/x/task.json", "tasks/x/records.jsonl"] + [f"tasks/x/{i:05d}.png"
                                                              for i in range(600)]
    fake = FakeBackend(files)
    try:
        client.put(f"/api/sessions/{sid}", headers=auth)
        b = manager.backends[manager.sessions[sid].backend_id]
        bearer = {"Authorization": f"Bearer {b.secret}"}
        r = client.post(f"/callbacks/{b.backend_id}/on-ready", headers=bearer,
                        json={"status": "ready", "address": fake.url, "bundle_hash": "h"})
        assert r.status_code == 200 and manager.get_session(sid)["state"] == "ready"
        r = client.post(f"/api/sessions/{sid}/tasks", headers=auth,
                        json={"type": "random", "params": {"amount": 600}})
        assert r.status_code == 202 and fake.posted, r.json
        tid = r.json["task_id"]
        r = client.post(f"/callbacks/{b.backend_id}/on-progress", headers=bearer,
                        json={"task_id": "bt1", "progress": 50, "message": "300 of 600"})
        assert r.status_code == 200
        faces = [{"id": f"{i:032x}", "latent": [0.123456789] * 256, "latent_space": "z",
                  "image": files[2 + i]} for i in range(4)]
        result = {"faces": faces, "files": files[:50], "faces_total": 600, "files_total": 602,
                  "seed": 3, "folder": "tasks/x"}
        r = client.post(f"/callbacks/{b.backend_id}/on-result", headers=bearer,
                        json={"task_id": "bt1", "state": "done", "result": result,
                              "error": None})
        assert r.status_code == 200, r.json
        manager.hub.flush()
        events = [e for e in manager.hub.after(sid, 0) if e.name in ("task", "result")]
        tasks = [json.loads(e.data) for e in events if e.name == "task"]
        assert [t["state"] for t in tasks] == ["queued", "running", "done"]
        assert all("result" not in t and len(json.dumps(t)) < 1000 for t in tasks)
        assert tasks[-1]["result_summary"] == {"faces_total": 600, "files_total": 602}
        (ended,) = [json.loads(e.data) for e in events if e.name == "result"]
        assert ended["state"] == "done" and ended["result"]["faces_total"] == 600
        assert "files" not in ended["result"] and ended["result"]["seed"] == 3
        assert [f["image"] for f in ended["result"]["faces"]] == files[2:6]
        assert all("latent" not in f for f in ended["result"]["faces"])
        assert len(json.dumps(ended)) < 2000
        full = client.get(f"/api/sessions/{sid}/tasks/{tid}", headers=auth).json
        assert full["result"] == result  # GET has the capped result as the backend sent it
        listed = client.get(f"/api/sessions/{sid}/tasks", headers=auth).json["tasks"]
        assert listed[0]["task_id"] == tid and "result" not in listed[0]
        assert listed[0]["result_summary"]["files_total"] == 602

        got: list[str] = []
        while True:
            page = client.get(f"/api/sessions/{sid}/tasks/{tid}/files?offset={len(got)}"
                              f"&limit=250", headers=auth).json
            assert page["task_id"] == tid and page["total"] == 602 and page["offset"] == len(got)
            got += page["files"]
            if not page["files"]:
                break
        assert got == files
        for obj, name in [*((t, "TaskSummary") for t in tasks + listed), (full, "Task"),
                          (ended, "Task"), (page, "FilesPage")]:
            _check_schema(obj, name)
        for bad in ("offset=-1", "limit=0", "limit=10001", "offset=x"):
            r = client.get(f"/api/sessions/{sid}/tasks/{tid}/files?{bad}", headers=auth)
            assert r.status_code == 400 and "must be a whole number" in r.json["error"], bad
        with manager.lock:
            b.state = B_ENDED
        r = client.get(f"/api/sessions/{sid}/tasks/{tid}/files", headers=auth)
        assert r.status_code == 410 and "records.jsonl" in r.json["error"]
    finally:
        fake.close()


def _check_schema(obj: dict, name: str) -> None:
    import jsonschema
    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "docs" / "api" /
                           "master_daemon.yaml").read_text())
    jsonschema.Draft202012Validator({**spec, "$ref": f"#/components/schemas/{name}"}
                                    ).validate(obj)
