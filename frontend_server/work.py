"""The user's own work: photo uploads, result images, the backend session and its tasks.

Every route acts on the logged-in user's session ``user-<id>`` only; a task, upload or file of
another user is simply not found (404).

Tasks are checked here only for shape and ownership (:func:`check_task`); their types and value
ranges are the backend's, which reads some of them from its settings. Its refusals (400, 404,
422 with a message that says what to change) come back through the master daemon unchanged.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, request, send_from_directory

from frontend_server.accounts import json_body
from frontend_server.context import current_login, current_user, frontend, login_required
from frontend_server.daemon import events_token, session_id
from frontend_server.errors import ApiError
from frontend_server.faces import read_index
from frontend_server.uploads import UPLOAD_ID, save_upload, upload_info
from models.facestore import FACE_ID

bp = Blueprint("work", __name__, url_prefix="/web")

TASK_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _dir():
    return frontend().results_dir(current_user())


def _sid() -> str:
    return session_id(current_user()["id"])


# -- uploads and files -----------------------------------------------------------------------

@bp.post("/uploads")
@login_required
def upload():
    """Multipart field ``photo``: checked, stored as PNG, answered with the face boxes."""
    file = request.files.get("photo")
    if file is None:
        raise ApiError(400, "Send the photo as the form field 'photo'.")
    info = save_upload(file.read(), _dir())
    return jsonify(info), 201


@bp.get("/uploads/<upload_id>")
@login_required
def upload_meta(upload_id: str):
    info = upload_info(_dir(), upload_id)
    if info is None:
        raise ApiError(404, "No such upload.")
    return jsonify(info)


@bp.get("/uploads/<upload_id>/photo.png")
@login_required
def upload_photo(upload_id: str):
    if not UPLOAD_ID.match(upload_id):
        raise ApiError(404, "No such upload.")
    return send_from_directory(_dir() / "uploads", f"{upload_id}.png", max_age=3600)


@bp.get("/files/<path:rel>")
@login_required
def result_file(rel: str):
    """An image in the user's own results folder (``send_from_directory`` refuses ``..``)."""
    if not rel.lower().endswith(IMAGE_SUFFIXES):
        raise ApiError(404, "Not found.")
    return send_from_directory(_dir(), rel, max_age=3600)


# -- the backend session and tasks -----------------------------------------------------------

@bp.post("/session")
@login_required
def start_session():
    """Start (or reuse) the user's backend; answers the session and the event-stream URL."""
    sid = _sid()
    session = frontend().daemon.start_session(sid)
    return jsonify(session=session, events_url=_events_url(sid))


@bp.get("/session")
@login_required
def get_session():
    status, session = frontend().daemon.session(_sid())
    if status == 404:
        return jsonify(session=None, events_url=None)
    return jsonify(session=session, events_url=_events_url(_sid()))


@bp.get("/events")
@login_required
def events():
    """The URL (with its signed token) of the user's event stream, served by the daemon."""
    return jsonify(events_url=_events_url(_sid()))


def _events_url(sid: str) -> str:
    """The stream URL, its token tied to this login session (revoked at logout)."""
    token = events_token(frontend().daemon.token, sid, *current_login())
    return f"/events/{sid}?token={token}"


def _is_face_param(key: str) -> bool:
    """The backend's face parameters: ``face_id`` and ``<name>_face_id``."""
    return key == "face_id" or key.endswith("_face_id")


def _is_photo_param(key: str) -> bool:
    """The backend's photo parameters: ``photo`` and ``<name>_photo``."""
    return key == "photo" or key.endswith("_photo")


def check_task(type_: Any, params: Any) -> None:
    """Refuse a task that is malformed or names what is not the user's, before the daemon
    sees it: 400 unless ``type`` is a string and ``params`` a JSON object, 404 for a face id
    that is not one of the user's faces or a photo that is not one of the user's uploads."""
    if not isinstance(type_, str) or not type_:
        raise ApiError(400, 'type must be a string naming the task type, e.g. "fillers".')
    if not isinstance(params, dict):
        raise ApiError(400, "params must be a JSON object.")
    faces = [key for key in params if _is_face_param(key) and params[key] is not None]
    if faces:
        index = read_index(_dir().resolve())
        for key in faces:
            value = params[key]
            if not isinstance(value, str) or not FACE_ID.match(value) or value not in index:
                raise ApiError(404, f"params.{key}: you have no face {value!r}; pick one from "
                                    "your gallery.")
    for key in params:
        if _is_photo_param(key):
            _check_photo(params[key])


@bp.post("/tasks")
@bp.post("/research/tasks")   # the Research area's URL (web_ui/research.js): the same route
@login_required
def post_task():
    """``{type, params}``: checked by :func:`check_task`, then forwarded to the daemon; its
    answer and status (202 the task, or the backend's refusal) are the reply."""
    body = json_body()
    type_, params = body.get("type"), body.get("params", {})
    check_task(type_, params)
    status, task = frontend().daemon.post_task(_sid(), type_, params)
    return jsonify(task), status


def _check_photo(value) -> None:
    """A photo parameter must name one of the user's uploads (``uploads/<id>.png``)."""
    match = re.fullmatch(r"uploads/([0-9a-f]{32})\.png", value) if isinstance(value, str) else None
    if match is None or upload_info(_dir(), match.group(1)) is None:
        raise ApiError(404, f"No uploaded photo {value!r}; upload the photo first.")


@bp.get("/tasks")
@login_required
def list_tasks():
    status, body = frontend().daemon.tasks(_sid())
    if status == 404:
        return jsonify(tasks=[])
    return jsonify(body), status


@bp.get("/tasks/<task_id>")
@login_required
def get_task(task_id: str):
    return _own_task(*frontend().daemon.task(_sid(), _task_id(task_id)))


@bp.delete("/tasks/<task_id>")
@login_required
def cancel_task(task_id: str):
    return _own_task(*frontend().daemon.cancel_task(_sid(), _task_id(task_id)))


def _task_id(task_id: str) -> str:
    if not TASK_ID.match(task_id):
        raise ApiError(404, "No such task.")
    return task_id


def _own_task(status: int, task: dict):
    if status < 400 and task.get("session_id") not in (None, _sid()):
        raise ApiError(404, "No such task.")
    return jsonify(task), status
