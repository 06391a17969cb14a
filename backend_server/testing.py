"""Test kit: a real callback receiver standing in for the master daemon, and an in-process
backend on a loopback port. Used by tests/test_backend_*.py and tests/bench/backend.py.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable


@dataclass
class Callback:
    kind: str
    body: dict[str, Any]
    raw: bytes
    authorization: str
    content_type: str
    at: float = field(default_factory=time.monotonic)


class CallbackReceiver:
    """Records every ``POST /<kind>`` it gets. ``stop()`` closes the port (the daemon is down:
    connection refused), ``start()`` opens it again on the same port; ``fail_with`` makes it
    answer with an error status instead."""

    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret
        self.port = port
        self.callbacks: list[Callback] = []
        self.rejected = 0
        self.fail_with: int | None = None
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"

    def start(self) -> "CallbackReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                arrived = time.monotonic()  # before parsing: what delivery took, not our JSON
                auth = self.headers.get("Authorization", "")
                if receiver.fail_with is not None:
                    return self._answer(receiver.fail_with)
                if auth != f"Bearer {receiver.secret}":
                    with receiver._cond:
                        receiver.rejected += 1
                    return self._answer(401)
                kind = self.path.rsplit("/", 1)[-1]
                with receiver._cond:
                    receiver.callbacks.append(Callback(
                        kind, json.loads(raw), raw, auth, self.headers.get("Content-Type", ""),
                        at=arrived))
                    receiver._cond.notify_all()
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def of(self, kind: str, task_id: str | None = None) -> list[Callback]:
        with self._cond:
            return [c for c in self.callbacks if c.kind == kind
                    and (task_id is None or c.body.get("task_id") == task_id)]

    def wait_for(self, predicate: Callable[[list[Callback]], Any], timeout: float,
                 what: str = "callback") -> Any:
        """Wait until ``predicate(callbacks)`` is truthy; return its value or fail loudly."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.callbacks))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [(c.kind, c.body.get("task_id"), c.body.get("state")) for c in
                             self.callbacks[-10:]]
                    raise TimeoutError(f"no {what} within {timeout} s; last callbacks: {kinds}")
                self._cond.wait(min(left, 0.1))

    def result_of(self, task_id: str, timeout: float) -> dict[str, Any]:
        cb = self.wait_for(lambda cbs: next((c for c in cbs if c.kind == "on-result"
                                             and c.body["task_id"] == task_id), None),
                           timeout, f"on-result of task {task_id}")
        return cb.body


def start_backend(bundle, results_dir: Path, callback_url: str, secret: str, *,
                  registry=None, **config):
    """An in-process backend on a free loopback port: (backend, http server, base URL)."""
    from backend_server.app import create_app
    from backend_server.backend import Backend, BackendConfig
    from backend_server.server import HttpServer

    cfg = BackendConfig(bundle=Path(getattr(bundle, "path", "")), session_id="s1",
                        job_id="j1", results_dir=results_dir, callback_url=callback_url,
                        secret=secret, **config)
    backend = Backend(cfg, bundle, registry=registry)
    http = HttpServer(create_app(backend), "127.0.0.1", 0, cfg.http_threads).start()
    return backend, http, f"http://127.0.0.1:{http.port}"
