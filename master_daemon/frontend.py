"""Keeps exactly one frontend server running behind the daemon.

The command (by default ``python -m frontend_server serve --host 127.0.0.1 --port {port}
--daemon-url {daemon_url}``; tests pass their own) gets the shared secret in
``LIGAN_DAEMON_TOKEN``. The supervisor waits for ``GET /healthz`` to answer 200, and when the
process exits starts it again after a back-off (1 s doubling to 30 s; back to 1 s after it ran
for a minute), logging each exit with its status. Its output goes to
``$LIGAN_HOME/logs/frontend.log``.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import requests

from setup.config import LIFELINE_ENV

log = logging.getLogger("ligan.daemon.frontend")
CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_COMMAND = (sys.executable, "-m", "frontend_server", "serve", "--host", "127.0.0.1",
                   "--port", "{port}", "--daemon-url", "{daemon_url}")


class FrontendSupervisor:
    def __init__(self, command: Sequence[str], port: int, daemon_url: str, token: str,
                 log_path: Path, env: dict[str, str] | None = None,
                 health_timeout_s: float = 120.0):
        self.argv = [a.format(port=port, daemon_url=daemon_url) for a in command]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.log_path = Path(log_path)
        self.env = env
        self.health_timeout_s = health_timeout_s
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lifeline: tuple[int, int] | None = None  # (read, write) ends; see _spawn

    def start(self) -> "FrontendSupervisor":
        self._thread = threading.Thread(target=self._run, name="ligan-frontend", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _spawn(self) -> subprocess.Popen:
        env = dict(os.environ, **(self.env or {}), LIGAN_DAEMON_TOKEN=self.token)
        pythonpath = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(CHECKOUT) + (os.pathsep + pythonpath if pythonpath else "")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A lifeline: the frontend holds the read end and exits when it reads end-of-file,
        # which happens when this process is gone however it died (kill -9 included), so an
        # orphaned frontend never keeps the port and the database.
        if self._lifeline is None:
            self._lifeline = os.pipe()
        env[LIFELINE_ENV] = str(self._lifeline[0])
        out = open(self.log_path, "ab")
        try:
            return subprocess.Popen(self.argv, cwd=CHECKOUT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(self._lifeline[0],))
        finally:
            out.close()

    def _wait_health(self, proc: subprocess.Popen) -> bool:
        deadline = time.monotonic() + self.health_timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if proc.poll() is not None:
                return False
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.1)
        return False

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.proc = self._spawn()
            except OSError as e:
                log.error("cannot start the frontend server (%s): %s", " ".join(self.argv), e)
                self.proc = None
            if self.proc is not None:
                log.info("frontend server started (pid %d) on %s; output in %s", self.proc.pid,
                         self.url, self.log_path)
                if self._wait_health(self.proc):
                    self._ready.set()
                    log.info("frontend server answers on %s after %.1f s", self.url,
                             time.monotonic() - started)
                elif self.proc.poll() is None and not self._stop.is_set():
                    log.warning("frontend server did not answer GET /healthz within %.0f s; "
                                "restarting it", self.health_timeout_s)
                    self._terminate(self.proc)
                while not self._stop.is_set() and self.proc.poll() is None:
                    self._stop.wait(0.5)
                self._ready.clear()
                if self._stop.is_set():
                    return
                log.warning("frontend server (pid %d) exited with status %s; see %s",
                            self.proc.pid, self.proc.returncode, self.log_path)
            if time.monotonic() - started > 60:
                delay = 1.0
            log.info("restarting the frontend server in %.0f s", delay)
            self.restarts += 1
            if self._stop.wait(delay):
                return
            delay = min(30.0, delay * 2)

    @staticmethod
    def _terminate(proc: subprocess.Popen) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None:
            self._terminate(self.proc)
            log.info("frontend server stopped")
        if self._thread is not None:
            self._thread.join(15)
