"""The daemon's state in SQLite: sessions, backend jobs, tasks, the event log and the revoked
event-stream keys.

One database file (``$LIGAN_HOME/var/master_daemon.sqlite3``, mode 0600 because it holds the
per-job secrets) in WAL mode, so readers never wait for the writer and a crash loses at most
the last write. Records are stored as JSON next to the columns used to find them; the daemon
keeps the live records in memory and writes every change through (``put_*``), and reads them
back only when it starts (``load_*``). The event log keeps the newest ``keep_events`` events of
each session, for ``Last-Event-ID`` replay across restarts. Revoked stream keys are kept until
the tokens that carry them have expired.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable

from master_daemon.models import Backend, Session, Task, from_row, to_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backends (backend_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
    job_id TEXT, state TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,
    created REAL NOT NULL, state TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, created);
CREATE TABLE IF NOT EXISTS events (session_id TEXT NOT NULL, event_id INTEGER NOT NULL,
    name TEXT NOT NULL, data TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (session_id, event_id));
CREATE TABLE IF NOT EXISTS revoked_keys (key TEXT PRIMARY KEY, until REAL NOT NULL);
"""


class Store:
    """Thread-safe access to the database (one connection behind a lock: SQLite serialises
    writers anyway, and the daemon's writes are small)."""

    def __init__(self, path: str | Path, keep_events: int = 1000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(self.path, 0o600)
        self.keep_events = keep_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for suffix in ("-wal", "-shm"):
            side = Path(str(self.path) + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # -- records -----------------------------------------------------------------------------
    def put_session(self, s: Session) -> None:
        self._exec("INSERT OR REPLACE INTO sessions VALUES (?, ?)",
                   (s.session_id, json.dumps(to_row(s))))

    def put_backend(self, b: Backend) -> None:
        self._exec("INSERT OR REPLACE INTO backends VALUES (?, ?, ?, ?, ?)",
                   (b.backend_id, b.session_id, b.job_id, b.state, json.dumps(to_row(b))))

    def put_task(self, t: Task) -> None:
        self._exec("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)",
                   (t.task_id, t.session_id, t.created, t.state, json.dumps(to_row(t))))

    def get_task(self, task_id: str) -> Task | None:
        rows = self._exec("SELECT data FROM tasks WHERE task_id = ?", (task_id,))
        return from_row(Task, json.loads(rows[0][0])) if rows else None

    def load_sessions(self) -> list[Session]:
        return [from_row(Session, json.loads(d)) for (d,) in
                self._exec("SELECT data FROM sessions")]

    def load_backends(self, live_only: bool = True) -> list[Backend]:
        sql = "SELECT data FROM backends" + (" WHERE state != 'ended'" if live_only else "")
        return [from_row(Backend, json.loads(d)) for (d,) in self._exec(sql)]

    def load_tasks(self, per_session: int = 100) -> list[Task]:
        """Every unfinished task and the newest ``per_session`` tasks of every session."""
        rows = self._exec(
            "SELECT data FROM tasks WHERE state IN ('queued', 'running') OR task_id IN ("
            " SELECT task_id FROM (SELECT task_id, ROW_NUMBER() OVER (PARTITION BY session_id"
            " ORDER BY created DESC) AS n FROM tasks) WHERE n <= ?)", (per_session,))
        return [from_row(Task, json.loads(d)) for (d,) in rows]

    # -- events ------------------------------------------------------------------------------
    def add_events(self, rows: list[tuple[str, int, str, str, float]]) -> None:
        """Many events in one transaction (the event hub's writer thread batches them)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?)",
                                     rows)
                for sid, event_id, *_ in rows:
                    if event_id % 200 == 0:  # keep the log bounded without a query per event
                        self._db.execute("DELETE FROM events WHERE session_id = ? AND "
                                         "event_id <= ?", (sid, event_id - self.keep_events))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_events(self, session_id: str) -> list[tuple[int, str, str, float]]:
        rows = self._exec("SELECT event_id, name, data, at FROM events WHERE session_id = ?"
                          " ORDER BY event_id DESC LIMIT ?", (session_id, self.keep_events))
        return list(reversed(rows))

    # -- revoked stream keys -----------------------------------------------------------------
    def add_revoked_keys(self, keys: list[str], until: float, now: float) -> None:
        """Revoke ``keys`` until ``until``; forget the revocations that ended before ``now``."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM revoked_keys WHERE until <= ?", (now,))
                self._db.executemany("INSERT OR REPLACE INTO revoked_keys VALUES (?, ?)",
                                     [(k, until) for k in keys])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_revoked_keys(self, now: float) -> dict[str, float]:
        """The keys revoked still at ``now``, with when each revocation ends."""
        return dict(self._exec("SELECT key, until FROM revoked_keys WHERE until > ?", (now,)))
