"""Test kit: a real master daemon on a free loopback port, for this project's tests.

    from master_daemon.testing import start_daemon

    d = start_daemon(home=tmp_path, bundle=tiny_bundle_dir)              # local scheduler
    d = start_daemon(tmp_path, bundle, frontend_command=[...{port}...])   # your own frontend
    requests.put(f"{d.url}/api/sessions/user-1", headers=d.auth)
    EventSource URL: f"{d.url}/events/user-1?token={d.events_token('user-1')}"
    d.stop()                     # stops its backends too (cancel_backends=False: not)

The daemon runs in this process (waitress on its own threads) with ``LIGAN_HOME`` = ``home``;
backends are real ``python -m backend_server serve`` processes (local scheduler) or SLURM jobs
(``scheduler="slurm"`` and ``scheduler_settings={"slurm_conf": …}``). ``frontend_command`` is
the frontend's argv with ``{port}`` and ``{daemon_url}`` placeholders; the default
:data:`REAL_FRONTEND` is the real frontend server, None starts none (the proxy answers 502).
Interface kept stable for the frontend's browser tests: ``url``, ``token``, ``auth``,
``events_token(sid)``, ``stop()``, ``daemon`` (the :class:`master_daemon.app.Daemon`).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import requests

from master_daemon.app import Daemon, events_token, scheduler_from_settings
from master_daemon.frontend import DEFAULT_COMMAND

REAL_FRONTEND: tuple[str, ...] = DEFAULT_COMMAND


@dataclasses.dataclass
class RunningDaemon:
    """A started daemon. ``url``: its base URL; ``token``: LIGAN_DAEMON_TOKEN."""

    url: str
    token: str
    home: Path
    daemon: Daemon

    @property
    def auth(self) -> dict[str, str]:
        """Headers of the internal API."""
        return {"Authorization": f"Bearer {self.token}"}

    def events_token(self, sid: str) -> str:
        return events_token(self.token, sid)

    def events_url(self, sid: str) -> str:
        return f"{self.url}/events/{sid}?token={self.events_token(sid)}"

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        """``method`` on the internal API (``path`` like ``/api/sessions/user-1``)."""
        return requests.request(method, self.url + path, headers=self.auth,
                                timeout=kw.pop("timeout", 30), **kw)

    def wait_frontend(self, timeout: float = 60) -> bool:
        fe = self.daemon.frontend
        return fe is not None and fe.wait_ready(timeout)

    def stop(self, cancel_backends: bool = True) -> None:
        """Stop the daemon and (by default) its backends, waiting until they have exited
        (local backends still there after 20 s are killed). ``cancel_backends=False`` leaves
        them running, for a restarted daemon to re-attach to."""
        from master_daemon.app import _wait_backends_gone

        live = [b.job_id for b in self.daemon.manager.backends.values() if b.live and b.job_id]
        self.daemon.stop(cancel_backends=cancel_backends)
        if cancel_backends and live:
            _wait_backends_gone(self.daemon, 20, live)
            if self.daemon.scheduler.kind == "local":
                kill_local_jobs(self.home)


def kill_local_jobs(home: Path) -> None:
    """SIGKILL the process group of every local job recorded under ``home`` still running."""
    import json
    import os
    import signal

    from jobs.local import _alive

    for record in (Path(home) / "jobs" / "local").glob("*.json"):
        try:
            rec = json.loads(record.read_text())
            if _alive(rec["pid"], rec.get("start_ticks")):
                os.killpg(rec["pid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, KeyError, OSError):
            pass


def daemon_settings(home: Path, bundle: Path | None = None, scheduler: str = "local",
                  **overrides: Any) -> Any:
    """Settings for a test daemon: everything from the environment, then ``LIGAN_HOME`` =
    ``home``, the bundle, the scheduler and ``overrides`` (Settings field names; values below
    the environment's minimums are allowed here, e.g. a 40 s ``backend_time_limit``)."""
    from setup.config import load_settings

    settings = load_settings()
    fields = dict(home=Path(home), scheduler=scheduler, **overrides)
    if bundle is not None:
        fields["bundle"] = Path(bundle)
    return dataclasses.replace(settings, **fields)




def start_daemon(home: Path, bundle: Path | None = None, scheduler: str = "local", *,
                 frontend_command: Sequence[str] | None = REAL_FRONTEND, port: int = 0,
                 token: str | None = None, poll_interval_s: float = 1.0,
                 scheduler_settings: dict[str, Any] | None = None,
                 wait_frontend_s: float = 0, **settings_overrides: Any) -> RunningDaemon:
    """Start a daemon (see the module docstring). ``port``: 0 for a free one, or a fixed port
    (a restarted daemon must listen where its backends send callbacks). ``token``: fixed
    LIGAN_DAEMON_TOKEN (default: a fresh one). ``wait_frontend_s`` > 0 waits for the
    frontend's ``/healthz``."""
    settings = daemon_settings(home, bundle, scheduler, **settings_overrides)
    sched = scheduler_from_settings(settings, **(scheduler_settings or {}))
    daemon = Daemon(settings, host="127.0.0.1", port=port, token=token or _fresh_token(),
                    scheduler=sched, frontend_command=frontend_command,
                    poll_interval_s=poll_interval_s).start()
    _wait_http(daemon.url)
    running = RunningDaemon(url=daemon.url, token=daemon.token, home=Path(home), daemon=daemon)
    if wait_frontend_s and frontend_command is not None:
        running.wait_frontend(wait_frontend_s)
    return running


def _fresh_token() -> str:
    import secrets

    return secrets.token_urlsafe(32)


def _wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/api/sessions/-", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"the daemon at {url} did not answer within {timeout} s")


class EventStream:
    """A browser's EventSource, as far as tests need one: connects to ``url`` (optionally with
    ``Last-Event-ID``), parses events on a thread into :attr:`events` (dicts with ``id``,
    ``event``, ``data`` parsed as JSON, and ``at``: ``time.time()`` on arrival) and
    :attr:`comments`. A plain socket, so that :meth:`close` ends it at once."""

    def __init__(self, url: str, last_event_id: int | None = None, timeout: float = 10):
        import socket
        import threading
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        self.sock.settimeout(None)
        path = u.path + (f"?{u.query}" if u.query else "")
        head = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: text/event-stream\r\n"
        if last_event_id is not None:
            head += f"Last-Event-ID: {last_event_id}\r\n"
        self.sock.sendall((head + "\r\n").encode())
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _lines(self):
        chunked = self.headers.get("transfer-encoding") == "chunked"
        buf = b""
        while True:
            if chunked:
                size_line = self.file.readline()
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    return
                data = self.file.read(size)
                self.file.readline()
            else:
                data = self.file.read1(65536)
                if not data:
                    return
            buf += data
            *lines, buf = buf.split(b"\n")
            yield from lines

    def _read(self) -> None:
        import json

        current: dict[str, Any] = {}
        data: list[str] = []
        try:
            for raw in self._lines():
                line = raw.decode().rstrip("\r")
                if not line:
                    if data or current:
                        current["data"] = json.loads("\n".join(data)) if data else None
                        current["at"] = time.time()
                        with self._cond:
                            self.events.append(current)
                            self._cond.notify_all()
                    current, data = {}, []
                elif line.startswith(":"):
                    with self._cond:
                        self.comments += 1
                        self._cond.notify_all()
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "data":
                        data.append(value)
                    elif field == "id":
                        current["id"] = int(value)
                    elif field == "event":
                        current["event"] = value
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30, what: str = "an event") -> dict:
        """The first event (in arrival order) for which ``predicate(event)`` is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if predicate(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise TimeoutError(f"no {what} within {timeout} s; got "
                                       f"{[(e.get('id'), e.get('event')) for e in self.events]}")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        import socket

        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
