"""The frontend server's API through a real server on a loopback port: accounts, CSRF, rate
limiting, uploads (with real photos), forwarding to the daemon, isolation between users, and
lineup save and export.

The daemon side is a small stand-in here (it checks the bearer token and records what it was
sent); the browser tests in tests/browser/ run against the real master daemon.
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest
import requests
from PIL import Image

from frontend_server.testing import (DAEMON_TOKEN, PASSWORD, Browser, FakeDaemon, Frontend,
                                     add_user, cookie_serializer, fake_faces, free_port,
                                     frontend_env, login_id, pdf_text, results_dir, stream_key,
                                     user_id, validate, with_cookie)
from tests.conftest import REPO, SHARED, ligan, ligan_command

LONDON = SHARED / "faces" / "london" / "001_03.jpg"
NO_FACE = SHARED / "faces" / "no_face" / "fox.jpg"
needs_photos = pytest.mark.skipif(not LONDON.exists(), reason=f"{LONDON} is absent (shared photos)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    for name, admin in (("admin", True), ("alice", False), ("bob", False)):
        done = add_user(home, name, admin=admin)
        assert done.returncode == 0, done.stderr
    daemon = FakeDaemon()
    server = Frontend(home, daemon.url, LIGAN_UPLOAD_MAX_MB="1", LIGAN_LOGIN_RATE_LIMIT="5/minute")
    yield server, daemon, home
    server.stop()
    daemon.stop()


# -- accounts, CSRF, rate limit -------------------------------------------------------------

def test_login_logout_and_wrong_password(stack):
    b = Browser(stack[0].url)
    assert b.get("/web/me").json()["user"] is None
    assert b.get("/web/lineups", 401).json()["error"] == "Please log in first."
    assert "Wrong user name or password" in b.login("alice", "not her password", 401)["error"]
    assert "Wrong user name" in b.login("nobody", PASSWORD, 401)["error"]
    user = b.login("alice")["user"]
    assert user["name"] == "alice" and user["is_admin"] is False
    cookie = next(c for c in b.http.cookies if c.name == "ligan_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert b.get("/web/me").json()["user"]["name"] == "alice"
    b.csrf = b.post("/web/logout").json()["csrf_token"]
    assert b.get("/web/me").json()["user"] is None
    b.get("/web/lineups", 401)


def test_logout_ends_the_session_for_good(stack):
    """A copy of the cookie taken before logout must not read or write afterwards (it did for
    12 h: the signed cookie was the whole session)."""
    server, _, home = stack
    b = Browser(server.url)
    me = b.login("alice")["user"]
    copied = with_cookie(server.url, b.http.cookies["ligan_session"], b.csrf)
    assert copied.get("/web/me").json()["user"]["name"] == "alice"
    copied.get("/web/lineups")
    b.csrf = b.post("/web/logout").json()["csrf_token"]
    assert copied.get("/web/me").json()["user"] is None
    assert copied.get("/web/lineups", 401).json()["error"] == "Please log in first."
    copied.post("/web/lineups", 401, json={"suspect": {"upload_id": "0" * 32}})
    copied.get("/web/events", 401)
    # the cookie holds only the login session's id; one naming a user id (the format before
    # server-side sessions) logs nobody in
    b.login("alice")
    assert set(cookie_serializer(home).loads(b.http.cookies["ligan_session"])) == {
        "login", "csrf_token", "_permanent"}
    forged = cookie_serializer(home).dumps({"uid": me["id"], "_permanent": True})
    assert with_cookie(server.url, forged, b.csrf).get("/web/me").json()["user"] is None


def test_the_event_token_names_the_login_by_its_hash_and_logout_revokes_it(stack):
    """The stream token carries the hash of the login session id (never the id), and logout
    tells the daemon to end and refuse the streams with that key."""
    from itsdangerous import URLSafeTimedSerializer

    server, daemon, home = stack
    b = Browser(server.url)
    me = b.login("alice")["user"]
    login = login_id(home, b)
    assert len(login) >= 43
    url = b.get("/web/events").json()["events_url"]
    claims = URLSafeTimedSerializer(DAEMON_TOKEN, salt="ligan-events").loads(
        url.split("token=", 1)[1])
    assert claims["sid"] == f"user-{me['id']}" and claims["key"] == stream_key(login)
    assert login not in json.dumps(claims) and abs(claims["exp"] - time.time() - 12 * 3600) < 60
    b.post("/web/logout")
    assert daemon.revoked[-1] == (f"user-{me['id']}", [stream_key(login)])


def test_the_last_logout_frees_the_backend_unless_work_is_under_way(stack):
    """A backend holds a GPU job: logging out used to keep it until the idle timeout."""
    server, daemon, home = stack
    assert add_user(home, "ivy").returncode == 0
    ivy, phone = Browser(server.url), Browser(server.url)
    uid = ivy.login("ivy")["user"]["id"]
    phone.login("ivy")
    sid = f"user-{uid}"
    ivy.post("/web/logout")
    assert sid not in daemon.stopped              # her phone is still logged in
    task = phone.post("/web/tasks", 202, json={"type": "random", "params": {}}).json()
    phone.post("/web/logout")
    assert sid not in daemon.stopped              # a queued task of hers finishes first
    daemon.tasks[task["task_id"]]["state"] = "done"
    again = Browser(server.url)
    again.login("ivy")
    again.post("/web/logout")
    assert daemon.stopped.count(sid) == 1         # nothing left that needs it


def test_users_change_their_own_password(stack):
    server, daemon, home = stack
    assert add_user(home, "hank").returncode == 0
    hank, elsewhere = Browser(server.url), Browser(server.url)
    hank.login("hank")
    elsewhere.login("hank")
    other = stream_key(login_id(home, elsewhere))
    new = "violet lanterns drift upstream"
    err = hank.post("/web/me/password", 403, json={"old_password": "not it", "new_password": new})
    assert err.json()["error"] == "The current password is wrong."
    err = hank.post("/web/me/password", 422, json={"old_password": PASSWORD,
                                                   "new_password": "hank1234"})
    assert "too weak" in err.json()["error"]
    hank.post("/web/me/password", 400, json={"old_password": PASSWORD})
    user = hank.post("/web/me/password", json={"old_password": PASSWORD,
                                                "new_password": new}).json()["user"]
    assert user["name"] == "hank"
    hank.get("/web/lineups")                        # this login goes on
    elsewhere.get("/web/lineups", 401)              # the other one ended, and its streams
    assert (f"user-{user['id']}", [other]) in daemon.revoked
    Browser(server.url).login("hank", PASSWORD, 401)
    Browser(server.url).post("/web/me/password", 401, json={"old_password": new,
                                                            "new_password": PASSWORD})
    guesser = Browser(server.url)           # a stolen cookie cannot guess the password fast
    guesser.login("hank", new)
    for _ in range(5):
        guesser.post("/web/me/password", 403, json={"old_password": "guess",
                                                     "new_password": new + " again"})
    err = guesser.post("/web/me/password", 429, json={"old_password": new,
                                                      "new_password": new + " again"})
    assert "Too many attempts" in err.json()["error"]


def test_administrators_disable_reset_end_sessions_and_delete_accounts(stack):
    server, daemon, home = stack
    assert add_user(home, "gail").returncode == 0
    admin = Browser(server.url)
    admin_id = admin.login("admin")["user"]["id"]
    gid = user_id(admin, "gail")
    gail, tablet = Browser(server.url), Browser(server.url)
    gail.login("gail")
    tablet.login("gail")
    logins = {stream_key(login_id(home, gail)), stream_key(login_id(home, tablet))}

    def revoked_since(n: int) -> set[str]:
        return {k for sid, keys in daemon.revoked[n:] if sid == f"user-{gid}" for k in keys}

    n = len(daemon.revoked)
    user = admin.post(f"/web/users/{gid}/disable").json()["user"]
    assert user["name"] == "gail" and user["disabled"] is True
    gail.get("/web/lineups", 401)
    tablet.post("/web/lineups", 401, json={})
    assert revoked_since(n) == logins
    err = Browser(server.url).login("gail", PASSWORD, 403)["error"]
    assert "disabled" in err
    assert next(u for u in admin.get("/web/users").json()["users"] if u["id"] == gid)["disabled"]
    assert admin.post(f"/web/users/{gid}/enable").json()["user"]["disabled"] is False
    gail.login("gail")

    new = "quiet harbour lamps at dusk"
    err = admin.post(f"/web/users/{gid}/password", 422, json={"password": "password"})
    assert "too weak" in err.json()["error"]
    n, key = len(daemon.revoked), stream_key(login_id(home, gail))
    admin.post(f"/web/users/{gid}/password", json={"password": new})
    gail.get("/web/lineups", 401)
    assert revoked_since(n) == {key}
    Browser(server.url).login("gail", PASSWORD, 401)
    gail.login("gail", new)
    tablet.login("gail", new)

    n = len(daemon.revoked)
    assert admin.request("DELETE", f"/web/users/{gid}/sessions").json() == {"ended": 2}
    gail.get("/web/lineups", 401)
    tablet.get("/web/lineups", 401)
    assert len(revoked_since(n)) == 2

    gail.login("gail", new)
    n, key = len(daemon.revoked), stream_key(login_id(home, gail))
    assert admin.request("DELETE", f"/web/users/{gid}").json()["user"]["name"] == "gail"
    gail.get("/web/lineups", 401)
    assert revoked_since(n) == {key}
    assert f"user-{gid}" in daemon.stopped        # a deleted account's backend stops too
    Browser(server.url).login("gail", new, 401)
    assert "gail" not in [u["name"] for u in admin.get("/web/users").json()["users"]]
    for method, path in (("DELETE", ""), ("POST", "/disable"), ("POST", "/enable"),
                         ("DELETE", "/sessions")):
        admin.request(method, f"/web/users/{gid}{path}", 404)
    admin.post(f"/web/users/{gid}/password", 404, json={"password": new})

    # an administrator's own account; other users may do none of this
    err = admin.post(f"/web/users/{admin_id}/disable", 409).json()["error"]
    assert err == "You cannot disable your own account."
    admin.request("DELETE", f"/web/users/{admin_id}", 409)
    admin.get("/web/users")
    alice = Browser(server.url)
    alice.login("alice")
    for method, path in (("DELETE", ""), ("POST", "/disable"), ("POST", "/enable"),
                         ("DELETE", "/sessions")):
        alice.request(method, f"/web/users/{admin_id}{path}", 403)
    alice.post(f"/web/users/{admin_id}/password", 403, json={"password": new})
    admin.get("/web/users")


def test_the_last_administrator_cannot_be_disabled_or_deleted(tmp_path):
    """Checked in the database, in one transaction with the change: two administrators who
    disable each other at the same moment do not leave the installation without one."""
    from frontend_server.store import Store, StoreError

    store = Store(tmp_path / "ligan.sqlite3")
    root = store.add_user("root", PASSWORD, is_admin=True)
    deputy = store.add_user("deputy", PASSWORD, is_admin=True)
    store.set_disabled(deputy["id"], True)
    with pytest.raises(StoreError, match="last administrator"):
        store.set_disabled(root["id"], True)
    with pytest.raises(StoreError, match="last administrator"):
        store.delete_user(root["id"])
    assert store.set_disabled(root["id"], False)[0]["disabled"] is False  # enabling: no check
    store.set_disabled(deputy["id"], False)
    user, ended = store.delete_user(root["id"])
    assert user["name"] == "root" and ended == []


def test_a_database_from_before_disabled_accounts_is_upgraded(tmp_path):
    import sqlite3

    from frontend_server.store import Store

    path = tmp_path / "ligan.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL "
                   "UNIQUE COLLATE NOCASE, password_hash TEXT NOT NULL, is_admin INTEGER NOT "
                   "NULL DEFAULT 0, created REAL NOT NULL)")
        db.execute("INSERT INTO users (name, password_hash, is_admin, created) "
                   "VALUES ('old', 'x', 1, 0)")
    store = Store(path)
    assert store.users()[0]["disabled"] is False
    login = store.create_session(store.users()[0]["id"])
    assert store.session_user(login)[0]["name"] == "old"


def test_login_is_rate_limited(stack):
    home = stack[2]
    assert add_user(home, "carol").returncode == 0
    b = Browser(stack[0].url)
    for _ in range(5):
        b.login("carol", "wrong password", 401)
    err = b.login("carol", PASSWORD, 429)["error"]
    assert "Too many login attempts" in err
    Browser(stack[0].url).login("alice")   # other accounts are not locked out


def test_state_changing_requests_need_the_csrf_token(stack):
    b = Browser(stack[0].url)
    resp = b.post("/web/login", 400, csrf=False, json={"name": "alice", "password": PASSWORD})
    assert "CSRF token is missing" in resp.json()["error"]
    b.login("alice")
    resp = b.post("/web/lineups", 400, csrf=False, json={})
    assert "CSRF" in resp.json()["error"]
    resp = b.post("/web/lineups", 400, headers={"X-CSRFToken": "forged"}, csrf=False, json={})
    assert "CSRF" in resp.json()["error"]


def test_admin_creates_users_and_others_cannot(stack):
    admin = Browser(stack[0].url)
    admin.login("admin")
    made = admin.post("/web/users", 201, json={"name": "dave", "password": "a long password"})
    assert made.json()["user"]["name"] == "dave"
    err = admin.post("/web/users", 422, json={"name": "dave", "password": "a long password"})
    assert "already a user called 'dave'" in err.json()["error"]
    err = admin.post("/web/users", 422, json={"name": "eve", "password": "short"})
    assert "at least 8 characters" in err.json()["error"]
    for weak, why in (("password", "top-10 common password"), (" " * 8, "Repeats"),
                      ("eve12345", "too weak"), ("qwertyuiop", "too weak")):
        err = admin.post("/web/users", 422, json={"name": "eve", "password": weak})
        assert "too weak" in err.json()["error"] and why in err.json()["error"], (weak, err.json())
    assert "dave" in [u["name"] for u in admin.get("/web/users").json()["users"]]
    Browser(stack[0].url).login("dave", "a long password")
    dave = Browser(stack[0].url)
    dave.login("dave", "a long password")
    err = dave.post("/web/users", 403, json={"name": "mallory", "password": "a long password"})
    assert err.json()["error"] == "Only an administrator may do this."
    dave.get("/web/users", 403)


def test_cli_refuses_a_duplicate_user(stack):
    done = add_user(stack[2], "alice")
    assert done.returncode == 1 and "already a user called 'alice'" in done.stderr


def test_errors_are_json(stack, alice):
    assert alice.get("/no/such/page", 404).json() == {"error": "Not found."}
    assert alice.request("DELETE", "/web/me", 405).json()["error"]
    assert alice.post("/web/lineups", 400, data="not json",
                      headers={"Content-Type": "application/json"}).json()["error"]


def test_ui_pages_are_served_with_a_strict_policy(stack):
    resp = validate(requests.get(stack[0].url + "/"))
    assert resp.status_code == 200 and "<html" in resp.text
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert validate(requests.get(stack[0].url + "/login")).status_code == 200
    assert validate(requests.get(stack[0].url + "/ui/app.js")).status_code == 200


# -- uploads --------------------------------------------------------------------------------

def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width × height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_uploads_that_are_not_usable_photos(alice):
    err = alice.upload(b"%PDF-1.4 this is a document", 415, name="suspect.jpg")["error"]
    assert "not an image" in err
    err = alice.upload(bomb_png(), 413, name="huge.png")["error"]
    assert "pixels" in err
    assert "larger than the limit of 1 MB" in alice.upload(os.urandom(1_200_000), 413)["error"]
    assert "empty" in alice.upload(b"", 400)["error"]
    assert "form field 'photo'" in alice.post("/web/uploads", 400, data={"x": "1"}).json()["error"]


@needs_photos
def test_truncated_photo_is_refused(alice):
    data = LONDON.read_bytes()
    err = alice.upload(data[: len(data) // 2], 422)["error"]
    assert "damaged or incomplete" in err


@needs_photos
def test_photo_without_a_face(alice):
    body = alice.upload(NO_FACE.read_bytes(), 422)
    assert body["faces"] == [] and "No face was found" in body["error"]


@needs_photos
def test_photo_with_one_face_is_stored_as_png(stack, alice):
    body = alice.upload(LONDON.read_bytes())
    assert len(body["faces"]) == 1 and len(body["faces"][0]["box"]) == 4
    assert body["photo"] == f"uploads/{body['upload_id']}.png"
    assert (body["width"], body["height"]) == (512, 512)
    stored = results_dir(stack[2], alice) / body["photo"]
    assert stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = alice.get(f"/web/uploads/{body['upload_id']}/photo.png")
    assert png.headers["Content-Type"] == "image/png"
    assert alice.get(f"/web/uploads/{body['upload_id']}").json()["faces"] == body["faces"]


@needs_photos
def test_photo_with_two_faces_lists_both(alice):
    left = Image.open(LONDON).convert("RGB")
    right = Image.open(SHARED / "faces" / "london" / "005_03.jpg").convert("RGB")
    both = Image.new("RGB", (1024, 512))
    both.paste(left, (0, 0))
    both.paste(right, (512, 0))
    buf = io.BytesIO()
    both.save(buf, "PNG")
    body = alice.upload(buf.getvalue(), name="two.png")
    assert len(body["faces"]) == 2
    centres = sorted((f["box"][0] + f["box"][2]) / 2 for f in body["faces"])
    assert centres[0] < 512 < centres[1]


@needs_photos
def test_exif_orientation_is_honoured_and_metadata_stripped(stack, alice):
    upright = Image.open(LONDON).convert("RGB").crop((0, 40, 512, 440))   # 512 × 400
    stored_sideways = upright.rotate(90, expand=True)                      # 400 × 512
    exif = Image.Exif()
    exif[0x0112] = 6                    # orientation: rotate 90° clockwise to display
    exif[0x010E] = "suspect, case 1234"  # ImageDescription
    exif[0x013B] = "Officer Smith"       # Artist
    buf = io.BytesIO()
    stored_sideways.save(buf, "JPEG", exif=exif, quality=92)
    body = alice.upload(buf.getvalue())
    assert (body["width"], body["height"]) == (512, 400)
    assert len(body["faces"]) == 1      # found only because the photo was turned upright
    with Image.open(results_dir(stack[2], alice) / body["photo"]) as im:
        assert im.size == (512, 400)
        assert not im.getexif() and "exif" not in im.info
    raw = (results_dir(stack[2], alice) / body["photo"]).read_bytes()
    assert b"Officer Smith" not in raw and b"case 1234" not in raw


# -- isolation between users ----------------------------------------------------------------

@needs_photos
def test_other_users_uploads_results_and_lineups_are_not_found(stack, alice, bob):
    upload = alice.upload(LONDON.read_bytes())
    uid = upload["upload_id"]
    alice.get(f"/web/uploads/{uid}/photo.png")
    bob.get(f"/web/uploads/{uid}/photo.png", 404)
    bob.get(f"/web/uploads/{uid}", 404)
    bob.get(f"/web/files/{upload['photo']}", 404)
    alice_uid = alice.get("/web/me").json()["user"]["id"]
    bob.get(f"/web/files/../user-{alice_uid}/{upload['photo']}", 404)
    bob.get(f"/web/files/%2E%2E/user-{alice_uid}/{upload['photo']}", 404)
    bob.post("/web/tasks", 404, json={"type": "fillers",
                                      "params": {"suspect_photo": upload["photo"]}})
    lineup = alice.post("/web/lineups", 201, json={"suspect": {"upload_id": uid}}).json()
    bob.get(f"/web/lineups/{lineup['id']}", 404)
    bob.get(f"/web/lineups/{lineup['id']}/export.zip", 404)
    bob.request("DELETE", f"/web/lineups/{lineup['id']}", 404)
    assert lineup["id"] not in [l["id"] for l in bob.get("/web/lineups").json()["lineups"]]
    bob.post("/web/lineups", 404, json={"suspect": {"upload_id": uid}})


# -- the daemon: sessions, tasks, event tokens ------------------------------------------------

@needs_photos
def test_tasks_are_forwarded_to_the_users_own_session(stack, alice, bob):
    from itsdangerous import URLSafeTimedSerializer

    daemon = stack[1]
    me = alice.get("/web/me").json()["user"]
    sid = f"user-{me['id']}"
    started = alice.post("/web/session").json()
    assert started["session"]["session_id"] == sid
    url = started["events_url"]
    assert url.startswith(f"/events/{sid}?token=")
    token = url.split("token=", 1)[1]
    assert URLSafeTimedSerializer(DAEMON_TOKEN, salt="ligan-events").loads(token)["sid"] == sid
    photo = alice.upload(LONDON.read_bytes())["photo"]
    task = alice.post("/web/tasks", 202, json={"type": "fillers", "params": {
        "suspect_photo": photo, "per_page": 6}}).json()
    assert daemon.calls[-1] == ("POST", f"/api/sessions/{sid}/tasks",
                                {"type": "fillers", "params": {"suspect_photo": photo,
                                                               "per_page": 6}})
    assert alice.get(f"/web/tasks/{task['task_id']}").json()["state"] == "queued"
    bob.get(f"/web/tasks/{task['task_id']}", 404)
    err = alice.post("/web/tasks", 400, json={"type": 5, "params": {}})
    assert "type must be a string" in err.json()["error"]
    err = alice.post("/web/tasks", 404, json={"type": "refine",
                                              "params": {"photo": "../../etc/passwd"}})
    assert "No uploaded photo" in err.json()["error"]


@pytest.mark.parametrize("path", ["/web/tasks", "/web/research/tasks"])
def test_value_ranges_are_left_to_the_backend_and_its_refusal_reaches_the_user(stack, alice,
                                                                               path):
    """The frontend does not judge values (the backend's ranges, some from its settings): it
    forwards them, and a refusal the daemon relays is answered with its status and message.
    tests/browser/test_stack_api.py shows the same with the real daemon and backend."""
    daemon = stack[1]
    for type_, params in (("random", {"amount": 30_001}), ("fillers", {"per_page": 10_000}),
                          ("anything", {"x": 1})):
        task = alice.post(path, 202, json={"type": type_, "params": params}).json()
        assert (task["type"], task["params"]) == (type_, params)
    daemon.refusal = (422, "params.amount must be from 1 to 30000, got 30001")
    try:
        err = alice.post(path, 422, json={"type": "random", "params": {"amount": 30_001}})
        assert err.json() == {"error": "params.amount must be from 1 to 30000, got 30001"}
    finally:
        daemon.refusal = None


def test_an_unreachable_daemon_is_a_readable_502(tmp_path):
    assert add_user(tmp_path, "solo").returncode == 0
    server = Frontend(tmp_path, f"http://127.0.0.1:{free_port()}")
    try:
        b = Browser(server.url)
        b.login("solo")
        err = b.post("/web/session", 502).json()["error"]
        assert "master daemon cannot be reached" in err
        b.post("/web/logout")           # the login ends even when the daemon cannot be told
        b.get("/web/lineups", 401)
    finally:
        server.stop()


# -- lineups --------------------------------------------------------------------------------

@needs_photos
@pytest.mark.parametrize("body, words", [
    ({"size": 1}, "size must be a whole number from 2 to 12"),
    ({"size": 13}, "size must be a whole number from 2 to 12"),
    ({"size": "6"}, "size must be a whole number"),
    ({"size": 6, "suspect_position": 0}, "suspect_position must be a number from 1 to 6"),
    ({"size": 6, "suspect_position": 7}, "suspect_position must be a number from 1 to 6"),
    ({"size": 2, "fillers": ["FILLER", "FILLER"]}, "room for 1 fillers"),
    ({"suspect": {"upload_id": "0" * 32}}, "No such uploaded photo"),
    ({"fillers": ["f" * 32]}, "No face 'ffffffffffffffffffffffffffffffff'"),
])
def test_lineup_validation(stack, alice, body, words):
    if "suspect" not in body:
        body["suspect"] = {"upload_id": alice.upload(LONDON.read_bytes())["upload_id"]}
    if body.get("fillers") == ["FILLER", "FILLER"]:
        body["fillers"] = [r["id"] for r in fake_faces(results_dir(stack[2], alice), 2)]
    err = alice.post("/web/lineups", None, json=body)
    assert err.status_code in (404, 422) and words in err.json()["error"], err.text


@needs_photos
def test_lineup_save_reopen_and_export(stack, alice):
    folder = results_dir(stack[2], alice)
    upload = alice.upload(LONDON.read_bytes())
    records = fake_faces(folder, 3)
    draft = alice.post("/web/lineups", 201, json={
        "name": "Case 12", "size": 4, "suspect": {"upload_id": upload["upload_id"]},
        "fillers": [{"face_id": records[0]["id"], "distance": 0.3}],
        "ui": {"mode": "basic"}}).json()
    assert 1 <= draft["suspect_position"] <= 4 and draft["complete"] is False
    assert "1 of its 3 fillers" in alice.get(f"/web/lineups/{draft['id']}/export.zip",
                                             409).json()["error"]
    saved = alice.request("PUT", f"/web/lineups/{draft['id']}", json={
        "name": "Case 12", "size": 4, "suspect_position": 2,
        "suspect": {"upload_id": upload["upload_id"]},
        "fillers": [r["id"] for r in records], "ui": {"mode": "basic"}}).json()
    assert saved["complete"] and saved["suspect_position"] == 2
    reopened = alice.get(f"/web/lineups/{draft['id']}").json()
    assert [f["face_id"] for f in reopened["fillers"]] == [r["id"] for r in records]
    assert reopened["ui"] == {"mode": "basic"}
    listed = alice.get("/web/lineups").json()["lineups"]
    assert listed[0]["id"] == draft["id"] and listed[0]["name"] == "Case 12"

    png = alice.get(f"/web/lineups/{draft['id']}/composite.png")
    assert png.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as im:
        # A 2 × 2 grid, and under it the default bundle's research-only notice in red.
        grid = 16 + 2 * (256 + 44 + 16)
        assert im.size[0] == 16 + 2 * (256 + 16) and im.size[1] > grid
        notice_band = np.asarray(im.convert("RGB"))[grid:]
        assert ((notice_band[..., 0] > 120) & (notice_band[..., 1] < 60)).any()
    zipped = alice.get(f"/web/lineups/{draft['id']}/export.zip")
    assert "attachment" in zipped.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
        assert sorted(zf.namelist()) == ["NOTICE.txt", "composite.png", "faces/01.png",
                                         "faces/02.png", "faces/03.png", "faces/04.png",
                                         "lineup.json"]
        assert zf.read("NOTICE.txt").decode().startswith("RESEARCH ONLY")
        sizes = {Image.open(io.BytesIO(zf.read(f"faces/0{i}.png"))).size for i in range(1, 5)}
        assert sizes == {(256, 256)}
        record = json.loads(zf.read("lineup.json"))
    assert record["format"] == "ligan-lineup/1" and record["bundle_hashes"] == ["b" * 64]
    assert record["lineup"]["size"] == 4 and record["lineup"]["suspect_position"] == 2
    roles = [p["role"] for p in record["positions"]]
    assert roles == ["filler", "suspect", "filler", "filler"]
    suspect = record["positions"][1]
    assert suspect["source"] == "photo" and len(suspect["photo_sha256"]) == 64
    # Cut like the faces of the configured bundle (the default model: UTKFace's framing).
    assert suspect["framing"] == "utkface"
    filler = record["positions"][0]
    assert filler["record"]["latent"] == records[0]["latent"]
    assert {"bundle_hash", "latent_space", "operation", "parameters", "noise_seed",
            "truncation_psi", "parents"} <= set(filler["record"])
    # One pipeline for every member: the photo is brought to the bundle's 64 px first.
    assert {p["presentation"]["resolution"] for p in record["positions"]} == {64}
    assert record["notice"].startswith("RESEARCH ONLY") and "synthetic" in \
        record["synthetic_fillers"]
    # The photo stands out among the flat test images, and the check says so, suspect first.
    parity = alice.get(f"/web/lineups/{draft['id']}/parity").json()
    assert parity["parity"] == record["presentation_parity"] and not parity["parity"]["fair"]
    first = parity["parity"]["warnings"][0]
    assert first["role"] == "suspect" and first["position"] == 2 and \
        first["message"].startswith("Member 2 (the suspect) is sharper than the others")
    assert parity["presentation"] == {"normalise": False, "grayscale": False}
    assert parity["notice"] == record["notice"] == alice.get("/web/lineups/notice").json()[
        "notice"]

    # The printable report: the lineup, its checks and every face's provenance, in a PDF;
    # the same from the command line, found by the lineup's id.
    pdf = alice.get(f"/web/lineups/{draft['id']}/report.pdf")
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    text = pdf_text(pdf.content)
    for words in ("Lineup report: Case 12", "RESEARCH ONLY", "Every filler is a synthetic face",
                  "Member 2 (the suspect) is sharper than the others",
                  "Simulated mock witnesses (a simulation, not evidence)",
                  "No mock-witness test has been made", "2 (suspect): the uploaded photo",
                  f"synthetic face {records[0]['id']}"):
        assert words in text, (words, text[:3000])
    out = stack[2] / "report.pdf"
    cli = subprocess.run([sys.executable, "-m", "setup.cli", "lineup", "report", draft["id"],
                          "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                         env=frontend_env(stack[2]), timeout=120)
    assert cli.returncode == 0 and out.read_bytes().startswith(b"%PDF"), cli.stderr
    assert "Lineup report: Case 12" in pdf_text(out.read_bytes())
    cli = subprocess.run([sys.executable, "-m", "setup.cli", "lineup", "report", "nosuchid",
                          "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                         env=frontend_env(stack[2]), timeout=120)
    assert cli.returncode == 2 and "no lineup 'nosuchid'" in cli.stderr

    # Grey and normalised: every member goes out in grey with the lineup's common tone.
    alice.request("PUT", f"/web/lineups/{draft['id']}", json={
        "name": "Case 12", "size": 4, "suspect_position": 2,
        "suspect": {"upload_id": upload["upload_id"]}, "fillers": [r["id"] for r in records],
        "presentation": {"grayscale": True, "normalise": True}})
    with zipfile.ZipFile(io.BytesIO(alice.get(
            f"/web/lineups/{draft['id']}/export.zip").content)) as zf:
        faces = [np.asarray(Image.open(io.BytesIO(zf.read(f"faces/0{i}.png"))).convert("RGB"),
                            np.int16) for i in range(1, 5)]
        assert json.loads(zf.read("lineup.json"))["presentation"] == {
            "normalise": True, "grayscale": True}
    assert all((f[..., 0] == f[..., 1]).all() and (f[..., 1] == f[..., 2]).all() for f in faces)
    suspect_luma = faces[1].mean()
    assert abs(suspect_luma - np.median([f.mean() for f in faces])) < 3
    err = alice.request("PUT", f"/web/lineups/{draft['id']}", None, json={
        "size": 4, "suspect": {"upload_id": upload["upload_id"]},
        "presentation": {"sepia": True}})
    assert err.status_code == 422 and "presentation must be" in err.json()["error"]
    alice.request("DELETE", f"/web/lineups/{draft['id']}")
    alice.get(f"/web/lineups/{draft['id']}", 404)


@needs_photos
def test_simulated_witnesses_on_a_lineup_being_built(stack, alice):
    folder = results_dir(stack[2], alice)
    upload = alice.upload(LONDON.read_bytes())["upload_id"]
    photo = {"gender": {"label": "female", "p": {"female": 0.97, "male": 0.03}},
             "age_group": {"label": "30-39", "p": {"30-39": 0.9, "40-49": 0.1}}}
    [inversion] = fake_faces(folder, 1, [{"photo_attributes": photo}])

    def filler(gender: str, distance: float) -> dict:
        return {"identity_distance": distance, "traits": {
            "gender": {"accepted": ["female"], "source": "suspect", "read": gender, "p": 0.9}}}

    fillers = fake_faces(folder, 4, [filler("female", 0.50), filler("female", 0.55),
                                     filler("male", 0.52), filler("female", 0.31)],
                         parents=[inversion["id"]])
    body = {"suspect": {"upload_id": upload}, "fillers": [f["id"] for f in fillers], "n": 400}
    out = alice.post("/web/lineups/simulation", 200, json=body).json()
    assert out["simulation"].startswith("Simulation, not evidence")
    # Without a description the witness describes what the suspect's photo reads as.
    assert out["description"] == {"gender": "female", "age_group": "30-39"}
    assert [m["face_id"] for m in out["members"]] == [None] + [f["id"] for f in fillers]
    assert sum(out["description_witness"]["counts"]) == 400
    assert out["description_witness"]["counts"][3] < 40      # the man is hardly ever chosen
    probs = out["resemblance_witness"]["choice_probabilities"]
    assert probs[0] == max(probs) and probs[4] > probs[2]     # the near-clone draws most
    flags = {(f["position"], f["reason"]) for f in out["stand_out"]}
    assert flags == {(4, "trait"), (5, "near-clone")}
    described = alice.post("/web/lineups/simulation", 200, json={
        **body, "description": {"gender": "male"}}).json()
    assert described["description"] == {"gender": "male"}
    assert described["description_witness"]["counts"][3] > 200
    for bad, words in (({"n": 0}, "n must be a whole number from 1 to 10000"),
                       ({"description": {"hair": "red"}}, "hair: 'red' is not accepted"),
                       ({"fillers": []}, "Pick at least one filler")):
        err = alice.post("/web/lineups/simulation", None, json={**body, **bad})
        assert err.status_code == 422 and words in err.json()["error"], err.text


@needs_photos
def test_lineup_position_is_random_by_default(stack, alice):
    upload = alice.upload(LONDON.read_bytes())["upload_id"]
    positions = {alice.post("/web/lineups", 201, json={"size": 12, "suspect": {
        "upload_id": upload}}).json()["suspect_position"] for _ in range(12)}
    assert len(positions) > 1 and positions <= set(range(1, 13))


def test_ligan_user_command(tmp_path):
    env = {"LIGAN_HOME": str(tmp_path)}
    done = subprocess.run([*ligan_command(), "user", "add", "frank", "--admin"],
                          input="a long password\n",
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, **env))
    assert done.returncode == 0 and "created administrator frank" in done.stdout, done.stderr
    listed = ligan("user", "list", env=env)
    assert listed.returncode == 0 and "frank (admin)" in listed.stdout
    short = subprocess.run([sys.executable, "-m", "frontend_server", "user", "add", "gina"],
                           input="short\n", capture_output=True, text=True, cwd=REPO,
                           env=dict(os.environ, **env), timeout=60)
    assert short.returncode == 1 and "at least 8 characters" in short.stderr


def test_behind_https_cookies_are_secure_and_client_addresses_come_from_the_proxies(tmp_path):
    """LIGAN_SECURE_COOKIES=1 and one reverse proxy in front of the daemon: the daemon sends
    X-Forwarded-For "<client>, <proxy>" and the proxy's X-Forwarded-Proto https."""
    assert add_user(tmp_path, "henry").returncode == 0
    server = Frontend(tmp_path, "", LIGAN_SECURE_COOKIES="1", LIGAN_TRUSTED_PROXIES="1",
                      LIGAN_LOGIN_RATE_LIMIT="2/minute")
    try:
        def client(address: str) -> Browser:
            b = Browser.__new__(Browser)
            b.url, b.http = server.url, requests.Session()
            b.http.trust_env = False
            b.http.hooks["response"].append(validate)
            b.http.headers.update({"X-Forwarded-For": f"{address}, 10.0.0.1",
                                   "X-Forwarded-Proto": "https",
                                   "X-Forwarded-Host": "lineups.example.org",
                                   "Referer": "https://lineups.example.org/login"})
            resp = b.http.get(server.url + "/web/me")
            b.csrf = resp.json()["csrf_token"]
            assert "Secure" in resp.headers["Set-Cookie"]
            assert "HttpOnly" in resp.headers["Set-Cookie"]
            assert "SameSite=Lax" in resp.headers["Set-Cookie"]
            # A browser sends a Secure cookie only over HTTPS (here: to the proxy); the test
            # talks plain HTTP to the frontend, so it sends the cookie itself.
            b.http.headers["Cookie"] = f"ligan_session={resp.cookies['ligan_session']}"
            return b

        first = client("203.0.113.5")
        for _ in range(2):
            first.login("henry", "wrong password", 401)
        first.login("henry", PASSWORD, 429)
        second = client("198.51.100.7")          # another client address: not limited
        second.login("henry", PASSWORD, 200)
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/web/login", "/web/tasks", "/web/lineups",
                                  "/web/research/tasks"])
def test_json_bodies_are_strict_everywhere(stack, alice, path):
    """Deep nesting, NaN and Infinity are refused with 400 and a message on every JSON route
    (they gave a 500 with a RecursionError, a 502, or a lineup that never reopened)."""
    headers = {"Content-Type": "application/json"}
    deep = alice.post(path, 400, data="[" * 5000 + "]" * 5000, headers=headers).json()
    assert "nests too deeply" in deep["error"]
    for word in ("NaN", "Infinity", "-Infinity"):
        body = '{"type": "random", "params": {"amount": %s}, "name": "x", "password": %s}' % (
            word, word)
        answer = alice.post(path, 400, data=body, headers=headers).json()
        assert f"{word} is not a JSON number" in answer["error"], answer
    big = alice.post(path, 413, data='{"pad": "%s"}' % ("x" * (1 << 20)), headers=headers)
    assert "over 1024 KiB" in big.json()["error"]
