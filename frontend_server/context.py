"""What every request handler needs: settings, the database, the daemon client, the user."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, g, session

from frontend_server.daemon import DaemonClient, session_id
from frontend_server.errors import ApiError
from frontend_server.store import Store


@dataclass
class Frontend:
    settings: object
    store: Store
    daemon: DaemonClient

    def results_dir(self, user: dict) -> Path:
        """The user's session results folder (``<results_root>/user-<id>``)."""
        return Path(self.settings.results_root) / session_id(user["id"])


def frontend() -> Frontend:
    return current_app.extensions["ligan"]


def current_user() -> dict | None:
    """The user of the request's login session, looked up once per request. The cookie holds
    only the session's id (``session["login"]``); a session that was ended (logout, an
    administrator), expired, or whose account was disabled or deleted is logged out."""
    if "user" not in g:
        g.user, g.login_expires = None, 0.0
        login = session.get("login")
        found = frontend().store.session_user(login) if isinstance(login, str) else None
        if found is not None:
            g.user, g.login_expires = found
        else:
            session.pop("login", None)  # a dead login: drop it from the cookie
            session.pop("uid", None)    # the cookie of a version before server-side sessions
    return g.user


def current_login() -> tuple[str, float]:
    """The logged-in request's login session id and when it expires (Unix time)."""
    if current_user() is None:
        raise ApiError(401, "Please log in first.")
    return session["login"], g.login_expires


def login_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_user() is None:
            raise ApiError(401, "Please log in first.")
        return view(*args, **kwargs)
    return wrapper


def admin_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user = current_user()
        if user is None:
            raise ApiError(401, "Please log in first.")
        if not user["is_admin"]:
            raise ApiError(403, "Only an administrator may do this.")
        return view(*args, **kwargs)
    return wrapper
