"""Test kit: a real frontend server on a free loopback port and clients that talk to it, for
this project's tests.

    from frontend_server.testing import Browser, FakeDaemon, Frontend, add_user

    add_user(home, "alice")                     # python -m frontend_server user add
    daemon = FakeDaemon()                       # the daemon's internal API, recorded
    server = Frontend(home, daemon.url)         # python -m frontend_server serve
    alice = Browser(server.url); alice.login("alice")
    alice.get("/web/me")                        # every answer checked against the spec
    server.stop(); daemon.stop()

:class:`Browser` checks each answer against ``docs/api/frontend.yaml`` (:func:`validate`);
:func:`fake_faces` writes face records and images as a backend task does, and
:func:`pdf_text` reads an exported report.
"""
from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathError
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
#: LIGAN_DAEMON_TOKEN of the servers started here (FakeDaemon checks it).
DAEMON_TOKEN = "test-daemon-token-0123456789"
#: The password :func:`add_user` and :meth:`Browser.login` use unless told otherwise.
PASSWORD = "correct horse battery"
SPEC = REPO / "docs" / "api" / "frontend.yaml"
_openapi: OpenAPI | None = None
#: Bodies that are not JSON: checked only for the content type the spec gives (no schema).
FILES = "/web/files/"
BINARY = ("image/", "application/zip", "application/pdf", "text/html", "text/javascript",
          "text/css", "text/csv")


def free_port() -> int:
    """A loopback TCP port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frontend_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a frontend child with ``LIGAN_HOME`` = ``home`` (no HTTP proxy)."""
    env = dict(os.environ, LIGAN_HOME=str(home), LIGAN_DAEMON_TOKEN=DAEMON_TOKEN,
               LIGAN_LOG_LEVEL="WARNING", **extra)
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    return env


def add_user(home: Path, name: str, password: str = PASSWORD, admin: bool = False,
             **env: str) -> subprocess.CompletedProcess:
    """``python -m frontend_server user add`` with the password on stdin."""
    args = [sys.executable, "-m", "frontend_server", "user", "add", name]
    return subprocess.run(args + (["--admin"] if admin else []), input=password + "\n",
                          capture_output=True, text=True, cwd=REPO,
                          env=frontend_env(home, **env), timeout=60)


class Frontend:
    """A ``python -m frontend_server serve`` child process on a free loopback port."""

    def __init__(self, home: Path, daemon_url: str = "", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "frontend_server", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--daemon-url", daemon_url],
            cwd=REPO, env=frontend_env(home, **env))
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).json() == {"status": "ok"}:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"the frontend exited with status {self.proc.returncode}")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the frontend did not answer /healthz within 60 s")

    def stop(self) -> None:
        """Terminate the server (kill it after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Paths the master daemon answers itself when a test goes through the whole stack.
DAEMON_PATHS = ("/events/", "/api/sessions", "/callbacks/")


def openapi() -> OpenAPI:
    """docs/api/frontend.yaml, loaded once per test session."""
    global _openapi
    if _openapi is None:
        _openapi = OpenAPI.from_dict(yaml.safe_load(SPEC.read_text()))
    return _openapi


def validate(resp: requests.Response, *_args: Any, **_kw: Any) -> requests.Response:
    """Check ``resp`` against docs/api/frontend.yaml (usable as a requests response hook).

    JSON answers are validated in full; images, ZIPs and HTML pages only for their status and
    content type. A path or method the spec does not know must be a JSON 404/405 error.
    """
    if urlsplit(resp.request.url).path.startswith(DAEMON_PATHS):
        return resp  # the master daemon's own answers (docs/api/master_daemon.yaml)
    spec = openapi()
    mimetype = resp.headers.get("Content-Type", "").split(";")[0].strip()
    request = _Request(resp.request)
    if mimetype.startswith(BINARY):      # the spec gives these media types no schema
        spec.validate_response(request, RequestsOpenAPIResponse(resp))
        return resp
    assert mimetype == "application/json", (resp.request.url, resp.status_code, mimetype)
    try:
        spec.validate_response(request, RequestsOpenAPIResponse(resp))
    except PathError:
        assert resp.status_code in (404, 405), (resp.request.url, resp.status_code)
        assert set(resp.json()) == {"error"}
    return resp


class _Request(RequestsOpenAPIRequest):
    """/web/files/<path:rel> takes slashes, which OpenAPI's {path} cannot match: encode them."""

    @property
    def path(self) -> str:
        path = super().path
        if path.startswith(FILES):
            path = FILES + path[len(FILES):].replace("/", "%2F")
        return path


class Browser:
    """What the web UI's JS does: a cookie session plus the CSRF token in a header."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.hooks["response"].append(validate)   # every answer against the spec
        self.csrf = self.http.get(url + "/web/me").json()["csrf_token"]

    def request(self, method: str, path: str, expect: int | None = 200, csrf: bool = True,
                **kw: Any) -> requests.Response:
        """``method`` on ``path``; asserts the status is ``expect`` (None: any)."""
        headers = kw.pop("headers", {})
        if csrf:
            headers["X-CSRFToken"] = self.csrf
        resp = self.http.request(method, self.url + path, headers=headers, timeout=60, **kw)
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text[:500])
        return resp

    def get(self, path: str, expect: int | None = 200, **kw: Any) -> requests.Response:
        return self.request("GET", path, expect, **kw)

    def post(self, path: str, expect: int | None = 200, **kw: Any) -> requests.Response:
        return self.request("POST", path, expect, **kw)

    def login(self, name: str, password: str = PASSWORD, expect: int = 200) -> dict:
        """Log in as ``name`` and keep the new CSRF token."""
        body = self.post("/web/login", expect, json={"name": name, "password": password}).json()
        if expect == 200:
            self.csrf = body["csrf_token"]
        return body

    def upload(self, data: bytes, expect: int = 201, name: str = "photo.jpg") -> dict:
        """POST /web/uploads with ``data`` as the photo."""
        return self.post("/web/uploads", expect, files={"photo": (name, data)}).json()


class FakeDaemon:
    """The daemon's internal API, just enough to see what the frontend forwards."""

    def __init__(self) -> None:
        from flask import Flask, jsonify, request
        from werkzeug.serving import make_server

        app = Flask("fake-daemon")
        self.calls: list[tuple[str, str, dict | None]] = []
        self.tasks: dict[str, dict] = {}
        self.revoked: list[tuple[str, list[str]]] = []  # (session id, stream keys)
        # (status, error) the next task submissions are refused with, as the daemon relays a
        # backend's refusal; None: accepted
        self.refusal: tuple[int, str] | None = None
        self.stopped: list[str] = []  # session ids whose backend the frontend stopped

        @app.before_request
        def auth():
            if request.headers.get("Authorization") != f"Bearer {DAEMON_TOKEN}":
                return jsonify(error="wrong token"), 401
            self.calls.append((request.method, request.path, request.get_json(silent=True)))

        @app.put("/api/sessions/<sid>")
        @app.get("/api/sessions/<sid>")
        def session(sid):
            return jsonify(session_id=sid, state="ready", queue_position=0, reason="",
                           backend=None, last_event_id=0)

        @app.post("/api/sessions/<sid>/tasks")
        def post_task(sid):
            body = request.get_json()
            if self.refusal is not None:
                return jsonify(error=self.refusal[1]), self.refusal[0]
            task = {"task_id": f"t{len(self.tasks)}", "session_id": sid, "type": body["type"],
                    "params": body["params"], "state": "queued", "progress": 0}
            self.tasks[task["task_id"]] = task
            return jsonify(task), 202

        @app.delete("/api/sessions/<sid>")
        def stop_session(sid):
            self.stopped.append(sid)
            return jsonify(session_id=sid, state="stopped", reason="stopped on request")

        @app.get("/api/sessions/<sid>/tasks")
        def list_tasks(sid):
            return jsonify(tasks=[t for t in self.tasks.values() if t["session_id"] == sid])

        @app.post("/api/sessions/<sid>/revoked-keys")
        def revoke(sid):
            keys = request.get_json()["keys"]
            self.revoked.append((sid, keys))
            return jsonify(revoked=len(keys))

        @app.get("/api/sessions/<sid>/tasks/<tid>")
        def get_task(sid, tid):
            task = self.tasks.get(tid)
            if task is None or task["session_id"] != sid:
                return jsonify(error="no such task"), 404
            return jsonify(task)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()


def results_dir(home: Path, browser: Browser) -> Path:
    """The results folder of the user logged in on ``browser``."""
    uid = browser.get("/web/me").json()["user"]["id"]
    return home / "results" / f"user-{uid}"


def cookie_serializer(home: Path) -> Any:
    """Flask's signer of the session cookie, with the frontend's key (to read and forge it)."""
    from flask.json.tag import TaggedJSONSerializer
    from itsdangerous import URLSafeTimedSerializer

    key = (home / "frontend" / "secret_key").read_text().strip().encode()
    return URLSafeTimedSerializer(key, salt="cookie-session", serializer=TaggedJSONSerializer(),
                                  signer_kwargs={"key_derivation": "hmac",
                                                 "digest_method": hashlib.sha1})


def login_id(home: Path, browser: Browser) -> str:
    """The id of the browser's login session (all its cookie holds of the login)."""
    return cookie_serializer(home).loads(browser.http.cookies["ligan_session"])["login"]


def stream_key(login: str) -> str:
    """The event-stream key of a login session: the sha256 of its id."""
    return hashlib.sha256(login.encode()).hexdigest()


def with_cookie(url: str, cookie: str, csrf: str) -> Browser:
    """A client that sends exactly this ``ligan_session`` cookie (e.g. one copied earlier)."""
    b = Browser.__new__(Browser)
    b.url, b.http, b.csrf = url, requests.Session(), csrf
    b.http.trust_env = False
    b.http.hooks["response"].append(validate)
    b.http.headers["Cookie"] = f"ligan_session={cookie}"
    return b


def user_id(admin: Browser, name: str) -> int:
    """The id of user ``name``, as an administrator's client lists it."""
    return next(u["id"] for u in admin.get("/web/users").json()["users"] if u["name"] == name)



def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF, whitespace runs as single spaces."""
    from pypdf import PdfReader

    text = " ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def fake_faces(folder: Path, count: int, parameters: list[dict] | None = None,
               parents: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """Face records and 32-px images as a backend task writes them (records.jsonl, index);
    ``parameters``: each record's, beside its rank."""
    from models.records import FaceRecord

    task = folder / "tasks" / "tfake"
    task.mkdir(parents=True, exist_ok=True)
    records = []
    with open(task / "records.jsonl", "a") as fh, open(folder / "faces.index", "a") as index:
        for i in range(count):
            extra = parameters[i] if parameters else {}
            rec = FaceRecord(bundle_hash="b" * 64, latent_space="w", latent=[0.1 * i] * 4,
                             operation="fillers", parameters={"rank": i, **extra},
                             noise_seed=i, parents=list(parents))
            Image.new("RGB", (32, 32), (40 * i % 255, 90, 160)).save(task / f"face_{rec.id}.png")
            rec.image = f"face_{rec.id}.png"
            offset = fh.tell()
            fh.write(rec.to_json() + "\n")
            index.write(f"{rec.id}\ttasks/tfake/records.jsonl\t{offset}\n")
            records.append(rec.to_dict())
    return records
