"""The master daemon's HTTP side and its assembly.

:func:`create_app` builds the Flask app: the internal API for the frontend server (bearer
``LIGAN_DAEMON_TOKEN``; also ``GET /api/status`` for ``ligan status``), the per-session event streams (``GET /events/<sid>?token=``), the
backend callbacks (``POST /callbacks/<backend id>/<kind>``) and, for every other path and
method, the reverse proxy to the frontend server. :class:`Daemon` puts it together with the
store, the scheduler, the monitor thread and the frontend supervisor and serves it with
waitress; :func:`run_embedded` is ``ligan up``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from hmac import compare_digest
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from flask import Flask, Response, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import HTTPException

from jobs.scheduler import Scheduler, make_scheduler
from master_daemon import validation
from master_daemon.callbacks import Callbacks
from master_daemon.events import EventHub, sse
from master_daemon.frontend import DEFAULT_COMMAND, FrontendSupervisor
from master_daemon.manager import Manager
from master_daemon.monitor import Monitor
from master_daemon.proxy import Proxy
from master_daemon.status import attach_log_file, disk, remove_state_file, write_state_file
from master_daemon.store import Store
from setup.config import Settings, to_env
from master_daemon.validation import ApiError
from setup.strict_json import MAX_JSON_BODY_BYTES, dumps_strict, loads_strict

log = logging.getLogger("ligan.daemon")
#: The event token's salt; the frontend signs with its own copy (frontend_server/daemon.py):
#: the daemon imports nothing from the frontend, the format is in docs/master_daemon.md.
EVENTS_SALT = "ligan-events"
EVENTS_MAX_AGE_S = 12 * 3600
KEEPALIVE_S = 15.0
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def events_token(token: str, sid: str, key: str = "", exp: float | None = None) -> str:
    """The ``?token=`` of ``GET /events/<sid>``: ``{"sid", "key", "exp"}`` signed with the
    daemon token. The frontend makes it for a login: ``key`` the SHA-256 of its login session
    id (revoked at logout), ``exp`` when that login expires. Tools and tests may leave out
    ``key`` (no revocation names it) and ``exp`` (12 h from now)."""
    exp = time.time() + EVENTS_MAX_AGE_S if exp is None else exp
    claims = {"sid": sid, "key": key, "exp": int(exp)}
    return URLSafeTimedSerializer(token, salt=EVENTS_SALT).dumps(claims)


def read_events_token(serializer: URLSafeTimedSerializer, raw: str) -> dict[str, Any] | None:
    """The claims of a well signed event token younger than 12 h whose ``exp`` has not come,
    else None (also for a token of the old format, a bare session id)."""
    try:
        claims = serializer.loads(raw, max_age=EVENTS_MAX_AGE_S)
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not (isinstance(claims, dict) and isinstance(claims.get("sid"), str)
            and isinstance(claims.get("key"), str)
            and isinstance(claims.get("exp"), (int, float))):
        return None
    return claims if claims["exp"] > time.time() else None


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps_strict(data), status=status, mimetype="application/json")


def create_app(manager: Manager, hub: EventHub, token: str, proxy: Proxy,
               keepalive_s: float = KEEPALIVE_S,
               status: Callable[[], dict[str, Any]] | None = None,
               callbacks: Callbacks | None = None) -> Flask:
    """The daemon's WSGI app (see docs/master_daemon.md for every route). ``status`` makes
    the answer of ``GET /api/status`` (default: the manager's part only); ``callbacks``
    handles the backends' callbacks (default: a :class:`Callbacks` of ``manager``). Request
    bodies are checked here (:mod:`master_daemon.validation`) before the manager sees them."""
    callbacks = callbacks or Callbacks(manager)
    app = Flask("master_daemon", root_path=str(Path(__file__).resolve().parent))
    app.config["MAX_CONTENT_LENGTH"] = None
    serializer = URLSafeTimedSerializer(token, salt=EVENTS_SALT)
    expected = f"Bearer {token}".encode()

    def authorized() -> bool:
        return compare_digest(request.headers.get("Authorization", "").encode(), expected)

    def api_body() -> Any:
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        if len(raw) > MAX_JSON_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_JSON_BODY_BYTES // 1024} KiB; task "
                                f"requests are small JSON objects")
        try:
            return loads_strict(raw)
        except ValueError as e:
            raise ApiError(400, f"the body is not valid JSON: {e}") from None

    @app.errorhandler(ApiError)
    def api_error(e: ApiError) -> Response:
        return _json(e.body, e.status)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        return _json({"error": e.description or e.name}, e.code or 500)

    @app.errorhandler(Exception)
    def internal_error(e: Exception) -> Response:
        log.exception("internal error answering %s %s", request.method, request.path)
        return _json({"error": f"internal error of the master daemon ({type(e).__name__}); "
                               f"see its log"}, 500)

    # -- internal API ------------------------------------------------------------------------
    def guard(methods: Sequence[str]) -> Response | None:
        if request.method not in methods:
            return _json({"error": f"{request.method} is not allowed here; use "
                                   f"{', '.join(methods)}"}, 405)
        if not authorized():
            return _json({"error": "missing or wrong bearer token (LIGAN_DAEMON_TOKEN)"}, 401)
        return None

    @app.route("/api/status", methods=ALL_METHODS)
    def status_route() -> Response:
        """The operator's summary (``ligan status``)."""
        refused = guard(("GET",))
        if refused:
            return refused
        return _json(status() if status is not None else manager.status())

    @app.route("/api/sessions/<sid>", methods=ALL_METHODS)
    def session_route(sid: str) -> Response:
        refused = guard(("PUT", "GET", "DELETE"))
        if refused:
            return refused
        if request.method == "PUT":
            return _json(manager.start_session(validation.session_id(sid)))
        if request.method == "GET":
            return _json(manager.get_session(sid))
        return _json(manager.stop_session(sid))

    @app.route("/api/sessions/<sid>/revoked-keys", methods=ALL_METHODS)
    def revoked_keys_route(sid: str) -> Response:
        """``{"keys": [stream keys]}``: refuse them from now on and end the session's open
        streams that use them (the frontend calls this when logins end)."""
        refused = guard(("POST",))
        if refused:
            return refused
        keys = validation.revoked_keys(api_body())
        hub.revoke(sid, keys, until=time.time() + EVENTS_MAX_AGE_S)
        return _json({"revoked": len(keys)})

    @app.route("/api/sessions/<sid>/tasks", methods=ALL_METHODS)
    def tasks_route(sid: str) -> Response:
        refused = guard(("POST", "GET"))
        if refused:
            return refused
        if request.method == "GET":
            return _json(manager.list_tasks(sid))
        status, body = manager.create_task(sid, *validation.task_request(api_body()))
        return _json(body, status)

    @app.route("/api/sessions/<sid>/tasks/<tid>", methods=ALL_METHODS)
    def task_route(sid: str, tid: str) -> Response:
        refused = guard(("GET", "DELETE"))
        if refused:
            return refused
        if request.method == "GET":
            return _json(manager.get_task(sid, tid))
        status, body = manager.cancel_task(sid, tid)
        return _json(body, status)

    @app.route("/api/sessions/<sid>/tasks/<tid>/files", methods=ALL_METHODS)
    def task_files_route(sid: str, tid: str) -> Response:
        """Every file the task wrote, a page at a time (``?offset=&limit=``)."""
        refused = guard(("GET",))
        if refused:
            return refused
        status, body = manager.task_files(sid, tid, *validation.files_page(request.args))
        return _json(body, status)

    # -- callbacks ---------------------------------------------------------------------------
    @app.route("/callbacks/<bid>/<kind>", methods=ALL_METHODS)
    def callback_route(bid: str, kind: str) -> Response:
        if request.method != "POST":
            return _json({"error": "callbacks are POSTed"}, 405)
        try:
            body = loads_strict(request.get_data() or b"null")
        except ValueError:
            body = None
        status, answer = callbacks.handle(bid, kind,
                                          request.headers.get("Authorization", ""), body)
        return _json(answer, status)

    # -- event streams -----------------------------------------------------------------------
    @app.route("/events/<sid>", methods=["GET"])
    def events_route(sid: str) -> Response:
        claims = read_events_token(serializer, request.args.get("token", ""))
        if claims is None:
            return _json({"error": "missing, wrong or expired event token; reload the page"},
                         401)
        if claims["sid"] != sid:
            return _json({"error": "this event token is for another session"}, 401)
        if hub.revoked(claims["key"]):
            return _json({"error": "this event token was revoked: its login ended; log in "
                                   "again"}, 401)
        if not manager.has_session(sid):
            return _json({"error": f"no session {sid!r}"}, 404)
        last = request.headers.get("Last-Event-ID") or request.args.get("lastEventId") or ""
        after = int(last) if last.strip().isdigit() else None
        return Response(_stream(manager, hub, sid, after, keepalive_s, claims["key"],
                                claims["exp"]),
                        mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- everything else: the frontend -------------------------------------------------------
    @app.route("/", defaults={"path": ""}, methods=ALL_METHODS)
    @app.route("/<path:path>", methods=ALL_METHODS)
    def proxy_route(path: str) -> Response:
        return proxy.forward(request)

    return app


def _stream(manager: Manager, hub: EventHub, sid: str, after: int | None,
            keepalive_s: float, key: str = "", exp: float = float("inf")) -> Iterator[bytes]:
    """The session snapshot (without an ``id:``, so that it does not move the browser's
    Last-Event-ID), then every held event after ``after`` (a reconnect) or every new one.
    It ends when the daemon stops, when ``key`` is revoked and at ``exp``."""
    last = hub.last_id(sid)  # before the snapshot: nothing published in between is missed
    yield b"retry: 2000\n" + sse("session", manager.get_session(sid))
    cursor = last if after is None else min(after, last)
    while True:
        left = exp - time.time()
        if left <= 0:
            return
        events = hub.after(sid, cursor, timeout=min(keepalive_s, left), key=key)
        if events is None:
            return
        if not events:
            yield b": keep-alive\n\n"
            continue
        yield b"".join(e.wire for e in events)
        cursor = events[-1].id


# -- assembly ---------------------------------------------------------------------------------
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def scheduler_from_settings(settings: Settings, **overrides: Any) -> Scheduler:
    """The scheduler ``settings.scheduler`` names, configured from the settings."""
    if settings.scheduler == "local":
        # SIGKILL only after the backend's grace period plus its callback delivery time.
        kw: dict[str, Any] = dict(state_dir=settings.home / "jobs" / "local",
                                  kill_grace_s=float(settings.backend_grace) + 15.0)
    else:
        kw = dict(script_dir=settings.home / "jobs" / "slurm",
                  partition=settings.slurm_partition or None,
                  account=settings.slurm_account or None)
        if settings.container:
            kind, image = settings.container.split(":", 1)
            kw["container"] = {"kind": kind, "image": image,
                               "mounts": [f"{settings.home}:{settings.home}"]}
    kw.update(overrides)
    return make_scheduler(settings.scheduler, **kw)


class Daemon:
    """The whole daemon in this process: store, manager, monitor, frontend and HTTP server.

    ``port`` 0 picks a free one. ``frontend_command`` is the frontend's argv with ``{port}``
    and ``{daemon_url}`` placeholders (default: the real frontend server); None starts no
    frontend (the proxy then answers 502). ``token`` defaults to ``LIGAN_DAEMON_TOKEN`` from
    the environment, else a fresh random one.
    """

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None,
                 token: str | None = None, scheduler: Scheduler | None = None,
                 frontend_command: Sequence[str] | None = DEFAULT_COMMAND,
                 frontend_port: int | None = None, threads: int | None = None,
                 poll_interval_s: float = 2.0, bundle: Path | None = None):
        self.settings = settings
        self.host = host or settings.host
        self.port = settings.port if port is None else port
        if self.port == 0:
            self.port = free_port(self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1")
        self.token = token or os.environ.get("LIGAN_DAEMON_TOKEN") or secrets.token_urlsafe(32)
        self.threads = threads or max(64, int(settings.daemon_threads))
        home = Path(settings.home)
        (home / "var").mkdir(parents=True, exist_ok=True)
        self.store = Store(home / "var" / "master_daemon.sqlite3")
        self.hub = EventHub(self.store)
        self.scheduler = scheduler or scheduler_from_settings(settings)
        self.manager = Manager(settings, self.scheduler, self.store, self.hub, bundle=bundle)
        loop_host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "localhost") else self.host
        self.url = f"http://{loop_host}:{self.port}"
        self.manager.callback_base = f"http://{self._callback_host()}:{self.port}/callbacks"
        self.monitor = Monitor(self.manager, poll_interval_s)
        self.frontend: FrontendSupervisor | None = None
        if frontend_command is not None:
            fport = frontend_port if frontend_port is not None else settings.frontend_port
            # the frontend gets this daemon's whole configuration (home, bundle, cookies …),
            # also what was set in code rather than in the environment
            self.frontend = FrontendSupervisor(frontend_command, fport or free_port(),
                                               self.url, self.token,
                                               home / "logs" / "frontend.log",
                                               env=to_env(dataclasses.replace(
                                                   settings, bundle=self.manager.bundle)))
        self.proxy = Proxy(lambda: self.frontend.url if self.frontend else None,
                           trusted_proxies=settings.trusted_proxies,
                           public_url=self._public_url())
        self.app = create_app(self.manager, self.hub, self.token, self.proxy,
                              status=self.status)
        self.started: float | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _public_url(self) -> str:
        """LIGAN_PUBLIC_URL, or this daemon's own address when it was left to its default
        (``http://<host>:<port>``, here with the port actually listened on). Empty when the
        daemon listens on every interface without one: links then follow the request."""
        s = self.settings
        if s.public_url != f"http://{s.host}:{s.port}":
            return s.public_url  # set explicitly
        if self.host in ("0.0.0.0", "::", ""):
            return ""
        return f"http://{self.host}:{self.port}"

    def _callback_host(self) -> str:
        if self.settings.callback_host:
            return self.settings.callback_host
        if self.host not in ("0.0.0.0", "::", "localhost", "127.0.0.1"):
            return self.host
        if self.scheduler.kind == "local" or self.host == "127.0.0.1":
            return "127.0.0.1"
        return socket.getfqdn()

    def start(self) -> "Daemon":
        from waitress import create_server

        self._server = create_server(self.app, host=self.host, port=self.port,
                                     threads=self.threads,
                                     connection_limit=self.threads + 100,
                                     channel_timeout=3600, ident="ligan",
                                     clear_untrusted_proxy_headers=False)
        self._thread = threading.Thread(target=self._serve, name="ligan-daemon-http",
                                        daemon=True)
        self._thread.start()
        self.manager.start()
        self.monitor.start()
        if self.frontend is not None:
            self.frontend.start()
        self.started = time.time()
        write_state_file(Path(self.settings.home), self.url, self.token, self.started)
        log.info("master daemon serving on %s (%s scheduler, at most %d backends, %d threads)",
                 self.url, self.scheduler.kind, self.settings.max_backends, self.threads)
        return self

    def status(self) -> dict[str, Any]:
        """``GET /api/status``: this daemon, its sessions, queue, tasks and backends (the
        manager's part), LiGAN's training and dataset jobs the scheduler knows of, and the
        disk under LIGAN_HOME."""
        out = self.manager.status()
        s = self.settings
        out["daemon"] = {"url": self.url, "public_url": self._public_url() or s.public_url,
                         "pid": os.getpid(), "started": self.started,
                         "scheduler": self.scheduler.kind, "home": str(s.home),
                         "log_file": str(s.log_file)}
        try:
            out["backends"]["kill_wait_s"] = self.scheduler.kill_wait_s()
        except Exception as e:  # noqa: BLE001 - a status page must not fail on a detail
            out["backends"]["kill_wait_s"] = None
            log.warning("status: cannot ask the scheduler's kill wait: %s", e)
        out["training_jobs"], out["training_jobs_note"] = [], ""
        if self.scheduler.kind == "slurm":
            try:
                out["training_jobs"] = self.scheduler.running_jobs(
                    exclude_prefix="ligan-backend-")
            except Exception as e:  # noqa: BLE001
                out["training_jobs_note"] = f"cannot list Slurm's jobs: {e}"
        else:
            out["training_jobs_note"] = ("the local scheduler runs training in the foreground "
                                         "of 'ligan train'; only SLURM jobs are listed")
        try:
            out["disk"] = disk(Path(s.home))
        except OSError as e:
            out["disk"] = {"path": str(s.home), "error": str(e)}
        return out

    def _serve(self) -> None:
        """waitress's loop, one step at a time so that :meth:`stop` can end it cleanly."""
        from waitress import wasyncore

        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.1, map=self._server._map, count=1)
        self._server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._server._map)

    def stop(self, cancel_backends: bool = False) -> None:
        """Stop serving. Backends keep running (a restarted daemon re-attaches) unless
        ``cancel_backends``."""
        self.monitor.stop()
        if self.frontend is not None:
            self.frontend.stop()
        self.manager.shutdown(cancel_backends)
        self.hub.close()  # ends every event stream, so that their threads come free
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        self.store.close()
        remove_state_file(Path(self.settings.home), self.url)
        log.info("master daemon stopped")


def run_embedded(settings: Settings) -> int:
    """``ligan up``: daemon + frontend + local backends on this machine, until Ctrl-C."""
    if settings.scheduler != "local":
        settings = dataclasses.replace(settings, scheduler="local")
    attach_log_file(settings)
    daemon = Daemon(settings).start()
    print("\nStarting the web server…", flush=True)
    if daemon.frontend is not None and not daemon.frontend.wait_ready(120):
        print(f"  the frontend server did not answer yet; see {daemon.frontend.log_path}")
    print(f"\nLiGAN runs. Open {settings.public_url if settings.port == daemon.port else daemon.url}"
          f" in your browser.\nPress Ctrl-C to stop.", flush=True)
    _block_until_signal()
    print("\nStopping: cancelling backends and the web server…", flush=True)
    live = [b.job_id for b in daemon.manager.backends.values() if b.job_id and b.live]
    daemon.stop(cancel_backends=True)
    _wait_backends_gone(daemon, 30, live)
    print("Stopped.", flush=True)
    return 0


def _block_until_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _wait_backends_gone(daemon: Daemon, timeout: float, jobs: list[str] | None = None) -> None:
    """Wait (bounded) for cancelled backend jobs to end, so ``ligan up`` leaves nothing."""
    if jobs is None:
        jobs = [b.job_id for b in daemon.manager.backends.values() if b.job_id and b.live]
    deadline = time.monotonic() + timeout
    while jobs and time.monotonic() < deadline:
        states = daemon.scheduler.states(jobs)
        jobs = [j for j, st in states.items() if not st.final]
        if jobs:
            time.sleep(0.5)


def serve_forever(settings: Settings, cancel_on_exit: bool = False) -> int:
    """``ligan daemon serve``: the daemon with the configured scheduler, until SIGINT/SIGTERM.
    Backends keep running across a restart unless ``cancel_on_exit``. The log goes to
    standard error and to ``settings.log_file`` (rotated)."""
    attach_log_file(settings)
    daemon = Daemon(settings).start()
    print(f"master daemon on {daemon.url} (public URL {settings.public_url})", flush=True)
    _block_until_signal()
    daemon.stop(cancel_backends=cancel_on_exit)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m master_daemon serve")
