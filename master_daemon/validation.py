"""What the daemon's internal API accepts: its error type and the checks of request bodies.

The HTTP layer (:mod:`master_daemon.app`) runs these before it calls the
:class:`~master_daemon.manager.Manager`, so the manager gets clean values only and never
reads a raw body. Every refusal is an :class:`ApiError` whose message says what to send
instead.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
#: A stream key: the SHA-256 (hex) of the frontend's login session id.
STREAM_KEY = re.compile(r"^[0-9a-f]{64}$")
MAX_REVOKED_KEYS = 1000  # per request
FILES_PAGE = 1000  # file paths per page of GET …/tasks/<id>/files unless ``limit`` says
MAX_FILES_PAGE = 10_000


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


def files_page(args: Mapping[str, str]) -> tuple[int, int]:
    """``(offset, limit)`` of a ``GET …/tasks/<id>/files`` query (defaults 0 and
    :data:`FILES_PAGE`)."""
    out = []
    for name, default, high in (("offset", 0, 10**9), ("limit", FILES_PAGE, MAX_FILES_PAGE)):
        raw = args.get(name)
        low = 0 if name == "offset" else 1
        if raw is None:
            out.append(default)
        elif raw.isdigit() and low <= int(raw) <= high:
            out.append(int(raw))
        else:
            raise ApiError(400, f"{name} must be a whole number from {low} to {high}, "
                                f"got {raw[:20]!r}")
    return out[0], out[1]
