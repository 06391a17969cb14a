"""The backend's HTTP API (Flask). docs/api/backend.yaml describes it; tests validate it.

Every request needs ``Authorization: Bearer <per-job secret>``. Errors are JSON
``{"error": "<what is wrong and what to change>"}``, never an HTML page or a traceback.
"""
from __future__ import annotations

import hmac
import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from backend_server.validation import BadRequest, RequestError, parse_json_body
from setup.strict_json import MAX_JSON_BODY_BYTES, use_strict_json

log = logging.getLogger(__name__)

_TOP_LEVEL = {"type", "params"}
FILES_PAGE = 1000  # paths per page of GET /tasks/<id>/files unless ``limit`` says otherwise
MAX_FILES_PAGE = 10_000


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """The integer query argument ``name`` (``default`` when absent), from ``low`` to
    ``high``; :class:`BadRequest` otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}, "
                         f"got {raw[:20]!r}")
    return int(raw)


def create_app(backend) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_JSON_BODY_BYTES
    use_strict_json(app)
    expected = f"Bearer {backend.secret}".encode("utf-8")

    def error(status: int, message: str, **headers):
        resp = jsonify({"error": message})
        resp.status_code = status
        resp.headers.update(headers)
        return resp

    @app.before_request
    def authenticate():
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            what = "a wrong secret" if given else "no Authorization header"
            return error(401, f"not authenticated ({what}): send 'Authorization: Bearer "
                              f"<the job secret>' (LIGAN_JOB_SECRET of this backend)",
                         **{"WWW-Authenticate": 'Bearer realm="ligan-backend"'})
        return None

    @app.post("/tasks")
    def post_task():
        body = parse_json_body(request.get_data(cache=False))
        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object like {"type": "random", '
                             '"params": {"amount": 8}}')
        unknown = sorted(set(body) - _TOP_LEVEL)
        if unknown:
            raise BadRequest(f"unknown field(s) {', '.join(repr(u)[:60] for u in unknown)}; "
                             f"a task is {{\"type\": ..., \"params\": {{...}}}}")
        if "type" not in body:
            raise BadRequest("type is required: the task type, e.g. \"random\"")
        task = backend.queue.submit(body["type"], body.get("params"))
        resp = jsonify({"task_id": task.id, "state": "queued"})
        resp.status_code = 202
        resp.headers["Location"] = f"/tasks/{task.id}"
        return resp

    @app.get("/tasks/<task_id>")
    def get_task(task_id: str):
        return jsonify(backend.queue.get(task_id).to_json())

    @app.get("/tasks/<task_id>/files")
    def task_files(task_id: str):
        """Every file the task wrote, a page at a time (its result holds the first ones)."""
        offset = _int_arg("offset", 0, 0, 10**9)
        limit = _int_arg("limit", FILES_PAGE, 1, MAX_FILES_PAGE)
        return jsonify(backend.queue.get(task_id).files_page(offset, limit))

    @app.delete("/tasks/<task_id>")
    def delete_task(task_id: str):
        task = backend.queue.cancel(task_id)
        resp = jsonify(task.to_json())
        resp.status_code = 202
        return resp

    @app.get("/health")
    def health():
        return jsonify(backend.health())

    @app.errorhandler(RequestError)
    def request_error(exc: RequestError):
        return error(exc.status, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        messages = {
            404: f"no such endpoint {request.path[:100]!r}; the API is POST /tasks, "
                 f"GET|DELETE /tasks/<id>, GET /tasks/<id>/files, GET /health",
            405: f"{request.method} is not allowed on {request.path[:100]!r}",
            413: f"the body is larger than {MAX_JSON_BODY_BYTES} bytes; task requests are small "
                 f"JSON objects (files are passed by their path in the results folder)",
        }
        return error(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error(500, f"internal error in the backend ({type(exc).__name__}); see the "
                          f"backend log")

    return app
