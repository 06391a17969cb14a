"""What the daemon's internal API accepts: its error type and the checks of request bodies.

The HTTP layer (:mod:`master_daemon.app`) runs these before it calls the
:class:`~master_daemon.manager.Manager`, so the manager gets clean values only and never
reads a raw body. Every refusal is an :class:`ApiError` whose message says what to send
instead.
"""
from __future__ import annotations

import re
from typing import Any

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: A stream key: the SHA-256 (hex) of the frontend's login session id.
STREAM_KEY = re.compile(r"^[0-9a-f]{64}$")
MAX_REVOKED_KEYS = 1000  # per request


class ApiError(Exception):
    """An answer other than success: ``status`` and a readable ``error``."""

    def __init__(self, status: int, error: str, body: dict[str, Any] | None = None):
        super().__init__(error)
        self.status = status
        self.body = body or {"error": error}


def session_id(sid: str) -> str:
    """``sid`` when it can name a session (and its results folder), else a 400."""
    if not SESSION_ID.match(sid):
        raise ApiError(400, "a session id is 1-128 letters, digits and '._:@-', "
                            f"got {sid[:60]!r}")
    return sid


def task_request(body: Any) -> tuple[str, dict[str, Any]]:
    """``(type, params)`` of a ``POST …/tasks`` body ``{"type": …, "params": {…}}``; the
    backend checks the parameters themselves."""
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
    return ttype, params


def revoked_keys(body: Any) -> list[str]:
    """The stream keys of a ``POST …/revoked-keys`` body ``{"keys": […]}``."""
    keys = body.get("keys") if isinstance(body, dict) else None
    if (not isinstance(keys, list) or len(keys) > MAX_REVOKED_KEYS
            or not all(isinstance(k, str) and STREAM_KEY.match(k) for k in keys)):
        raise ApiError(400, f'send {{"keys": [...]}}: at most {MAX_REVOKED_KEYS} stream '
                            f'keys, each the SHA-256 (64 hex digits) of a login session id')
    return keys
