"""Accounts, login sessions and lineups in SQLite (WAL mode) under ``LIGAN_HOME``.

SQLite suits the frontend: one process writes (the daemon runs exactly one frontend), the data
is small, and ``LIGAN_HOME`` is a local disk of the login node (not the shared results folder).
A new connection per operation keeps the waitress threads independent.
"""
from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id);
CREATE TABLE IF NOT EXISTS lineups (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS lineups_by_user ON lineups(user_id, updated);
"""

_hasher = PasswordHasher()
# Verified against when the user name is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("not a password of anyone")

#: A login lasts this long from the moment of login (the cookie's PERMANENT_SESSION_LIFETIME).
SESSION_LIFETIME_S = 12 * 3600
#: ``last_seen`` is written at most this often per login (not on every request).
LAST_SEEN_EVERY_S = 60.0
USER_COLUMNS = "users.id, users.name, users.is_admin, users.created, users.disabled"

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class StoreError(ValueError):
    """A user-facing problem with stored data (duplicate name, bad name or password)."""


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 64 or not set(name) <= NAME_CHARS:
        raise StoreError("A user name has 1-64 characters: letters, digits, '.', '_', '-', '@'.")
    return name


# zxcvbn's scale: 3 = "safely unguessable" (about 10^8 guesses or more), the least a password
# guarding suspects' photos should take.
MIN_PASSWORD_SCORE = 3


def check_password(password: str, name: str = "") -> str:
    """``password`` if it is long and hard enough to guess, else a StoreError that says why.

    Strength is zxcvbn's estimate (common passwords, dictionary words, names, dates, keyboard
    patterns and repeats, and the user's own name), not a rule about character classes.
    """
    if not isinstance(password, str) or len(password) < 8:
        raise StoreError("A password needs at least 8 characters.")
    if len(password) > 1024:
        raise StoreError("A password may have at most 1024 characters.")
    from zxcvbn import zxcvbn

    # zxcvbn's cost grows with length; the first 100 characters decide for long passphrases.
    verdict = zxcvbn(password[:100], user_inputs=[name] if name else [])
    if verdict["score"] < MIN_PASSWORD_SCORE:
        feedback = verdict["feedback"]
        why = feedback.get("warning") or "It is too easy to guess."
        hint = " ".join(feedback.get("suggestions") or [])
        raise StoreError(f"That password is too weak: {why.rstrip('.')}. "
                         f"{hint or 'Use a few uncommon words or a longer phrase.'}")
    return password


class Store:
    """The frontend's database: users (Argon2id password hashes), their login sessions and
    their lineups."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            columns = {row["name"] for row in db.execute("PRAGMA table_info(users)")}
            if columns and "disabled" not in columns:  # made before accounts could be disabled
                db.execute("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            with db:
                yield db
        finally:
            db.close()

    # -- users --------------------------------------------------------------------------------

    def add_user(self, name: str, password: str, is_admin: bool = False) -> dict:
        """Create a user; raises :class:`StoreError` for a taken or malformed name."""
        name = check_name(name)
        password_hash = _hasher.hash(check_password(password, name))
        try:
            with self._db() as db:
                cur = db.execute("INSERT INTO users (name, password_hash, is_admin, created) "
                                 "VALUES (?, ?, ?, ?)", (name, password_hash, int(is_admin),
                                                         time.time()))
        except sqlite3.IntegrityError:
            raise StoreError(f"There is already a user called {name!r}.") from None
        return self.user(cur.lastrowid)

    def user(self, user_id: int) -> dict | None:
        with self._db() as db:
            row = db.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",
                             (user_id,)).fetchone()
        return _user(row) if row else None

    def users(self) -> list[dict]:
        with self._db() as db:
            rows = db.execute(f"SELECT {USER_COLUMNS} FROM users ORDER BY name")
            return [_user(r) for r in rows]

    def count_users(self) -> int:
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def authenticate(self, name: str, password: str) -> dict | None:
        """The user if ``password`` is theirs, else None (same cost for unknown names). A
        disabled account is returned too (with ``disabled`` true): the caller refuses it."""
        with self._db() as db:
            row = db.execute(f"SELECT {USER_COLUMNS}, password_hash FROM users "
                             "WHERE name = ?", ((name or "").strip(),)).fetchone()
        stored = row["password_hash"] if row else _DUMMY_HASH
        if not _verify(stored, password):
            return None
        if row is None:
            return None
        if _hasher.check_needs_rehash(stored):
            with self._db() as db:
                db.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                           (_hasher.hash(password), row["id"]))
        return _user(row)

    def check_user_password(self, user_id: int, password: str) -> bool:
        """Whether ``password`` is the user's current one."""
        with self._db() as db:
            row = db.execute("SELECT password_hash FROM users WHERE id = ?",
                             (user_id,)).fetchone()
        stored = row["password_hash"] if row else _DUMMY_HASH
        return _verify(stored, password) and row is not None

    def set_password(self, user_id: int, password: str) -> dict:
        """Give the user a new password (checked by :func:`check_password`); KeyError if there
        is no such user."""
        user = self.user(user_id)
        if user is None:
            raise KeyError(user_id)
        password_hash = _hasher.hash(check_password(password, user["name"]))
        with self._db() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                       (password_hash, user_id))
        return user

    def set_disabled(self, user_id: int, disabled: bool) -> tuple[dict, list[str]]:
        """Disable or enable an account: the user, and the ids of the login sessions that
        disabling ended. Refuses (StoreError) to disable the last enabled administrator;
        KeyError if there is no such user."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")  # the last-admin check and the change in one step
            if disabled:
                self._check_not_last_admin(db, user_id)
            cur = db.execute("UPDATE users SET disabled = ? WHERE id = ?",
                             (int(disabled), user_id))
            if cur.rowcount == 0:
                raise KeyError(user_id)
            ended = self._end_sessions(db, user_id) if disabled else []
            row = db.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",
                             (user_id,)).fetchone()
        return _user(row), ended

    def delete_user(self, user_id: int) -> tuple[dict, list[str]]:
        """Delete an account with its lineups and login sessions: the user as it was, and the
        ids of its ended sessions. Refuses (StoreError) to delete the last enabled
        administrator; KeyError if there is no such user."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            self._check_not_last_admin(db, user_id)
            row = db.execute(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?",
                             (user_id,)).fetchone()
            if row is None:
                raise KeyError(user_id)
            ended = self._end_sessions(db, user_id)
            db.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return _user(row), ended

    @staticmethod
    def _check_not_last_admin(db: sqlite3.Connection, user_id: int) -> None:
        row = db.execute("SELECT is_admin, disabled FROM users WHERE id = ?",
                         (user_id,)).fetchone()
        if row is None or not row["is_admin"] or row["disabled"]:
            return
        others = db.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled = 0 "
                            "AND id != ?", (user_id,)).fetchone()[0]
        if others == 0:
            raise StoreError("This is the last administrator; make another account an "
                             "administrator first.")

    # -- login sessions -----------------------------------------------------------------------

    def create_session(self, user_id: int) -> str:
        """A new login session of the user (valid :data:`SESSION_LIFETIME_S`); its id."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute("INSERT INTO sessions (id, user_id, created, last_seen, expires) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (session_id, user_id, now, now, now + SESSION_LIFETIME_S))
        return session_id

    def session_user(self, session_id: str) -> tuple[dict, float] | None:
        """The user of a live login session and when the session expires (Unix time), or None
        when it is unknown, ended, expired or the account is disabled. Notes the time as the
        session's ``last_seen`` (written at most once a minute)."""
        now = time.time()
        with self._db() as db:
            row = db.execute(f"SELECT {USER_COLUMNS}, sessions.expires, sessions.last_seen "
                             "FROM sessions JOIN users ON users.id = sessions.user_id "
                             "WHERE sessions.id = ? AND sessions.expires > ? "
                             "AND users.disabled = 0", (session_id, now)).fetchone()
            if row is None:
                return None
            if row["last_seen"] < now - LAST_SEEN_EVERY_S:
                db.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, session_id))
        return _user(row), row["expires"]

    def end_session(self, session_id: str) -> int | None:
        """End one login session (logout); the id of its user, None if it was not live."""
        with self._db() as db:
            row = db.execute("SELECT user_id FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return row["user_id"] if row else None

    def live_sessions(self, user_id: int) -> int:
        """How many login sessions of the user are live (not ended, not expired)."""
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM sessions WHERE user_id = ? AND expires > ?",
                              (user_id, time.time())).fetchone()[0]

    def end_sessions(self, user_id: int, keep: str | None = None) -> list[str]:
        """End every login session of the user (but ``keep``); the ids of those ended."""
        with self._db() as db:
            return self._end_sessions(db, user_id, keep)

    @staticmethod
    def _end_sessions(db: sqlite3.Connection, user_id: int,
                      keep: str | None = None) -> list[str]:
        ids = [r["id"] for r in db.execute("SELECT id FROM sessions WHERE user_id = ? AND id != ?",
                                           (user_id, keep or ""))]
        db.executemany("DELETE FROM sessions WHERE id = ?", [(i,) for i in ids])
        return ids

    # -- lineups ------------------------------------------------------------------------------

    def save_lineup(self, user_id: int, data: dict, lineup_id: str | None = None) -> dict:
        """Insert a new lineup, or replace the user's lineup ``lineup_id``."""
        now = time.time()
        with self._db() as db:
            if lineup_id is None:
                lineup_id = secrets.token_hex(8)
                db.execute("INSERT INTO lineups (id, user_id, name, data, created, updated) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (lineup_id, user_id, data["name"], json.dumps(data), now, now))
            else:
                cur = db.execute("UPDATE lineups SET name = ?, data = ?, updated = ? "
                                 "WHERE id = ? AND user_id = ?",
                                 (data["name"], json.dumps(data), now, lineup_id, user_id))
                if cur.rowcount == 0:
                    raise KeyError(lineup_id)
        return self.lineup(user_id, lineup_id)

    def lineup(self, user_id: int, lineup_id: str) -> dict | None:
        """The user's lineup, or None (also for another user's lineup)."""
        with self._db() as db:
            row = db.execute("SELECT * FROM lineups WHERE id = ? AND user_id = ?",
                             (lineup_id, user_id)).fetchone()
        return _lineup(row) if row else None

    def lineups(self, user_id: int) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM lineups WHERE user_id = ? ORDER BY updated DESC",
                              (user_id,)).fetchall()
        return [_lineup(r) for r in rows]

    def delete_lineup(self, user_id: int, lineup_id: str) -> bool:
        with self._db() as db:
            cur = db.execute("DELETE FROM lineups WHERE id = ? AND user_id = ?",
                             (lineup_id, user_id))
        return cur.rowcount > 0


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def _user(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "name": row["name"], "is_admin": bool(row["is_admin"]),
            "disabled": bool(row["disabled"]), "created": row["created"]}


def _lineup(row: sqlite3.Row) -> dict:
    return {**json.loads(row["data"]), "id": row["id"], "created": row["created"],
            "updated": row["updated"]}
