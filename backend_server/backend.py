"""One backend: the loaded bundle, the session's face store, the task queue and the callbacks."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend_server.callbacks import CallbackSender
from backend_server.tasks import BackendLimits, TaskEnv, TaskType, discover
from backend_server.taskqueue import TaskQueue
from models.facestore import FaceStore

log = logging.getLogger(__name__)


@dataclass
class BackendConfig:
    bundle: Path
    session_id: str
    job_id: str
    results_dir: Path
    callback_url: str
    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    idle_timeout: float = 0.0        # seconds without tasks before exiting; 0: never
    workers: int = 1
    grace: float = 20.0              # seconds a running task may take to finish on SIGTERM
    stop_wait: float = 5.0           # then seconds to wait for it to stop at its next step
    http_threads: int = 4
    limits: BackendLimits = field(default_factory=BackendLimits)
    callback_timeout: float = 10.0
    retry_initial: float = 0.5
    retry_max: float = 30.0
    failure_report_timeout: float = 30.0  # how long a failed start tries to say so
    precision: str = "auto"          # LIGAN_PRECISION: what faces are rendered in

    @property
    def identity(self) -> dict[str, str]:
        return {"session_id": self.session_id, "job_id": self.job_id}


def warm_up(bundle) -> float:
    """Trace and run the compiled mapping and every synthesis noise mode once, so that the
    first task does not pay for graph building. Returns the seconds it took."""
    import numpy as np

    from models.stylegan2 import NOISE_MODES

    start = time.perf_counter()
    g = bundle.generator
    ws = g.map_compiled(np.zeros((1, g.cfg.z_dim), np.float32), 1.0, None)
    for mode in NOISE_MODES:
        g.synthesize(ws, mode, noise_seeds=[0]).numpy()
    return time.perf_counter() - start


class Backend:
    def __init__(self, config: BackendConfig, bundle, *, callbacks: CallbackSender | None = None,
                 registry: dict[str, TaskType] | None = None) -> None:
        self.config = config
        self.bundle = bundle
        self.results_dir = Path(config.results_dir).resolve()
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.callbacks = callbacks or CallbackSender(
            config.callback_url, config.secret, timeout=config.callback_timeout,
            retry_initial=config.retry_initial, retry_max=config.retry_max)
        self.faces = FaceStore(self.results_dir)
        env = TaskEnv(bundle=bundle, faces=self.faces, results_dir=self.results_dir,
                      limits=config.limits, task_id="")
        self.queue = TaskQueue(env, registry if registry is not None else discover(),
                               self.callbacks.send, workers=config.workers,
                               identity=config.identity)
        self.started = time.monotonic()

    @property
    def secret(self) -> str:
        return self.config.secret

    def health(self) -> dict[str, Any]:
        return {"status": "ok" if self.queue.accepting else "stopping",
                **self.config.identity, "bundle_hash": self.bundle.hash,
                "precision": self.bundle.generator.precision, **self.queue.counts()}

    def idle_for(self) -> float:
        """Seconds since the last task was submitted or ended; 0 while any is queued/running."""
        if self.queue.busy():
            return 0.0
        return time.monotonic() - self.queue.last_activity

    def report_ready(self, address: str) -> None:
        self.callbacks.send("on-ready", {**self.config.identity, "status": "ready",
                                         "address": address, "bundle_hash": self.bundle.hash,
                                         "precision": self.bundle.generator.precision,
                                         "pid": os.getpid()})

    def shutdown(self, flush_timeout: float = 5.0) -> None:
        """Interrupt queued tasks, give running ones the grace period, deliver callbacks."""
        self.queue.shutdown(self.config.grace, self.config.stop_wait)
        self.callbacks.close(flush_timeout,
                             leftover_file=self.results_dir / "undelivered-callbacks.jsonl")
