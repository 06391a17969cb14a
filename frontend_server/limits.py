"""Rate limits of logins and password changes (flask-limiter, in memory: the daemon runs
exactly one frontend)."""
from __future__ import annotations

from flask import request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", default_limits=[])


def login_key() -> str:
    """Failed attempts are counted per client address and user name, so one user's mistakes do not
    lock out colleagues behind the same proxy, and guessing one account's password is slow."""
    body = request.get_json(silent=True)
    name = body.get("name") if isinstance(body, dict) else None
    name = name.strip().lower()[:64] if isinstance(name, str) else ""
    return f"{get_remote_address()}|{name}"


def password_key() -> str:
    """Wrong current passwords when changing one's password are counted per login session."""
    return f"password|{session.get('login', '')}"
