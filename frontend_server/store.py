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
CREATE TABLE IF NOT EXISTS witness_tests (
    id TEXT PRIMARY KEY,
    lineup_id TEXT NOT NULL REFERENCES lineups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
CREATE INDEX IF NOT EXISTS witness_tests_by_lineup ON witness_tests(lineup_id, created);
CREATE TABLE IF NOT EXISTS witness_members (
    test_id TEXT NOT NULL REFERENCES witness_tests(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    png BLOB NOT NULL,
    PRIMARY KEY (test_id, position)
);
CREATE TABLE IF NOT EXISTS witness_links (
    test_id TEXT NOT NULL REFERENCES witness_tests(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    revoked REAL,
    opened REAL,
    shown TEXT,
    answered REAL,
    choice INTEGER,
    not_present INTEGER NOT NULL DEFAULT 0,
    confidence REAL,
    PRIMARY KEY (test_id, number)
);
CREATE TABLE IF NOT EXISTS witness_imports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    test_id TEXT NOT NULL REFERENCES witness_tests(id) ON DELETE CASCADE,
    batch TEXT NOT NULL,
    row INTEGER NOT NULL,
    choice INTEGER NOT NULL,
    confidence REAL,
    data TEXT NOT NULL,
    imported REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS witness_imports_by_test ON witness_imports(test_id);
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
    """The frontend's database: users (Argon2id password hashes), their login sessions, their
    lineups and the lineups' mock-witness tests."""

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

    def lineup_owner(self, lineup_id: str) -> int | None:
        """The id of the user who owns ``lineup_id`` (None for an unknown lineup): for operator
        commands that name a lineup by its id alone."""
        with self._db() as db:
            row = db.execute("SELECT user_id FROM lineups WHERE id = ?", (lineup_id,)).fetchone()
        return int(row["user_id"]) if row else None

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

    # -- mock-witness tests -------------------------------------------------------------------
    # A test freezes its lineup (members' images, size, suspect position) when it is made, so
    # that editing the lineup later cannot change what the witnesses saw. Links are kept only
    # as the SHA-256 of their token (a token is 32 random bytes: no slow hash is needed).

    def create_witness_test(self, user_id: int, lineup_id: str, data: dict,
                            images: dict[int, bytes]) -> str:
        """A new test of the user's lineup with the members' PNGs by position; its id."""
        test_id = secrets.token_hex(8)
        with self._db() as db:
            db.execute("INSERT INTO witness_tests (id, lineup_id, user_id, data, created) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (test_id, lineup_id, user_id, json.dumps(data), time.time()))
            db.executemany("INSERT INTO witness_members (test_id, position, png) "
                           "VALUES (?, ?, ?)",
                           [(test_id, pos, png) for pos, png in sorted(images.items())])
        return test_id

    def witness_test(self, user_id: int, test_id: str) -> dict | None:
        """The user's test (None for another user's or an unknown one)."""
        with self._db() as db:
            row = db.execute("SELECT * FROM witness_tests WHERE id = ? AND user_id = ?",
                             (test_id, user_id)).fetchone()
        return _witness_test(row) if row else None

    def witness_tests(self, user_id: int, lineup_id: str | None = None) -> list[dict]:
        """The user's tests (of one lineup, or all), newest first."""
        query = "SELECT * FROM witness_tests WHERE user_id = ?"
        args: tuple = (user_id,)
        if lineup_id is not None:
            query, args = query + " AND lineup_id = ?", (user_id, lineup_id)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY created DESC", args).fetchall()
        return [_witness_test(r) for r in rows]

    def delete_witness_test(self, user_id: int, test_id: str) -> bool:
        with self._db() as db:
            cur = db.execute("DELETE FROM witness_tests WHERE id = ? AND user_id = ?",
                             (test_id, user_id))
        return cur.rowcount > 0

    def add_witness_links(self, test_id: str, token_hashes: list[str], expires: float,
                          max_links: int) -> list[int]:
        """New links of the test (their numbers, continuing the test's); StoreError when the
        test would have more than ``max_links``."""
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            count, last = db.execute("SELECT COUNT(*), COALESCE(MAX(number), 0) FROM "
                                     "witness_links WHERE test_id = ?", (test_id,)).fetchone()
            if count + len(token_hashes) > max_links:
                raise StoreError(f"A test has at most {max_links} links; this one has {count}, "
                                 f"so {max_links - count} more can be added.")
            numbers = list(range(last + 1, last + 1 + len(token_hashes)))
            db.executemany("INSERT INTO witness_links (test_id, number, token_hash, created, "
                           "expires) VALUES (?, ?, ?, ?, ?)",
                           [(test_id, n, h, now, expires) for n, h in zip(numbers, token_hashes)])
        return numbers

    def witness_links(self, test_id: str) -> list[dict]:
        """Every link of the test by number (without any token: only hashes are kept)."""
        with self._db() as db:
            rows = db.execute("SELECT * FROM witness_links WHERE test_id = ? ORDER BY number",
                              (test_id,)).fetchall()
        return [_witness_link(r) for r in rows]

    def revoke_witness_links(self, test_id: str, number: int | None = None) -> int:
        """Revoke one unanswered link of the test (``number``), or the whole test (its
        unanswered links that have not expired); how many links were revoked."""
        now = time.time()
        with self._db() as db:
            if number is None:
                db.execute("UPDATE witness_tests SET revoked = COALESCE(revoked, ?) "
                           "WHERE id = ?", (now, test_id))
                cur = db.execute("UPDATE witness_links SET revoked = ? WHERE test_id = ? AND "
                                 "revoked IS NULL AND answered IS NULL AND expires > ?",
                                 (now, test_id, now))
            else:
                cur = db.execute("UPDATE witness_links SET revoked = ? WHERE test_id = ? AND "
                                 "number = ? AND revoked IS NULL AND answered IS NULL",
                                 (now, test_id, number))
        return cur.rowcount

    def witness_link(self, token_hash: str) -> dict | None:
        """The link with this token hash, with its test (``test``), or None."""
        with self._db() as db:
            row = db.execute("SELECT * FROM witness_links WHERE token_hash = ?",
                             (token_hash,)).fetchone()
            if row is None:
                return None
            test = db.execute("SELECT * FROM witness_tests WHERE id = ?",
                              (row["test_id"],)).fetchone()
        return {**_witness_link(row), "test": _witness_test(test)}

    def show_witness_link(self, token_hash: str, order: list[int]) -> list[int]:
        """The order (saved positions) the link's witness is shown: ``order`` the first
        time, the recorded one after that (a reload shows the same page)."""
        with self._db() as db:
            db.execute("UPDATE witness_links SET shown = ?, opened = ? WHERE token_hash = ? "
                       "AND shown IS NULL", (json.dumps(order), time.time(), token_hash))
            row = db.execute("SELECT shown FROM witness_links WHERE token_hash = ?",
                             (token_hash,)).fetchone()
        return json.loads(row["shown"])

    def answer_witness_link(self, token_hash: str, choice: int | None, not_present: bool,
                            confidence: float | None) -> bool:
        """Record the witness's answer if the link is still open (once: a second answer, or
        one after expiry or revocation, changes nothing and returns False)."""
        now = time.time()
        with self._db() as db:
            cur = db.execute(
                "UPDATE witness_links SET answered = ?, choice = ?, not_present = ?, "
                "confidence = ? WHERE token_hash = ? AND answered IS NULL AND revoked IS NULL "
                "AND expires > ? AND shown IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                "witness_tests t WHERE t.id = witness_links.test_id AND t.revoked IS NOT NULL)",
                (now, choice, int(not_present), confidence, token_hash, now))
        return cur.rowcount == 1

    def witness_member_png(self, test_id: str, position: int) -> bytes | None:
        with self._db() as db:
            row = db.execute("SELECT png FROM witness_members WHERE test_id = ? AND "
                             "position = ?", (test_id, position)).fetchone()
        return bytes(row["png"]) if row else None

    def import_witness_choices(self, test_id: str, rows: list[dict]) -> str:
        """Choices collected on paper (``{"row", "choice", "confidence", "data"}`` each), kept
        apart from the online answers as one batch; the batch id."""
        batch, now = secrets.token_hex(4), time.time()
        with self._db() as db:
            db.executemany("INSERT INTO witness_imports (test_id, batch, row, choice, "
                           "confidence, data, imported) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(test_id, batch, r["row"], r["choice"], r.get("confidence"),
                             json.dumps(r.get("data") or {}), now) for r in rows])
        return batch

    def witness_imports(self, test_id: str) -> list[dict]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM witness_imports WHERE test_id = ? ORDER BY id",
                              (test_id,)).fetchall()
        return [{"batch": r["batch"], "row": r["row"], "choice": r["choice"],
                 "confidence": r["confidence"], "data": json.loads(r["data"]),
                 "imported": r["imported"]} for r in rows]

    def delete_witness_imports(self, test_id: str) -> int:
        """Forget every choice imported into the test; how many there were."""
        with self._db() as db:
            cur = db.execute("DELETE FROM witness_imports WHERE test_id = ?", (test_id,))
        return cur.rowcount


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def _user(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "name": row["name"], "is_admin": bool(row["is_admin"]),
            "disabled": bool(row["disabled"]), "created": row["created"]}


def _witness_test(row: sqlite3.Row) -> dict:
    return {**json.loads(row["data"]), "id": row["id"], "lineup_id": row["lineup_id"],
            "created": row["created"], "revoked": row["revoked"]}


def _witness_link(row: sqlite3.Row) -> dict:
    return {"test_id": row["test_id"], "number": row["number"], "created": row["created"],
            "expires": row["expires"], "revoked": row["revoked"], "opened": row["opened"],
            "shown": json.loads(row["shown"]) if row["shown"] else None,
            "answered": row["answered"], "choice": row["choice"],
            "not_present": bool(row["not_present"]), "confidence": row["confidence"]}


def _lineup(row: sqlite3.Row) -> dict:
    return {**json.loads(row["data"]), "id": row["id"], "created": row["created"],
            "updated": row["updated"]}
