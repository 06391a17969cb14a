"""Login, logout, the current user, and user administration (admins only)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request, session
from flask_wtf.csrf import generate_csrf

from frontend_server.context import admin_required, current_user, frontend
from frontend_server.errors import ApiError
from frontend_server.limits import limiter, login_key
from frontend_server.store import StoreError
from setup.strict_json import MAX_JSON_BODY_BYTES, loads_strict

bp = Blueprint("accounts", __name__, url_prefix="/web")


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
    user = frontend().store.authenticate(name, password)
    if user is None:
        raise ApiError(401, "Wrong user name or password.")
    session.clear()                      # a fresh session (and CSRF secret) at every login
    session["uid"] = user["id"]
    session.permanent = True
    return jsonify(user=user, csrf_token=generate_csrf())


@bp.post("/logout")
def logout():
    session.clear()
    return jsonify(user=None, csrf_token=generate_csrf())


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
