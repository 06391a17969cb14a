"""Sessions, their backend jobs and their tasks: the daemon's records and what it does to them.

The :class:`Manager` owns the in-memory records (written through to SQLite) behind one lock.
Request threads call it for the internal API (bodies already checked by
:mod:`master_daemon.validation`); backends' callbacks are handled by
:mod:`master_daemon.callbacks` and the watching of jobs, idle sessions and renewal by
:mod:`master_daemon.monitor`, both through the manager's operations below (starting and
failing sessions, submitting and cancelling backends, ending and re-queuing tasks), which
they call with :attr:`Manager.lock` held. Network calls to backends are made outside the lock
(a per-session send lock keeps a session's tasks in order), so a slow backend never stalls
other sessions.

Life of a session: ``PUT`` → *queued* (waiting for one of ``max_backends`` slots) → *starting*
(job submitted) → *ready* (on-ready came) → *stopped* (``DELETE``, idle) or *failed* (could
not start, died with nothing waiting). A session whose backend ends while it has tasks waiting
gets a fresh backend by itself.
"""
from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from jobs.scheduler import JobSpec, Scheduler, SchedulerError, SubmitError, fit_grace
from master_daemon.backend_client import BackendClient
from master_daemon.events import EventHub
from master_daemon.models import (B_DRAINING, B_READY, FAILED, QUEUED, STARTING, STOPPED,
                                  T_CANCELLED, T_DONE, T_FAILED, T_QUEUED, T_RUNNING, Backend,
                                  Session, Task, result_summary)
from master_daemon.store import Store
from master_daemon.validation import ApiError
from setup.config import Settings

log = logging.getLogger("ligan.daemon")
CHECKOUT = Path(__file__).resolve().parent.parent
TASK_LIST_LIMIT = 100


# Backend answers that refuse a task for good: sending it again cannot help (a malformed or
# too large body, a face that does not exist, an unusable value), so the task fails with the
# backend's reason instead of being held and re-sent.
REFUSED = (400, 404, 413, 422)


class Manager:
    """The daemon's sessions, backends and tasks.

    ``callback_base`` (``http://host:port/callbacks``) must be set before the first backend is
    submitted; it is known once the HTTP server has bound its port.
    """

    def __init__(self, settings: Settings, scheduler: Scheduler, store: Store, hub: EventHub,
                 bundle: Path | None = None, backend_cmd: list[str] | None = None,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.scheduler = scheduler
        self.store = store
        self.hub = hub
        self.bundle = Path(bundle or settings.bundle)
        self.python = backend_cmd or ([sys.executable] if not settings.container else ["python"])
        self.clock = clock
        self.callback_base = ""
        self.client = BackendClient()
        self._lock = threading.RLock()
        self._send_locks: dict[str, threading.RLock] = {}
        self.sessions: dict[str, Session] = {}
        self.backends: dict[str, Backend] = {}
        self.tasks: dict[str, Task] = {}  # the unfinished and the newest ended tasks
        self._tasks_of: dict[str, dict[str, Task]] = {}  # session id -> its tasks in memory
        self._by_backend_task: dict[tuple[str, str], str] = {}
        self._published_position: dict[str, int] = {}
        self._kicks: queue.Queue[str | None] = queue.Queue()
        self._dispatcher: threading.Thread | None = None
        self.logs_dir = Path(settings.home) / "logs" / "backends"
        self._grace: float | None = None  # the backends' grace, fitted to the kill wait
        self._load()

    # -- start and stop ----------------------------------------------------------------------
    def _load(self) -> None:
        """Read the state a previous daemon left (re-attaching happens in the first tick)."""
        for s in self.store.load_sessions():
            self.sessions[s.session_id] = s
        for b in self.store.load_backends(live_only=True):
            self.backends[b.backend_id] = b
        for t in self.store.load_tasks():
            self._add_task(t)
            if t.backend_id and t.backend_task_id:
                self._by_backend_task[(t.backend_id, t.backend_task_id)] = t.task_id
        live = [b for b in self.backends.values() if b.live]
        if self.sessions:
            log.info("state read from %s: %d sessions, %d live backend jobs, %d tasks",
                     self.store.path, len(self.sessions), len(live), len(self.tasks))
        for b in live:
            if b.job_id:
                try:
                    self.scheduler.attach(b.job_id)
                except SchedulerError as e:
                    log.warning("cannot re-attach to job %s of session %s: %s", b.job_id,
                                b.session_id, e)
            log.info("re-attached to backend %s (job %s) of session %s at %s", b.backend_id,
                     b.job_id, b.session_id, b.address or "(not ready yet)")

    def start(self) -> None:
        self.backend_grace()  # ask the scheduler now, and warn at start, not under the lock
        self._dispatcher = threading.Thread(target=self._dispatch, name="ligan-daemon-send",
                                            daemon=True)
        self._dispatcher.start()
        for sid in list(self.sessions):
            self._kicks.put(sid)

    def shutdown(self, cancel_backends: bool) -> None:
        """Stop the dispatcher; with ``cancel_backends`` cancel every live backend job too
        (``ligan up`` on Ctrl-C). Without it backends keep running for the next daemon."""
        self._kicks.put(None)
        if cancel_backends:
            with self._lock:
                live = [b for b in self.backends.values() if b.live]
                for b in live:
                    b.stop_requested = b.stop_requested or "the daemon stopped"
                    self.store.put_backend(b)
            for b in live:
                self.cancel_job(b)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def lock(self) -> threading.RLock:
        """The lock over every record; held by whoever reads or changes them."""
        return self._lock

    def task_on_backend(self, bid: str, backend_task_id: str) -> Task | None:
        """The task backend ``bid`` runs as ``backend_task_id`` (None: not ours, or ended)."""
        tid = self._by_backend_task.get((bid, backend_task_id))
        return self.tasks.get(tid) if tid else None

    def forget_backend_task(self, t: Task) -> None:
        """Stop mapping the backend's id of ``t`` to it (the backend is done with it)."""
        self._by_backend_task.pop((t.backend_id, t.backend_task_id), None)

    def send_lock(self, sid: str) -> threading.RLock:
        """The lock that keeps the session's sends to its backend in order."""
        with self._lock:
            return self._send_locks.setdefault(sid, threading.RLock())

    def _session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise ApiError(404, f"no session {sid!r}: start it with PUT /api/sessions/{sid}")
        return s

    def current(self, s: Session) -> Backend | None:
        """The session's live backend, None while it has none."""
        b = self.backends.get(s.backend_id) if s.backend_id else None
        return b if b is not None and b.live else None

    def _slots_used(self) -> int:
        return len({b.session_id for b in self.backends.values() if b.live})

    def _queue(self) -> list[Session]:
        return sorted((s for s in self.sessions.values() if s.state == QUEUED),
                      key=lambda s: s.queued_at or 0)

    def _queue_position(self, s: Session) -> int:
        if s.state != QUEUED:
            return 0
        return 1 + sum(1 for o in self.sessions.values()
                       if o.state == QUEUED and (o.queued_at or 0) < (s.queued_at or 0))

    def session_dict(self, s: Session) -> dict[str, Any]:
        b = self.backends.get(s.backend_id) if s.backend_id else None
        return {"session_id": s.session_id, "state": s.state,
                "queue_position": self._queue_position(s), "reason": s.reason,
                "results_dir": s.results_dir, "backend": b.public() if b else None,
                "last_event_id": self.hub.last_id(s.session_id)}

    def emit_session(self, s: Session) -> None:
        """Store ``s`` and publish it as a ``session`` event."""
        self.store.put_session(s)
        self._published_position[s.session_id] = self._queue_position(s)
        self.hub.publish(s.session_id, "session", self.session_dict(s))

    def emit_task(self, t: Task, ended: bool = False) -> None:
        """Store ``t`` and publish its summary as a ``task`` event; ``ended``: then the
        ``result`` event too."""
        self.store.put_task(t)
        self.hub.publish(t.session_id, "task", t.summary())
        if ended:
            self.hub.publish(t.session_id, "result", t.ended_event())

    def unfinished(self, sid: str) -> list[Task]:
        """The session's tasks not yet ended, oldest first."""
        return sorted((t for t in self._tasks_of.get(sid, {}).values() if not t.ended),
                      key=lambda t: t.created)

    def _add_task(self, t: Task) -> None:
        self.tasks[t.task_id] = t
        self._tasks_of.setdefault(t.session_id, {})[t.task_id] = t

    def _drop_task(self, t: Task) -> None:
        self.tasks.pop(t.task_id, None)
        self._tasks_of.get(t.session_id, {}).pop(t.task_id, None)

    def _prune(self, sid: str) -> None:
        """Keep the newest TASK_LIST_LIMIT ended tasks of a session in memory (all are in the
        store; results can be large)."""
        mine = self._tasks_of.get(sid, {})
        ended = [t for t in mine.values() if t.ended]
        if len(ended) > TASK_LIST_LIMIT + 20:
            ended.sort(key=lambda t: t.created)
            for t in ended[:len(ended) - TASK_LIST_LIMIT]:
                self._drop_task(t)

    # -- the internal API --------------------------------------------------------------------
    def start_session(self, sid: str) -> dict[str, Any]:
        """``PUT /api/sessions/<sid>``: make sure the session has (or waits for) a backend.
        ``sid`` is a valid session id (:func:`master_daemon.validation.session_id`)."""
        with self._lock:
            now = self.clock()
            s = self.sessions.get(sid)
            if s is None:
                results = Path(self.settings.results_root) / sid
                results.mkdir(parents=True, exist_ok=True)
                s = Session(session_id=sid, results_dir=str(results.resolve()), created=now,
                            last_activity=now, state="")
                self.sessions[sid] = s
                log.info("session %s started (results in %s)", sid, s.results_dir)
            else:
                Path(s.results_dir).mkdir(parents=True, exist_ok=True)
            s.last_activity = now
            if self.current(s) is None and s.state != QUEUED:
                self.want_backend(s, "")
            else:
                self.store.put_session(s)
            return self.session_dict(s)

    def get_session(self, sid: str) -> dict[str, Any]:
        with self._lock:
            return self.session_dict(self._session(sid))

    def has_session(self, sid: str) -> bool:
        return sid in self.sessions

    def stop_session(self, sid: str, reason: str = "stopped on request") -> dict[str, Any]:
        """``DELETE /api/sessions/<sid>`` and the idle timeout: cancel the backend and every
        task not yet ended."""
        with self._lock:
            s = self._session(sid)
            to_cancel = [b for b in self.backends.values() if b.session_id == sid and b.live]
            for b in to_cancel:
                b.stop_requested = reason
                self.store.put_backend(b)
            for t in self.unfinished(sid):
                self.end_task(t, T_CANCELLED, error=None, message=f"cancelled: {reason}")
            s.move(STOPPED, reason, backend_id="")
            log.info("session %s stopped: %s", sid, reason)
            self.emit_session(s)
        for b in to_cancel:
            self.cancel_job(b)
        with self._lock:
            self.schedule()
            return self.session_dict(s)

    def create_task(self, sid: str, ttype: str, params: dict[str, Any]
                    ) -> tuple[int, dict[str, Any]]:
        """``POST /api/sessions/<sid>/tasks`` of a checked request
        (:func:`master_daemon.validation.task_request`): 202 and the task, or the backend's
        refusal."""
        with self._lock:
            s = self._session(sid)
            now = self.clock()
            t = Task(task_id="t" + secrets.token_hex(8), session_id=sid, type=ttype,
                     params=params, created=now, message="waiting for the session's backend")
            s.last_activity = now
            b = self.current(s)
            ready = b is not None and b.state == B_READY
        if ready:
            # Under the send lock until the task's event is out: a callback about it waits for
            # that lock, so the browser never sees its progress before the task itself.
            with self.send_lock(sid):
                self._flush(sid)  # older queued tasks first
                with self._lock:
                    self._add_task(t)
                status, answer = self._send(t, synchronous=True)
                with self._lock:
                    if status in REFUSED + (409,):
                        self._drop_task(t)
                        return status, answer
                    if t.backend_id:
                        self.hub.publish(sid, "task", t.summary())
                    else:
                        self.emit_task(t)
                    return 202, t.public()
        with self._lock:
            self._add_task(t)
            self.emit_task(t)
            if self.current(s) is None and s.state != QUEUED:
                self.want_backend(s, s.reason if s.state == FAILED else "")
            else:
                self.store.put_session(s)
            return 202, t.public()

    def get_task(self, sid: str, tid: str) -> dict[str, Any]:
        with self._lock:
            self._session(sid)
            t = self.tasks.get(tid) or self.store.get_task(tid)
            if t is None or t.session_id != sid:
                raise ApiError(404, f"no task {tid!r} in session {sid!r}")
            return t.public()

    def list_tasks(self, sid: str) -> dict[str, Any]:
        with self._lock:
            self._session(sid)
            mine = sorted(self._tasks_of.get(sid, {}).values(), key=lambda t: t.created,
                          reverse=True)
            return {"tasks": [t.summary() for t in mine[:TASK_LIST_LIMIT]]}

    def task_files(self, sid: str, tid: str, offset: int, limit: int
                   ) -> tuple[int, dict[str, Any]]:
        """``GET …/tasks/<tid>/files``: ``limit`` of the files the task wrote from ``offset``.
        A result lists only the first files of a bulk task (``files_total`` counts them all),
        so the rest come from the backend that ran it, while that backend lives and remembers
        the task; after that 410, since its records files (listed first) name every face."""
        with self._lock:
            self._session(sid)
            t = self.tasks.get(tid) or self.store.get_task(tid)
            if t is None or t.session_id != sid:
                raise ApiError(404, f"no task {tid!r} in session {sid!r}")
            counts = result_summary(t.result) or {"files_total": 0}
            listed = t.result.get("files") if isinstance(t.result, dict) else None
            listed = listed if isinstance(listed, list) else []
            page = {"task_id": tid, "state": t.state, "offset": offset, "limit": limit}
            if t.ended and len(listed) >= counts["files_total"]:
                return 200, {**page, "total": len(listed),
                             "files": listed[offset:offset + limit]}
            b = self.backends.get(t.backend_id) if t.backend_id else None
            if b is None or not b.live or not b.address or not t.backend_task_id:
                if not t.ended:  # held by the daemon: nothing written yet on this backend
                    return 200, {**page, "total": 0, "files": []}
                return 410, {"error": self._files_gone(t, len(listed), counts["files_total"])}
            address, secret, btid = b.address, b.secret, t.backend_task_id
        status, answer = self.client.call(
            "GET", address, f"/tasks/{btid}/files?offset={offset}&limit={limit}", secret)
        if status == 200 and isinstance(answer.get("files"), list):
            return 200, {**answer, **page}
        if status in (0, 404):
            return 410, {"error": self._files_gone(t, len(listed), counts["files_total"])}
        return 502, {"error": f"the backend answered {status}: {answer.get('error')}"}

    @staticmethod
    def _files_gone(t: Task, listed: int, total: int) -> str:
        return (f"task {t.task_id} wrote {total} files and its result lists the first {listed}; "
                f"the backend that held the whole list has ended or forgotten the task. Every "
                f"face is in the records.jsonl files among those listed")

    def cancel_task(self, sid: str, tid: str) -> tuple[int, dict[str, Any]]:
        """``DELETE …/tasks/<tid>``: queued here: cancelled at once; sent: DELETE on the
        backend, which answers with an on-result (``cancelled`` or how it ended)."""
        with self.send_lock(sid):
            with self._lock:
                self._session(sid)
                t = self.tasks.get(tid) or self.store.get_task(tid)
                if t is None or t.session_id != sid:
                    raise ApiError(404, f"no task {tid!r} in session {sid!r}")
                if t.ended:
                    raise ApiError(409, f"task {tid} already ended ({t.state})",
                                   {"error": f"task {tid} already ended ({t.state})",
                                    "task": t.public()})
                b = self.backends.get(t.backend_id) if t.backend_id else None
                if b is None or not b.live or not b.address:
                    self.end_task(t, T_CANCELLED, None, "cancelled")
                    return 202, t.public()
                target = (b.address, b.secret, t.backend_task_id)
            status, answer = self.client.call("DELETE", target[0], f"/tasks/{target[2]}",
                                              target[1])
            with self._lock:
                if status == 0 and not t.ended:  # the backend is gone: nothing will run it
                    self.end_task(t, T_CANCELLED, None, "cancelled")
                elif not t.ended:
                    t.message = "cancelling"
                    self.store.put_task(t)
                log.info("task %s of session %s: cancel asked of backend %s (%s)", tid, sid,
                         t.backend_id, status or answer.get("error"))
                return 202, t.public()

    def status(self) -> dict[str, Any]:
        """The operator's view for ``GET /api/status``: every session not stopped (user,
        state, backend, job, precision, its tasks), the queue, task counts and backend slots."""
        with self._lock:
            now = self.clock()
            counts: dict[str, int] = {}
            for s in self.sessions.values():
                counts[s.state] = counts.get(s.state, 0) + 1
            sessions = []
            tasks = {T_QUEUED: 0, T_RUNNING: 0}
            for s in sorted(self.sessions.values(), key=lambda s: s.created):
                mine = {T_QUEUED: 0, T_RUNNING: 0}
                for t in self.unfinished(s.session_id):
                    mine[t.state] = mine.get(t.state, 0) + 1
                    tasks[t.state] = tasks.get(t.state, 0) + 1
                if s.state == STOPPED:
                    continue
                b = self.backends.get(s.backend_id) if s.backend_id else None
                sessions.append({
                    "session_id": s.session_id,
                    "user": s.session_id[5:] if s.session_id.startswith("user-") else "",
                    "state": s.state, "reason": s.reason,
                    "queue_position": self._queue_position(s),
                    "backend_id": b.backend_id if b else "", "job_id": b.job_id if b else "",
                    "job_state": b.job_state if b else "",
                    "precision": b.precision if b else "",
                    "bundle_hash": b.bundle_hash if b else "",
                    "address": b.address if b else "",
                    "started": b.started if b else None, "ends": b.ends if b else None,
                    "last_activity": s.last_activity, "tasks": mine})
            queue = [{"session_id": s.session_id, "position": i + 1,
                      "waiting_s": now - (s.queued_at or now)}
                     for i, s in enumerate(self._queue())]
            return {"now": now, "sessions": sessions, "session_counts": counts,
                    "queue": queue, "tasks": tasks,
                    "backends": {"live": self._slots_used(),
                                 "max": int(self.settings.max_backends),
                                 "grace_s": self._grace if self._grace is not None
                                 else float(self.settings.backend_grace)}}

    # -- backends ----------------------------------------------------------------------------
    def want_backend(self, s: Session, reason: str) -> None:
        """Put the session in the queue for a backend slot, then start what fits."""
        s.move(QUEUED, reason, backend_id="", queued_at=self.clock())
        self.emit_session(s)
        self.schedule()

    def schedule(self) -> None:
        """Give free slots to queued sessions, oldest first; publish changed positions."""
        waiting = self._queue()
        free = self.settings.max_backends - self._slots_used()
        for s in waiting[:max(0, free)]:
            self.submit_backend(s)
        for s in self._queue():
            if self._published_position.get(s.session_id) != self._queue_position(s):
                self.emit_session(s)

    def submit_backend(self, s: Session, replaces: Backend | None = None) -> Backend | None:
        """Submit a backend job for ``s`` (a replacement of ``replaces`` when renewing)."""
        if not self.callback_base:
            raise RuntimeError("callback_base is not set: the HTTP server has not started")
        now = self.clock()
        bid = "b-" + secrets.token_hex(6)
        b = Backend(backend_id=bid, session_id=s.session_id, scheduler=self.scheduler.kind,
                    secret=secrets.token_urlsafe(32), submitted=now,
                    time_limit_s=int(self.settings.backend_time_limit),
                    replaces=replaces.backend_id if replaces else "")
        spec = self._job_spec(s, b)
        try:
            b.job_id = self.scheduler.submit(spec)
        except (SubmitError, SchedulerError) as e:
            why = getattr(e, "reason", "") or str(e)
            log.warning("backend job for session %s refused: %s", s.session_id, why)
            if replaces is not None:
                replaces.renewed_by = "failed"  # do not try again every tick
                self.store.put_backend(replaces)
                return None
            self.session_failed(s, f"the backend job could not be submitted: {why}")
            return None
        self.backends[bid] = b
        if self.scheduler.runs_on_submit():
            b.started = now
            b.ends = now + b.time_limit_s
        self.store.put_backend(b)
        log.info("backend %s for session %s submitted as %s job %s%s", bid, s.session_id,
                 self.scheduler.kind, b.job_id,
                 f" (renews {replaces.backend_id})" if replaces else "")
        if replaces is not None:
            replaces.renewed_by = bid
            self.store.put_backend(replaces)
        else:
            s.move(STARTING, "submitted", backend_id=bid)
            self.emit_session(s)
        return b

    def backend_grace(self) -> float:
        """The grace period backends get (``--grace``): ``LIGAN_BACKEND_GRACE`` shortened to
        fit the scheduler's kill wait (Slurm's KillWait), so that a backend cancelled with a
        task running still hands that task on to the session's next backend before SIGKILL.
        Asked of the scheduler once; a warning says when it was shortened."""
        if self._grace is not None:
            return self._grace
        configured = float(self.settings.backend_grace)
        try:
            kill_wait = self.scheduler.kill_wait_s()
        except SchedulerError as e:
            log.warning("cannot ask the scheduler how long jobs get between SIGTERM and "
                        "SIGKILL (%s): backends get the full grace of %g s", e, configured)
            return configured
        grace, warning = fit_grace(configured, kill_wait)
        if warning:
            log.warning("%s", warning)
        if kill_wait is not None:
            self._grace = grace
        return grace

    def _job_spec(self, s: Session, b: Backend) -> JobSpec:
        st = self.settings
        cmd = [*self.python, "-m", "backend_server", "serve", "--bundle", str(self.bundle),
               "--session-id", s.session_id, "--job-id", b.backend_id,
               "--results-dir", s.results_dir,
               "--callback-url", f"{self.callback_base}/{b.backend_id}",
               "--host", st.backend_host, "--grace", f"{self.backend_grace():g}"]
        pythonpath = os.pathsep.join(p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH"))
                                     if p)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        name = "ligan-backend-" + re.sub(r"[^A-Za-z0-9._-]", "_", s.session_id)[:60]
        spec = JobSpec(name=name, command=cmd, workdir=CHECKOUT,
                       env={"LIGAN_JOB_SECRET": b.secret, "PYTHONPATH": pythonpath},
                       stdout=self.logs_dir / f"{b.backend_id}.log",
                       time_limit_s=b.time_limit_s)
        # The backend resources of the settings; the scheduler keeps those it can grant.
        return self.scheduler.with_resources(
            spec, cpus=st.slurm_cpus, gpus=st.slurm_gpus, memory_mb=st.slurm_memory_mb,
            partition=st.slurm_partition or None, account=st.slurm_account or None)

    def cancel_job(self, b: Backend) -> None:
        """Ask the scheduler to stop the job of ``b`` (call it without the lock held)."""
        if not b.job_id:
            return
        try:
            self.scheduler.cancel(b.job_id)
            log.info("backend %s (job %s) of session %s: cancel sent (%s)", b.backend_id,
                     b.job_id, b.session_id, b.stop_requested or "no reason")
        except SchedulerError as e:
            log.warning("cancelling job %s failed: %s", b.job_id, e)

    def session_failed(self, s: Session, reason: str) -> None:
        """The session's backend could not start: fail it and its waiting tasks (the next PUT
        or task tries again), so a broken bundle does not loop."""
        s.move(FAILED, reason, backend_id="")
        for t in self.unfinished(s.session_id):
            if not t.backend_id:
                self.end_task(t, T_FAILED, reason, "the backend could not start")
        log.warning("session %s failed: %s", s.session_id, reason)
        self.emit_session(s)

    # -- tasks to backends -------------------------------------------------------------------
    def kick(self, sid: str) -> None:
        """Ask the dispatcher thread to send the session's queued tasks."""
        self._kicks.put(sid)

    def _dispatch(self) -> None:
        while True:
            sid = self._kicks.get()
            if sid is None:
                return
            try:
                with self.send_lock(sid):
                    self._flush(sid)
            except Exception:
                log.exception("sending the queued tasks of session %s failed", sid)

    def _flush(self, sid: str) -> None:
        """Send the session's held tasks, oldest first, while its backend is ready. Called
        with the session's send lock held."""
        while True:
            with self._lock:
                s = self.sessions.get(sid)
                b = self.current(s) if s else None
                if b is None or b.state != B_READY:
                    return
                todo = [t for t in self.unfinished(sid) if not t.backend_id]
                if not todo:
                    return
                t = todo[0]
            status, _ = self._send(t, synchronous=False)
            if status not in (202, 409) + REFUSED:  # a refused task failed; go on
                return

    def _send(self, t: Task, synchronous: bool) -> tuple[int, dict[str, Any]]:
        """POST one task to the session's current backend (send lock held). On 202 the task
        is mapped to the backend's task id; a refusal (:data:`REFUSED`, or 409 from a backend that
        is not shutting down) is returned when ``synchronous``, and fails the task otherwise;
        anything else leaves it held (status 0 returned)."""
        with self._lock:
            s = self.sessions[t.session_id]
            b = self.current(s)
            if b is None or b.state != B_READY or t.ended:
                return 0, {"error": "no ready backend"}
            address, secret, bid = b.address, b.secret, b.backend_id
        status, answer = self.client.call("POST", address, "/tasks", secret,
                                          {"type": t.type, "params": t.params})
        with self._lock:
            accepted = status == 202 and isinstance(answer.get("task_id"), str)
            if accepted:
                t.backend_id, t.backend_task_id = bid, answer["task_id"]
                t.attempts += 1
                t.message = "sent to the backend" if t.attempts == 1 else \
                    f"sent to the session's new backend (attempt {t.attempts})"
                self._by_backend_task[(bid, t.backend_task_id)] = t.task_id
                self.store.put_task(t)
                if not synchronous:
                    self.hub.publish(t.session_id, "task", t.summary())
                log.info("task %s (%s) of session %s forwarded to backend %s as %s",
                         t.task_id, t.type, t.session_id, bid, t.backend_task_id)
                return 202, answer
        refused = status in REFUSED
        if status == 409:  # a conflict with the task, or the backend shuts down: ask which
            h_status, health = self.client.call("GET", address, "/health", secret)
            refused = h_status == 200 and health.get("status") == "ok"
        with self._lock:
            if refused:
                if not synchronous:
                    self.end_task(t, T_FAILED, answer.get("error") or f"refused ({status})",
                                   "the backend refused the task")
                log.info("task %s (%s) of session %s refused by backend %s: %s %s", t.task_id,
                         t.type, t.session_id, bid, status, answer.get("error"))
                return status, answer
            log.warning("task %s of session %s not accepted by backend %s (%s: %s); held",
                        t.task_id, t.session_id, bid, status, answer.get("error"))
            if status == 409:  # the backend shuts down: wait for the next one
                b.state = B_DRAINING if b.state == B_READY else b.state
                self.store.put_backend(b)
                return 0, answer
            return status, answer

    def end_task(self, t: Task, state: str, error: str | None, message: str,
                 result: Any = None) -> None:
        """End ``t`` in ``state`` (done, failed, cancelled) and publish its result."""
        t.state, t.error, t.message, t.finished = state, error, message, self.clock()
        if result is not None:
            t.result = result
        if state == T_DONE:
            t.progress = 100
        s = self.sessions.get(t.session_id)
        if s is not None:
            s.last_activity = self.clock()
        log.info("task %s (%s) of session %s ended: %s%s", t.task_id, t.type, t.session_id,
                 state, f" ({error})" if error else "")
        self.emit_task(t, ended=True)
        self._prune(t.session_id)

    def requeue(self, t: Task, message: str, result: Any = None) -> None:
        """Hold ``t`` again for the session's next backend (after interruption or renewal)."""
        self.forget_backend_task(t)
        t.backend_id, t.backend_task_id, t.started = "", "", False
        t.state, t.message = T_QUEUED, message
        if t.type == "random" and isinstance(result, dict) and result.get("folder") and \
                "folder" not in t.params:
            t.params = {**t.params, "folder": result["folder"]}  # resumes where it stopped
        self.emit_task(t)
