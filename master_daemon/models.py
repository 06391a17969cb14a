"""The daemon's records: a session, a backend job of a session, a task of a session.

They are plain dataclasses kept in memory by :class:`master_daemon.manager.Manager` and written
through to SQLite (:mod:`master_daemon.store`) on every change, so that a restarted daemon
continues where it stopped. ``to_dict`` gives the JSON object of the contract in
docs/master_daemon.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any

# Session states of the contract.
QUEUED, STARTING, READY, FAILED, STOPPED = "queued", "starting", "ready", "failed", "stopped"
# Our own life of a backend (the scheduler's state is ``job_state``):
#   submitted -> ready -> (draining) -> ended
B_SUBMITTED, B_READY, B_DRAINING, B_ENDED = "submitted", "ready", "draining", "ended"
# Task states of the contract.
T_QUEUED, T_RUNNING, T_DONE, T_FAILED, T_CANCELLED = "queued", "running", "done", "failed", \
    "cancelled"
T_ENDED = (T_DONE, T_FAILED, T_CANCELLED)


@dataclasses.dataclass
class Backend:
    """One backend job. ``backend_id`` is the daemon's own id (``b-…``), chosen before the job
    is submitted: it is the backend's ``--job-id`` and part of its callback URL, because the
    scheduler's ``job_id`` is only known after ``submit``."""

    backend_id: str
    session_id: str
    scheduler: str
    secret: str
    time_limit_s: int
    submitted: float
    job_id: str = ""
    state: str = B_SUBMITTED
    job_state: str = "PENDING"
    reason: str = ""
    address: str = ""
    bundle_hash: str = ""
    precision: str = ""  # what the backend renders in (models.precision), from its on-ready
    pid: int | None = None
    started: float | None = None
    ends: float | None = None
    ready_at: float | None = None
    ended_at: float | None = None
    replaces: str = ""  # the backend this one renews
    renewed_by: str = ""  # the backend renewing this one
    stop_requested: str = ""  # why the daemon stopped it ("" while nobody asked)

    @property
    def live(self) -> bool:
        return self.state != B_ENDED

    def public(self) -> dict[str, Any]:
        """The ``backend`` member of the session object."""
        return {"job_id": self.job_id, "backend_id": self.backend_id,
                "scheduler": self.scheduler, "state": self.job_state,
                "bundle_hash": self.bundle_hash, "precision": self.precision,
                "started": self.started, "ends": self.ends}


@dataclasses.dataclass
class Session:
    session_id: str
    results_dir: str
    created: float
    last_activity: float
    state: str = QUEUED
    reason: str = ""
    backend_id: str = ""  # the current backend ("" while there is none)
    queued_at: float | None = None  # set while waiting for a backend slot

    def move(self, state: str, reason: str, *, backend_id: str | None = None,
             queued_at: float | None = None) -> None:
        """Enter ``state`` (or stay in it) for ``reason``, the words the user sees: the one
        place a session changes state, so that no change leaves its reason stale.
        ``backend_id``: the session's backend from now on (None: unchanged); ``queued_at``:
        when it started waiting for a slot, kept only in :data:`QUEUED`."""
        self.state, self.reason = state, reason
        if backend_id is not None:
            self.backend_id = backend_id
        self.queued_at = queued_at if state == QUEUED else None


@dataclasses.dataclass
class Task:
    task_id: str
    session_id: str
    type: str
    params: dict[str, Any]
    created: float
    state: str = T_QUEUED
    progress: float = 0
    message: str = ""
    result: Any = None
    error: str | None = None
    finished: float | None = None
    backend_id: str = ""  # the backend it was sent to ("" while held by the daemon)
    backend_task_id: str = ""
    started: bool = False  # the backend reported it running (an on-progress came)
    attempts: int = 0  # how many backends it was sent to

    @property
    def ended(self) -> bool:
        return self.state in T_ENDED

    def public(self) -> dict[str, Any]:
        """The task object of the contract, with the whole (backend-capped) result: the
        answer of ``GET …/tasks/<id>``."""
        return {"task_id": self.task_id, "session_id": self.session_id, "type": self.type,
                "params": self.params, "state": self.state, "progress": self.progress,
                "message": self.message, "result": self.result, "error": self.error,
                "created": self.created, "finished": self.finished}

    def summary(self) -> dict[str, Any]:
        """The task object without its result, which ``result_summary`` counts instead: what
        ``task`` events and the task list carry, so that a bulk task's faces and files are not
        sent again with every change (or 100 times in a list)."""
        out = self.public()
        del out["result"]
        out["result_summary"] = result_summary(self.result)
        return out

    def ended_event(self) -> dict[str, Any]:
        """The ``result`` event, sent once when the task ends: the task object whose result
        has no file list and face records without their latents (what a page shows; ``GET``
        of the task has both), and ``result_summary`` as in :meth:`summary`."""
        out = self.public()
        out["result_summary"] = result_summary(self.result)
        if isinstance(self.result, dict):
            shown = {k: v for k, v in self.result.items() if k != "files"}
            if isinstance(shown.get("faces"), list):
                shown["faces"] = [{k: v for k, v in f.items() if k != "latent"}
                                  if isinstance(f, dict) else f for f in shown["faces"]]
            out["result"] = shown
        return out


def result_summary(result: Any) -> dict[str, int] | None:
    """``{"faces_total", "files_total"}`` of a result (None for none): how many face records
    and files the task made, whatever its result carries of them."""
    if not isinstance(result, dict):
        return None
    out = {}
    for kind in ("faces", "files"):
        total, listed = result.get(f"{kind}_total"), result.get(kind)
        out[f"{kind}_total"] = total if isinstance(total, int) else (
            len(listed) if isinstance(listed, list) else 0)
    return out


def to_row(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def from_row(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
