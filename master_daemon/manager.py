"""Sessions, their backend jobs and their tasks: everything the daemon decides.

The :class:`Manager` owns the in-memory records (written through to SQLite) behind one lock.
Request threads call it for the internal API and for callbacks; the monitor thread calls
:meth:`Manager.tick` every couple of seconds to watch the scheduler (dead and stuck jobs), the
idle timeout, renewal before the time limit and the queue of sessions waiting for a backend
slot. Network calls to backends are made outside the lock (a per-session send lock keeps a
session's tasks in order), so a slow backend never stalls other sessions.

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
from hmac import compare_digest
from pathlib import Path
from typing import Any, Callable

from jobs.scheduler import (JobSpec, JobState, JobStatus, Scheduler, SchedulerError,
                            SubmitError, fit_grace)
from master_daemon.backend_client import BackendClient
from master_daemon.events import EventHub
from master_daemon.models import (B_DRAINING, B_ENDED, B_READY, FAILED, QUEUED,
                                  READY, STARTING, STOPPED, T_CANCELLED, T_DONE, T_FAILED,
                                  T_QUEUED, T_RUNNING, Backend, Session, Task)
from master_daemon.store import Store

log = logging.getLogger("ligan.daemon")
CHECKOUT = Path(__file__).resolve().parent.parent
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
TASK_LIST_LIMIT = 100


# Backend answers that refuse a task for good: sending it again cannot help (a malformed or
# too large body, a face that does not exist, an unusable value), so the task fails with the
# backend's reason instead of being held and re-sent.
REFUSED = (400, 404, 413, 422)

class ApiError(Exception):
    """An answer other than success: ``status`` and a readable ``error``."""

    def __init__(self, status: int, error: str, body: dict[str, Any] | None = None):
        super().__init__(error)
        self.status = status
        self.body = body or {"error": error}


class Manager:
    """The daemon's sessions, backends and tasks.

    ``callback_base`` (``http://host:port/callbacks``) must be set before the first backend is
    submitted; it is known once the HTTP server has bound its port.
    """

    def __init__(self, settings: Any, scheduler: Scheduler, store: Store, hub: EventHub,
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
                self._cancel_job(b)

    # -- helpers -----------------------------------------------------------------------------
    def _send_lock(self, sid: str) -> threading.RLock:
        with self._lock:
            return self._send_locks.setdefault(sid, threading.RLock())

    def _session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            raise ApiError(404, f"no session {sid!r}: start it with PUT /api/sessions/{sid}")
        return s

    def _current(self, s: Session) -> Backend | None:
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

    def _emit_session(self, s: Session) -> None:
        self.store.put_session(s)
        self._published_position[s.session_id] = self._queue_position(s)
        self.hub.publish(s.session_id, "session", self.session_dict(s))

    def _emit_task(self, t: Task, *names: str) -> None:
        self.store.put_task(t)
        data = t.public()
        for name in names or ("task",):
            self.hub.publish(t.session_id, name, data)

    def _unfinished(self, sid: str) -> list[Task]:
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
        """``PUT /api/sessions/<sid>``: make sure the session has (or waits for) a backend."""
        if not SESSION_ID.match(sid):
            raise ApiError(400, "a session id is 1-128 letters, digits and '._:@-', "
                                f"got {sid[:60]!r}")
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
            if self._current(s) is None and s.state != QUEUED:
                self._want_backend(s, "")
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
            for t in self._unfinished(sid):
                self._end_task(t, T_CANCELLED, error=None, message=f"cancelled: {reason}")
            s.state, s.reason, s.queued_at, s.backend_id = STOPPED, reason, None, ""
            log.info("session %s stopped: %s", sid, reason)
            self._emit_session(s)
        for b in to_cancel:
            self._cancel_job(b)
        with self._lock:
            self._schedule()
            return self.session_dict(s)

    def create_task(self, sid: str, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /api/sessions/<sid>/tasks``: 202 and the task, or the backend's refusal."""
        if not isinstance(body, dict):
            raise ApiError(400, 'the body must be a JSON object {"type": ..., "params": {...}}')
        ttype, params = body.get("type"), body.get("params", {})
        extra = set(body) - {"type", "params"}
        if not isinstance(ttype, str) or not ttype:
            raise ApiError(400, "'type' must be the name of a task type, e.g. \"random\"")
        if not isinstance(params, dict):
            raise ApiError(400, "'params' must be a JSON object")
        if extra:
            raise ApiError(400, f"unknown keys {sorted(extra)}: a task is {{type, params}}")
        with self._lock:
            s = self._session(sid)
            now = self.clock()
            t = Task(task_id="t" + secrets.token_hex(8), session_id=sid, type=ttype,
                     params=params, created=now, message="waiting for the session's backend")
            s.last_activity = now
            b = self._current(s)
            ready = b is not None and b.state == B_READY
        if ready:
            # Under the send lock until the task's event is out: a callback about it waits for
            # that lock, so the browser never sees its progress before the task itself.
            with self._send_lock(sid):
                self._flush(sid)  # older queued tasks first
                with self._lock:
                    self._add_task(t)
                status, answer = self._send(t, synchronous=True)
                with self._lock:
                    if status in REFUSED + (409,):
                        self._drop_task(t)
                        return status, answer
                    if t.backend_id:
                        self.hub.publish(sid, "task", t.public())
                    else:
                        self._emit_task(t)
                    return 202, t.public()
        with self._lock:
            self._add_task(t)
            self._emit_task(t)
            if self._current(s) is None and s.state != QUEUED:
                self._want_backend(s, s.reason if s.state == FAILED else "")
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
            return {"tasks": [t.public() for t in mine[:TASK_LIST_LIMIT]]}

    def cancel_task(self, sid: str, tid: str) -> tuple[int, dict[str, Any]]:
        """``DELETE …/tasks/<tid>``: queued here: cancelled at once; sent: DELETE on the
        backend, which answers with an on-result (``cancelled`` or how it ended)."""
        with self._send_lock(sid):
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
                    self._end_task(t, T_CANCELLED, None, "cancelled")
                    return 202, t.public()
                target = (b.address, b.secret, t.backend_task_id)
            status, answer = self.client.call("DELETE", target[0], f"/tasks/{target[2]}",
                                              target[1])
            with self._lock:
                if status == 0 and not t.ended:  # the backend is gone: nothing will run it
                    self._end_task(t, T_CANCELLED, None, "cancelled")
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
                for t in self._unfinished(s.session_id):
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
    def _want_backend(self, s: Session, reason: str) -> None:
        """Put the session in the queue for a backend slot, then start what fits."""
        s.state, s.reason, s.queued_at, s.backend_id = QUEUED, reason, self.clock(), ""
        self._emit_session(s)
        self._schedule()

    def _schedule(self) -> None:
        """Give free slots to queued sessions, oldest first; publish changed positions."""
        waiting = self._queue()
        free = self.settings.max_backends - self._slots_used()
        for s in waiting[:max(0, free)]:
            self._submit(s)
        for s in self._queue():
            if self._published_position.get(s.session_id) != self._queue_position(s):
                self._emit_session(s)

    def _submit(self, s: Session, replaces: Backend | None = None) -> Backend | None:
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
            s.queued_at = None
            self._session_failed(s, f"the backend job could not be submitted: {why}")
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
            s.state, s.backend_id, s.queued_at = STARTING, bid, None
            s.reason = "submitted"
            self._emit_session(s)
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

    def _cancel_job(self, b: Backend) -> None:
        if not b.job_id:
            return
        try:
            self.scheduler.cancel(b.job_id)
            log.info("backend %s (job %s) of session %s: cancel sent (%s)", b.backend_id,
                     b.job_id, b.session_id, b.stop_requested or "no reason")
        except SchedulerError as e:
            log.warning("cancelling job %s failed: %s", b.job_id, e)

    def _session_failed(self, s: Session, reason: str) -> None:
        """The session's backend could not start: fail it and its waiting tasks (the next PUT
        or task tries again), so a broken bundle does not loop."""
        s.state, s.reason, s.backend_id, s.queued_at = FAILED, reason, "", None
        for t in self._unfinished(s.session_id):
            if not t.backend_id:
                self._end_task(t, T_FAILED, reason, "the backend could not start")
        log.warning("session %s failed: %s", s.session_id, reason)
        self._emit_session(s)

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
                with self._send_lock(sid):
                    self._flush(sid)
            except Exception:
                log.exception("sending the queued tasks of session %s failed", sid)

    def _flush(self, sid: str) -> None:
        """Send the session's held tasks, oldest first, while its backend is ready. Called
        with the session's send lock held."""
        while True:
            with self._lock:
                s = self.sessions.get(sid)
                b = self._current(s) if s else None
                if b is None or b.state != B_READY:
                    return
                todo = [t for t in self._unfinished(sid) if not t.backend_id]
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
            b = self._current(s)
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
                    self.hub.publish(t.session_id, "task", t.public())
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
                    self._end_task(t, T_FAILED, answer.get("error") or f"refused ({status})",
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

    def _end_task(self, t: Task, state: str, error: str | None, message: str,
                  result: Any = None) -> None:
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
        self._emit_task(t, "task", "result")
        self._prune(t.session_id)

    def _requeue(self, t: Task, message: str, result: Any = None) -> None:
        """Hold ``t`` again for the session's next backend (after interruption or renewal)."""
        self._by_backend_task.pop((t.backend_id, t.backend_task_id), None)
        t.backend_id, t.backend_task_id, t.started = "", "", False
        t.state, t.message = T_QUEUED, message
        if t.type == "random" and isinstance(result, dict) and result.get("folder") and \
                "folder" not in t.params:
            t.params = {**t.params, "folder": result["folder"]}  # resumes where it stopped
        self._emit_task(t)

    # -- callbacks ---------------------------------------------------------------------------
    def callback(self, bid: str, kind: str, authorization: str, body: Any
                 ) -> tuple[int, dict[str, Any]]:
        """``POST /callbacks/<bid>/<kind>`` from a backend."""
        with self._lock:
            b = self.backends.get(bid)
            if b is None:
                return 404, {"error": f"no backend job {bid!r}"}
        given = authorization[7:] if authorization.startswith("Bearer ") else ""
        if not compare_digest(given.encode(), b.secret.encode()):
            return 401, {"error": "wrong or missing per-job secret"}
        if kind not in ("on-ready", "on-progress", "on-result"):
            return 404, {"error": f"no callback {kind!r}: on-ready, on-progress or on-result"}
        if not isinstance(body, dict):
            return 400, {"error": "the body must be a JSON object"}
        if kind == "on-ready":
            return self._on_ready(b, body)
        # Let a send in progress record the backend's task id before looking it up.
        with self._send_lock(b.session_id):
            with self._lock:
                tid = self._by_backend_task.get((bid, str(body.get("task_id"))))
                t = self.tasks.get(tid) if tid else None
                if t is None:
                    return 404, {"error": f"no task {body.get('task_id')!r} on backend {bid}"}
                if kind == "on-progress":
                    return self._on_progress(t, body)
                return self._on_result(b, t, body)

    def _on_ready(self, b: Backend, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        old_to_stop: Backend | None = None
        with self._lock:
            s = self.sessions.get(b.session_id)
            if b.state == B_ENDED or s is None:
                return 200, {"status": "ignored: the job already ended"}
            now = self.clock()
            if body.get("status") != "ready":
                why = str(body.get("error") or "the backend could not start")
                b.state, b.reason, b.ended_at = B_ENDED, why, now
                self.store.put_backend(b)
                log.warning("backend %s (job %s) of session %s failed to start: %s",
                            b.backend_id, b.job_id, b.session_id, why)
                if s.backend_id == b.backend_id:
                    self._session_failed(s, f"the backend could not start: {why}")
                elif b.replaces and b.replaces in self.backends:
                    self.backends[b.replaces].renewed_by = "failed"
                    self.store.put_backend(self.backends[b.replaces])
                self._schedule()
                return 200, {"status": "noted"}
            b.address = str(body.get("address") or "")
            b.bundle_hash = str(body.get("bundle_hash") or "")
            b.precision = str(body.get("precision") or "")[:16]
            b.pid = body.get("pid") if isinstance(body.get("pid"), int) else None
            b.state, b.ready_at, b.reason = B_READY, now, ""
            b.job_state = JobStatus.RUNNING.value
            if b.started is None:
                b.started = b.submitted
                b.ends = b.started + b.time_limit_s
            log.info("backend %s (job %s) of session %s ready at %s after %.1f s",
                     b.backend_id, b.job_id, b.session_id, b.address, now - b.submitted)
            old = self.backends.get(b.replaces) if b.replaces else None
            if old is not None and old.live and s.backend_id == old.backend_id:
                # Renewal: new tasks go to the new backend; the old one finishes its running
                # task in its grace period and reports the rest interrupted (re-queued here).
                s.backend_id = b.backend_id
                old.state = B_DRAINING
                old.stop_requested = f"renewed by {b.backend_id}"
                self.store.put_backend(old)
                old_to_stop = old
                log.info("session %s renewed: backend %s replaces %s", s.session_id,
                         b.backend_id, old.backend_id)
            self.store.put_backend(b)
            if s.backend_id == b.backend_id and s.state != STOPPED:
                s.state, s.reason = READY, ""
                self._emit_session(s)
                self.kick(s.session_id)
            elif s.backend_id != b.backend_id:
                b.stop_requested = "the session no longer needs it"
                old_to_stop = b
        if old_to_stop is not None:
            self._cancel_job(old_to_stop)
        return 200, {"status": "ok"}

    def _on_progress(self, t: Task, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if t.ended:
            return 200, {"status": "ignored: the task already ended"}
        progress = body.get("progress")
        if isinstance(progress, (int, float)) and not isinstance(progress, bool):
            t.progress = max(0.0, min(100.0, float(progress)))
        if isinstance(body.get("message"), str):
            t.message = body["message"]
        t.started = True
        if t.state == T_QUEUED:
            t.state = T_RUNNING
            self._emit_task(t)
        self.hub.publish(t.session_id, "progress",
                         {"task_id": t.task_id, "progress": t.progress, "message": t.message})
        return 200, {"status": "ok"}

    def _on_result(self, b: Backend, t: Task, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = body.get("state")
        if t.ended:
            return 200, {"status": "ignored: the task already ended"}
        self._by_backend_task.pop((b.backend_id, t.backend_task_id), None)
        result, error = body.get("result"), body.get("error")
        if state == "interrupted":
            log.info("task %s of session %s interrupted on backend %s: re-queued", t.task_id,
                     t.session_id, b.backend_id)
            self._requeue(t, "interrupted; continues on the session's next backend", result)
            s = self.sessions.get(t.session_id)
            if s is not None:
                cur = self._current(s)
                if cur is not None and cur.state == B_READY:
                    self.kick(s.session_id)
                elif cur is None and s.state not in (QUEUED, STOPPED):
                    self._want_backend(s, "the backend stopped; a new one is starting")
            return 200, {"status": "re-queued"}
        if state not in (T_DONE, T_FAILED, T_CANCELLED):
            return 400, {"error": f"unknown task state {state!r}"}
        self._end_task(t, state, str(error) if error else None,
                       {"done": "done", "failed": "failed", "cancelled": "cancelled"}[state],
                       result)
        return 200, {"status": "ok"}

    # -- the monitor's work ------------------------------------------------------------------
    def tick(self) -> None:
        """One round of watching: job states, stuck jobs, idle sessions, renewal, the queue."""
        with self._lock:
            live = [b for b in self.backends.values() if b.live and b.job_id]
        states: dict[str, JobState] = {}
        if live:
            try:
                states = self.scheduler.states([b.job_id for b in live])
            except SchedulerError as e:
                log.warning("asking the scheduler for job states failed: %s", e)
        to_cancel: list[Backend] = []
        with self._lock:
            now = self.clock()
            for b in live:
                st = states.get(b.job_id)
                if st is None or not b.live:
                    continue
                self._observe(b, st, now, to_cancel)
            for s in list(self.sessions.values()):
                self._check_session(s, now, to_cancel)
            self._schedule()
        for b in to_cancel:
            self._cancel_job(b)

    def _observe(self, b: Backend, st: JobState, now: float, to_cancel: list[Backend]) -> None:
        s = self.sessions.get(b.session_id)
        changed = st.status.value != b.job_state
        b.job_state = st.status.value
        if st.status is JobStatus.RUNNING and b.started is None:
            b.started = now
            b.ends = now + b.time_limit_s
        if st.final:
            self._backend_ended(b, st)
            return
        if st.stuck:
            why = f"the job cannot start: {st.reason}"
            log.warning("backend %s (job %s) of session %s stuck pending: %s",
                        b.backend_id, b.job_id, b.session_id, st.reason)
            b.state, b.reason, b.ended_at = B_ENDED, why, now
            b.stop_requested = why
            to_cancel.append(b)
            self.store.put_backend(b)
            if s is not None and s.backend_id == b.backend_id:
                self._session_failed(s, why)
            return
        if s is not None and s.backend_id == b.backend_id and s.state == STARTING:
            reason = st.reason or st.status.value.lower()
            if changed or reason != s.reason:
                s.reason = reason
                self._emit_session(s)
        elif changed:
            self.store.put_backend(b)

    def _backend_ended(self, b: Backend, st: JobState) -> None:
        """The job of ``b`` ended (as the scheduler says): fail or re-queue its tasks, and
        give the session a fresh backend if tasks are waiting."""
        now = self.clock()
        was_ready = b.ready_at is not None
        b.state, b.ended_at = B_ENDED, now
        b.reason = st.reason or st.status.value.lower()
        self.store.put_backend(b)
        planned = bool(b.stop_requested) or st.timed_out
        level = logging.INFO if planned or st.ok else logging.WARNING
        log.log(level, "backend %s (job %s) of session %s ended: %s%s", b.backend_id, b.job_id,
                b.session_id, st.status.value, f", {st.reason}" if st.reason else "")
        s = self.sessions.get(b.session_id)
        if s is None:
            return
        words = f"the backend stopped: {b.reason}"
        for t in self._unfinished(s.session_id):
            if t.backend_id != b.backend_id:
                continue
            if t.started and not planned:
                self._by_backend_task.pop((t.backend_id, t.backend_task_id), None)
                self._end_task(t, T_FAILED, words, "failed: the backend stopped")
            else:
                self._requeue(t, "waiting for the session's next backend")
        if s.backend_id != b.backend_id:
            return
        s.backend_id = ""
        if s.state == STOPPED:
            self._emit_session(s)
            return
        successor = self.backends.get(b.renewed_by) if b.renewed_by else None
        if successor is not None and successor.live:
            s.backend_id = successor.backend_id
            s.state = READY if successor.state == B_READY else STARTING
            s.reason = "" if s.state == READY else "renewing: the new backend is starting"
            self._emit_session(s)
            self.kick(s.session_id)
            return
        if not was_ready:
            self._session_failed(s, f"the backend could not start: {b.reason}")
            return
        if any(not t.backend_id for t in self._unfinished(s.session_id)):
            self._want_backend(s, f"the previous backend ended ({b.reason}); a new one "
                                  f"is starting")
        else:
            s.state, s.reason = FAILED, words
            self._emit_session(s)

    def _stop_idle(self, s: Session, reason: str, to_cancel: list[Backend]) -> None:
        """Stop an unused session: its live backends are cancelled, ``reason`` says why."""
        for b in self.backends.values():
            if b.session_id == s.session_id and b.live:
                b.stop_requested = reason
                self.store.put_backend(b)
                to_cancel.append(b)
        s.state, s.reason, s.queued_at, s.backend_id = STOPPED, reason, None, ""
        log.info("session %s stopped: %s", s.session_id, reason)
        self._emit_session(s)

    def _check_session(self, s: Session, now: float, to_cancel: list[Backend]) -> None:
        cur = self._current(s)
        unfinished = self._unfinished(s.session_id)
        if cur is None:
            if s.state in (READY, STARTING):  # its backend vanished from our records
                s.state, s.reason = FAILED, s.reason or "the backend is gone"
                self._emit_session(s)
            return
        idle = self.settings.session_idle_timeout
        since = max(s.last_activity, cur.ready_at or 0.0)
        if idle and cur.state == B_READY and not unfinished and now - since >= idle:
            self._stop_idle(s, f"idle for {int(now - since)} s (limit {int(idle)} s)",
                            to_cancel)
            return
        if cur.state == B_READY and any(not t.backend_id for t in unfinished):
            self.kick(s.session_id)  # a send that failed for a passing reason: try again
        before = self.settings.backend_renew_before
        renew_at = (cur.ends or float("inf")) - before
        if cur.state == B_READY and not cur.renewed_by and now >= renew_at:
            if idle and not unfinished and now - s.last_activity >= before:
                # Nobody used the session for a whole renewal window: let it go instead of
                # renewing an unused backend for ever (each replacement would restart the idle
                # clock); the next task starts a fresh one. An idle timeout of 0 means the
                # operator wants sessions kept, so they are renewed.
                self._stop_idle(s, f"idle for {int(now - s.last_activity)} s when its backend "
                                   f"neared its time limit (not renewed)", to_cancel)
                return
            log.info("backend %s of session %s ends at %s: submitting its replacement",
                     cur.backend_id, s.session_id, time.strftime("%H:%M:%S",
                                                                  time.localtime(cur.ends)))
            self._submit(s, replaces=cur)
