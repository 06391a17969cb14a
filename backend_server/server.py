"""The backend's life: load and warm the bundle, serve, report ``on-ready``, stop cleanly.

``run(config, stop)`` is the whole lifecycle; ``ligan backend serve`` calls it with SIGTERM and
SIGINT wired to ``stop``. The HTTP server is waitress (a production WSGI server, pure Python,
threaded: the model lives in this one process, so a forking server cannot be used).
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Callable

from backend_server.backend import Backend, BackendConfig, warm_up
from backend_server.callbacks import CallbackSender

log = logging.getLogger(__name__)


class HttpServer:
    """waitress on its own thread, stoppable from another thread."""

    def __init__(self, app, host: str, port: int, threads: int = 4) -> None:
        from waitress import create_server

        self._server = create_server(app, host=host, port=port, threads=threads,
                                     ident="ligan-backend", clear_untrusted_proxy_headers=True,
                                     channel_timeout=60, max_request_body_size=4 << 20)
        self.port = int(self._server.effective_port)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http", daemon=True)
        self._stop_timeout = 5.0

    def start(self) -> "HttpServer":
        self._thread.start()
        return self

    def _loop(self) -> None:
        from waitress import wasyncore

        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.1, map=self._server._map, count=1)
        self._server.task_dispatcher.shutdown(timeout=self._stop_timeout)
        wasyncore.close_all(self._server._map)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish (up to ``timeout``), close."""
        self._stop_timeout = timeout
        self._stopping.set()
        self._thread.join(timeout + 1)


def advertised_address(host: str, port: int) -> str:
    """The URL the master daemon should use: a wildcard host is replaced by this node's name."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def load_backend(config: BackendConfig, callbacks: CallbackSender) -> Backend:
    from models.bundle import load_bundle, read_manifest
    from models.precision import resolve_render_precision
    from models.projector import projector_parts

    start = time.perf_counter()
    bundle = load_bundle(config.bundle, parts=projector_parts(read_manifest(config.bundle)))
    loaded = time.perf_counter() - start
    precision = resolve_render_precision(config.precision, bundle.generator.cfg)
    bundle.generator.use_precision(precision.name)
    warm = warm_up(bundle)
    log.info("bundle %s (%s) loaded in %.1f s, graphs warmed in %.1f s; rendering in %s (%s)",
             config.bundle, bundle.hash[:12], loaded, warm, bundle.generator.precision,
             precision.reason)
    return Backend(config, bundle, callbacks=callbacks)


def run(config: BackendConfig, stop: threading.Event,
        on_started: Callable[[Backend, HttpServer], None] | None = None) -> int:
    """Load, serve until ``stop`` is set or the idle timeout passes, shut down. Returns the exit
    status: 0 after a clean shutdown, 1 when the backend could not start (reported to the
    master daemon as a failed ``on-ready``)."""
    callbacks = CallbackSender(config.callback_url, config.secret,
                               timeout=config.callback_timeout,
                               retry_initial=config.retry_initial, retry_max=config.retry_max)
    try:
        backend = load_backend(config, callbacks)
        from backend_server.app import create_app

        http = HttpServer(create_app(backend), config.host, config.port,
                          config.http_threads).start()
    except Exception as exc:  # noqa: BLE001 - every start failure is reported, not swallowed
        reason = _start_failure(config, exc)
        log.error("backend could not start: %s", reason)
        callbacks.send("on-ready", {**config.identity, "status": "failed", "error": reason})
        if not callbacks.flush(config.failure_report_timeout):
            log.error("could not report the failure to the master daemon at %s",
                      config.callback_url)
        callbacks.close(0)
        return 1
    address = advertised_address(config.host, http.port)
    log.info("backend for session %s (job %s) serving on %s", config.session_id,
             config.job_id, address)
    backend.report_ready(address)
    if on_started is not None:
        on_started(backend, http)
    reason = "stop requested"
    while not stop.wait(0.2):
        if config.idle_timeout > 0 and backend.idle_for() >= config.idle_timeout:
            reason = f"idle for {config.idle_timeout:g} s"
            break
    log.info("shutting down (%s)", reason)
    backend.shutdown()
    http.stop()
    log.info("backend stopped")
    return 0


def _start_failure(config: BackendConfig, exc: Exception) -> str:
    from models.bundle import BundleError

    if isinstance(exc, BundleError):
        return f"cannot load the model bundle: {exc}"
    if isinstance(exc, OSError) and "address" in str(exc).lower():
        return f"cannot listen on {config.host}:{config.port}: {exc}"
    if isinstance(exc, OSError):
        return f"cannot start: {exc}"
    return f"cannot start: {type(exc).__name__}: {exc}"


def serve_forever(config: BackendConfig) -> int:
    """``run`` with SIGTERM (what SLURM sends before killing a job) and SIGINT as stop."""
    stop = threading.Event()

    def handle(signum, _frame):
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return run(config, stop)
