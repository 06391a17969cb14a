"""The monitor thread: one round of watching (:meth:`Monitor.tick`) every ``interval_s`` s.

One tick asks the scheduler for the state of every live backend job in one query, so a
backend killed mid-task (``kill -9``, ``scancel``, a node failure) is noticed within
``interval_s`` plus the scheduler's own delay, well inside 10 s with the default 2 s. It acts
on the states' structured fields (final, ``stuck``, ``timed_out``), never on their words: an
ended job fails or re-queues its tasks and may give its session a fresh backend, a job stuck
pending is cancelled and fails its session. Then each session's clock: the idle timeout,
renewal before its backend's time limit, held tasks to send again; then the queue of sessions
waiting for a backend slot. The records change through the
:class:`~master_daemon.manager.Manager`'s operations, under its lock. A failing tick is logged
and the next one runs anyway.
"""
from __future__ import annotations

import logging
import threading
import time

from jobs.scheduler import JobState, JobStatus, SchedulerError
from master_daemon.manager import Manager
from master_daemon.models import (B_ENDED, B_READY, FAILED, READY, STARTING, STOPPED,
                                  T_FAILED, Backend, Session)

log = logging.getLogger("ligan.daemon.monitor")


class Monitor:
    """Watches the jobs and sessions of ``manager`` on a thread of its own."""

    def __init__(self, manager: Manager, interval_s: float = 2.0) -> None:
        self.manager = manager
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (its first tick at once)."""
        self._thread = threading.Thread(target=self._run, name="ligan-daemon-monitor",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("monitor tick failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stop the thread after its tick in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def tick(self) -> None:
        """One round of watching: job states, stuck jobs, idle sessions, renewal, the queue."""
        m = self.manager
        with m.lock:
            live = [b for b in m.backends.values() if b.live and b.job_id]
        states: dict[str, JobState] = {}
        if live:
            try:
                states = m.scheduler.states([b.job_id for b in live])
            except SchedulerError as e:
                log.warning("asking the scheduler for job states failed: %s", e)
        to_cancel: list[Backend] = []
        with m.lock:
            now = m.clock()
            for b in live:
                st = states.get(b.job_id)
                if st is None or not b.live:
                    continue
                self._observe(b, st, now, to_cancel)
            for s in list(m.sessions.values()):
                self._check_session(s, now, to_cancel)
            m.schedule()
        for b in to_cancel:
            m.cancel_job(b)

    def _observe(self, b: Backend, st: JobState, now: float, to_cancel: list[Backend]) -> None:
        """Act on one observation of the job of ``b``: it runs, ended, is stuck pending or
        still waits (its words become the starting session's reason)."""
        m = self.manager
        s = m.sessions.get(b.session_id)
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
            m.store.put_backend(b)
            if s is not None and s.backend_id == b.backend_id:
                m.session_failed(s, why)
            return
        if s is not None and s.backend_id == b.backend_id and s.state == STARTING:
            reason = st.reason or st.status.value.lower()
            if changed or reason != s.reason:
                s.move(STARTING, reason)
                m.emit_session(s)
        elif changed:
            m.store.put_backend(b)

    def _backend_ended(self, b: Backend, st: JobState) -> None:
        """The job of ``b`` ended (as the scheduler says): fail or re-queue its tasks, and
        give the session a fresh backend if tasks are waiting."""
        m = self.manager
        now = m.clock()
        was_ready = b.ready_at is not None
        b.state, b.ended_at = B_ENDED, now
        b.reason = st.reason or st.status.value.lower()
        m.store.put_backend(b)
        planned = bool(b.stop_requested) or st.timed_out
        level = logging.INFO if planned or st.ok else logging.WARNING
        log.log(level, "backend %s (job %s) of session %s ended: %s%s", b.backend_id, b.job_id,
                b.session_id, st.status.value, f", {st.reason}" if st.reason else "")
        s = m.sessions.get(b.session_id)
        if s is None:
            return
        words = f"the backend stopped: {b.reason}"
        for t in m.unfinished(s.session_id):
            if t.backend_id != b.backend_id:
                continue
            if t.started and not planned:
                m.forget_backend_task(t)
                m.end_task(t, T_FAILED, words, "failed: the backend stopped")
            else:
                m.requeue(t, "waiting for the session's next backend")
        if s.backend_id != b.backend_id:
            return
        s.backend_id = ""
        if s.state == STOPPED:
            m.emit_session(s)
            return
        successor = m.backends.get(b.renewed_by) if b.renewed_by else None
        if successor is not None and successor.live:
            if successor.state == B_READY:
                s.move(READY, "", backend_id=successor.backend_id)
            else:
                s.move(STARTING, "renewing: the new backend is starting",
                       backend_id=successor.backend_id)
            m.emit_session(s)
            m.kick(s.session_id)
            return
        if not was_ready:
            m.session_failed(s, f"the backend could not start: {b.reason}")
            return
        if any(not t.backend_id for t in m.unfinished(s.session_id)):
            m.want_backend(s, f"the previous backend ended ({b.reason}); a new one "
                              f"is starting")
        else:
            s.move(FAILED, words)
            m.emit_session(s)

    def _stop_idle(self, s: Session, reason: str, to_cancel: list[Backend]) -> None:
        """Stop an unused session: its live backends are cancelled, ``reason`` says why."""
        m = self.manager
        for b in m.backends.values():
            if b.session_id == s.session_id and b.live:
                b.stop_requested = reason
                m.store.put_backend(b)
                to_cancel.append(b)
        s.move(STOPPED, reason, backend_id="")
        log.info("session %s stopped: %s", s.session_id, reason)
        m.emit_session(s)

    def _check_session(self, s: Session, now: float, to_cancel: list[Backend]) -> None:
        """The session's clock: a vanished backend, the idle timeout, a held task to send
        again, renewal before its backend's time limit."""
        m = self.manager
        cur = m.current(s)
        unfinished = m.unfinished(s.session_id)
        if cur is None:
            if s.state in (READY, STARTING):  # its backend vanished from our records
                s.move(FAILED, s.reason or "the backend is gone")
                m.emit_session(s)
            return
        idle = m.settings.session_idle_timeout
        since = max(s.last_activity, cur.ready_at or 0.0)
        if idle and cur.state == B_READY and not unfinished and now - since >= idle:
            self._stop_idle(s, f"idle for {int(now - since)} s (limit {int(idle)} s)",
                            to_cancel)
            return
        if cur.state == B_READY and any(not t.backend_id for t in unfinished):
            m.kick(s.session_id)  # a send that failed for a passing reason: try again
        before = m.settings.backend_renew_before
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
            m.submit_backend(s, replaces=cur)
