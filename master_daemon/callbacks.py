"""The backends' callbacks: ``POST /callbacks/<backend id>/<kind>``.

A backend reports ``on-ready`` once it serves (or that it could not start), ``on-progress``
while a task runs and one ``on-result`` per task (docs/backend.md). :class:`Callbacks` checks
the per-job secret, maps the backend's task id to the daemon's task and changes the records
through the :class:`~master_daemon.manager.Manager`'s operations, under its lock: a ready
backend makes its session ready (or finishes a renewal), progress is relayed to the browser, a
result ends the task or, when ``interrupted``, re-queues it for the session's next backend.
"""
from __future__ import annotations

import logging
from hmac import compare_digest
from typing import Any

from jobs.scheduler import JobStatus
from master_daemon.manager import Manager
from master_daemon.models import (B_DRAINING, B_ENDED, B_READY, QUEUED, READY, STOPPED,
                                  T_CANCELLED, T_DONE, T_FAILED, T_QUEUED, T_RUNNING, Backend,
                                  Task)

log = logging.getLogger("ligan.daemon")


class Callbacks:
    """Handles the callbacks of the backends ``manager`` started."""

    def __init__(self, manager: Manager) -> None:
        self.m = manager

    def handle(self, bid: str, kind: str, authorization: str, body: Any
               ) -> tuple[int, dict[str, Any]]:
        """``POST /callbacks/<bid>/<kind>`` from a backend: the status and JSON answer."""
        m = self.m
        with m.lock:
            b = m.backends.get(bid)
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
        with m.send_lock(b.session_id):
            with m.lock:
                t = m.task_on_backend(bid, str(body.get("task_id")))
                if t is None:
                    return 404, {"error": f"no task {body.get('task_id')!r} on backend {bid}"}
                if kind == "on-progress":
                    return self._on_progress(t, body)
                return self._on_result(b, t, body)

    def _on_ready(self, b: Backend, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The backend started (``status`` ready, its address) or could not (its error)."""
        m = self.m
        old_to_stop: Backend | None = None
        with m.lock:
            s = m.sessions.get(b.session_id)
            if b.state == B_ENDED or s is None:
                return 200, {"status": "ignored: the job already ended"}
            now = m.clock()
            if body.get("status") != "ready":
                why = str(body.get("error") or "the backend could not start")
                b.state, b.reason, b.ended_at = B_ENDED, why, now
                m.store.put_backend(b)
                log.warning("backend %s (job %s) of session %s failed to start: %s",
                            b.backend_id, b.job_id, b.session_id, why)
                if s.backend_id == b.backend_id:
                    m.session_failed(s, f"the backend could not start: {why}")
                elif b.replaces and b.replaces in m.backends:
                    m.backends[b.replaces].renewed_by = "failed"
                    m.store.put_backend(m.backends[b.replaces])
                m.schedule()
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
            old = m.backends.get(b.replaces) if b.replaces else None
            if old is not None and old.live and s.backend_id == old.backend_id:
                # Renewal: new tasks go to the new backend; the old one finishes its running
                # task in its grace period and reports the rest interrupted (re-queued here).
                s.backend_id = b.backend_id
                old.state = B_DRAINING
                old.stop_requested = f"renewed by {b.backend_id}"
                m.store.put_backend(old)
                old_to_stop = old
                log.info("session %s renewed: backend %s replaces %s", s.session_id,
                         b.backend_id, old.backend_id)
            m.store.put_backend(b)
            if s.backend_id == b.backend_id and s.state != STOPPED:
                s.move(READY, "")
                m.emit_session(s)
                m.kick(s.session_id)
            elif s.backend_id != b.backend_id:
                b.stop_requested = "the session no longer needs it"
                old_to_stop = b
        if old_to_stop is not None:
            m.cancel_job(old_to_stop)
        return 200, {"status": "ok"}

    def _on_progress(self, t: Task, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A running task's progress: relayed as a ``progress`` event."""
        m = self.m
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
            m.emit_task(t)
        m.hub.publish(t.session_id, "progress",
                      {"task_id": t.task_id, "progress": t.progress, "message": t.message})
        return 200, {"status": "ok"}

    def _on_result(self, b: Backend, t: Task, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """How a task ended; ``interrupted`` re-queues it for the session's next backend."""
        m = self.m
        state = body.get("state")
        if t.ended:
            return 200, {"status": "ignored: the task already ended"}
        m.forget_backend_task(t)
        result, error = body.get("result"), body.get("error")
        if state == "interrupted":
            log.info("task %s of session %s interrupted on backend %s: re-queued", t.task_id,
                     t.session_id, b.backend_id)
            m.requeue(t, "interrupted; continues on the session's next backend", result)
            s = m.sessions.get(t.session_id)
            if s is not None:
                cur = m.current(s)
                if cur is not None and cur.state == B_READY:
                    m.kick(s.session_id)
                elif cur is None and s.state not in (QUEUED, STOPPED):
                    m.want_backend(s, "the backend stopped; a new one is starting")
            return 200, {"status": "re-queued"}
        if state not in (T_DONE, T_FAILED, T_CANCELLED):
            return 400, {"error": f"unknown task state {state!r}"}
        m.end_task(t, state, str(error) if error else None,
                   {"done": "done", "failed": "failed", "cancelled": "cancelled"}[state],
                   result)
        return 200, {"status": "ok"}

