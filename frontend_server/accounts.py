"""Login, logout, the current user and their password, and user administration (admins only).

A login is a row of the ``sessions`` table (frontend_server/store.py); the cookie holds only
its id. Ending logins (logout, an administrator's action) also revokes their event streams at
the daemon (:func:`revoke_streams`), and frees the user's backend when nothing needs it any
more (:func:`release_backend`): a backend holds a GPU job, which the idle timeout would
otherwise keep for up to half an hour after the user has gone.
"""
from __future__ import annotations

import logging
from typing import Callable

from flask import Blueprint, jsonify, request, session
from flask_wtf.csrf import generate_csrf

from frontend_server.context import admin_required, current_user, frontend, login_required
from frontend_server.daemon import session_id
from frontend_server.errors import ApiError
from frontend_server.limits import limiter, login_key, password_key
from frontend_server.store import StoreError
from setup.strict_json import MAX_JSON_BODY_BYTES, loads_strict

bp = Blueprint("accounts", __name__, url_prefix="/web")
log = logging.getLogger(__name__)


def json_body() -> dict:
    """The request's JSON object, or a 400/413 that says what is wrong with it (strict JSON:
    no NaN or Infinity, no deep nesting; see setup/strict_json.py)."""
    if not request.is_json:
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    if (request.content_length or 0) > MAX_JSON_BODY_BYTES:
        raise ApiError(413, f"The request is over {MAX_JSON_BODY_BYTES // 1024} KiB; requests "
                            f"are small JSON objects (photos are uploaded as files).")
    try:
        body = loads_strict(request.get_data(cache=True))
    except ValueError as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    return body


@bp.get("/me")
def me():
    """The logged-in user (null when logged out) and the CSRF token for the JS."""
    return jsonify(user=current_user(), csrf_token=generate_csrf())


@bp.post("/login")
@limiter.limit(lambda: frontend().settings.login_rate_limit, key_func=login_key,
               deduct_when=lambda response: response.status_code != 200,
               error_message="Too many login attempts. Wait a minute and try again.")
def login():
    body = json_body()
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise ApiError(400, "Send your user name and password.")
    store = frontend().store
    user = store.authenticate(name, password)
    if user is None:
        raise ApiError(401, "Wrong user name or password.")
    if user["disabled"]:
        raise ApiError(403, "This account is disabled; ask an administrator.")
    session.clear()                      # a fresh session (and CSRF secret) at every login
    session["login"] = store.create_session(user["id"])
    session.permanent = True
    return jsonify(user=user, csrf_token=generate_csrf())


@bp.post("/logout")
def logout():
    """End the login session for good (the old cookie no longer works) and its event streams."""
    login = session.get("login")
    if isinstance(login, str):
        user_id = frontend().store.end_session(login)
        if user_id is not None:
            revoke_streams(user_id, [login])
            release_backend(user_id)
    session.clear()
    return jsonify(user=None, csrf_token=generate_csrf())


@bp.post("/me/password")
@login_required
@limiter.limit(lambda: frontend().settings.login_rate_limit, key_func=password_key,
               deduct_when=lambda response: response.status_code == 403,  # wrong current one
               error_message="Too many attempts. Wait a minute and try again.")
def change_password():
    """``{old_password, new_password}``: the user's own new password; their other logins end."""
    body = json_body()
    old, new = body.get("old_password"), body.get("new_password")
    if not isinstance(old, str) or not isinstance(new, str):
        raise ApiError(400, "Send old_password and new_password.")
    store, user = frontend().store, current_user()
    if not store.check_user_password(user["id"], old):
        raise ApiError(403, "The current password is wrong.")
    try:
        store.set_password(user["id"], new)
    except StoreError as exc:
        raise ApiError(422, str(exc)) from None
    revoke_streams(user["id"], store.end_sessions(user["id"], keep=session["login"]))
    return jsonify(user=user)


@bp.get("/users")
@admin_required
def users():
    return jsonify(users=frontend().store.users())


@bp.post("/users")
@admin_required
def add_user():
    body = json_body()
    is_admin = body.get("is_admin", False)
    if not isinstance(is_admin, bool):
        raise ApiError(400, "is_admin must be true or false.")
    try:
        user = frontend().store.add_user(body.get("name") or "", body.get("password") or "",
                                         is_admin)
    except StoreError as exc:
        raise ApiError(422, str(exc)) from None
    return jsonify(user=user), 201


@bp.post("/users/<int:user_id>/disable")
@admin_required
def disable_user(user_id: int):
    """Disable an account: it cannot log in, its logins and event streams end."""
    _not_yourself(user_id, "disable")
    user, ended = _change(frontend().store.set_disabled, user_id, True)
    revoke_streams(user_id, ended)
    release_backend(user_id, even_if_busy=True)
    return jsonify(user=user)


@bp.post("/users/<int:user_id>/enable")
@admin_required
def enable_user(user_id: int):
    user, _ = _change(frontend().store.set_disabled, user_id, False)
    return jsonify(user=user)


@bp.delete("/users/<int:user_id>")
@admin_required
def delete_user(user_id: int):
    """Delete an account and its lineups; its logins and event streams end. The user's
    results folder (uploads and generated faces) stays on disk."""
    _not_yourself(user_id, "delete")
    user, ended = _change(frontend().store.delete_user, user_id)
    revoke_streams(user_id, ended)
    release_backend(user_id, even_if_busy=True)
    return jsonify(user=user)


@bp.post("/users/<int:user_id>/password")
@admin_required
def reset_password(user_id: int):
    """``{password}``: a new password for the account; its logins and event streams end."""
    password = json_body().get("password")
    if not isinstance(password, str):
        raise ApiError(400, "Send the new password.")
    store = frontend().store
    try:
        user = store.set_password(user_id, password)
    except KeyError:
        raise ApiError(404, "No such user.") from None
    except StoreError as exc:
        raise ApiError(422, str(exc)) from None
    revoke_streams(user_id, store.end_sessions(user_id))
    return jsonify(user=user)


@bp.delete("/users/<int:user_id>/sessions")
@admin_required
def end_user_sessions(user_id: int):
    """Log the user out everywhere: every login session and its event streams end."""
    store = frontend().store
    if store.user(user_id) is None:
        raise ApiError(404, "No such user.")
    ended = store.end_sessions(user_id)
    revoke_streams(user_id, ended)
    release_backend(user_id)
    return jsonify(ended=len(ended))


ACTIVE_TASK_STATES = ("queued", "running")


def release_backend(user_id: int, even_if_busy: bool = False) -> bool:
    """Stop the user's backend once no login of theirs is left, unless a task of theirs is
    still queued or running (it finishes; the idle timeout stops the backend after it).
    ``even_if_busy``: the account is disabled or deleted, so its work stops too. Whether a
    stop was asked; the daemon's refusals and failures are logged, never raised."""
    fe = frontend()
    if not fe.daemon.enabled or (not even_if_busy and fe.store.live_sessions(user_id)):
        return False
    sid = session_id(user_id)
    try:
        if not even_if_busy:
            status, body = fe.daemon.tasks(sid)
            if status == 404:
                return False  # no backend session
            if any(t.get("state") in ACTIVE_TASK_STATES for t in body.get("tasks", [])):
                log.info("user %d logged out with work under way; their backend stops when "
                         "it is idle", user_id)
                return False
        status, body = fe.daemon.stop_session(sid)
    except ApiError as exc:
        status, body = 502, {"error": exc.message}
    if status not in (200, 202, 204, 404):
        log.error("the daemon did not stop the backend of user %d (%s): %s", user_id, status,
                  body.get("error"))
        return False
    return status != 404


def _not_yourself(user_id: int, verb: str) -> None:
    if user_id == current_user()["id"]:
        raise ApiError(409, f"You cannot {verb} your own account.")


def _change(method: Callable[..., tuple[dict, list[str]]], user_id: int,
            *args: object) -> tuple[dict, list[str]]:
    """A store change of one account: 404 for an unknown id, 409 for the last administrator."""
    try:
        return method(user_id, *args)
    except KeyError:
        raise ApiError(404, "No such user.") from None
    except StoreError as exc:
        raise ApiError(409, str(exc)) from None


def revoke_streams(user_id: int, login_ids: list[str]) -> None:
    """Tell the daemon to end, and from now on refuse, the event streams of these ended login
    sessions. The logins are over whatever the daemon answers; a failure is logged."""
    daemon = frontend().daemon
    if not login_ids or not daemon.enabled:  # no daemon: no event streams either
        return
    try:
        status, body = daemon.revoke_stream_keys(session_id(user_id), login_ids)
    except ApiError as exc:
        status, body = 502, {"error": exc.message}
    if status != 200:
        log.error("the daemon did not revoke the event streams of %d ended logins of user "
                  "%d (%s): %s", len(login_ids), user_id, status, body.get("error"))
