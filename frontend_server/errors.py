"""Readable JSON errors: every failure answers ``{"error": "<reason>"}``, never a traceback page."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error meant for the user: HTTP ``status`` and a message saying what to change."""

    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status: int, message: str, **extra):
    body = {"error": message, **extra}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    """JSON answers for our own errors, CSRF failures, HTTP errors and unexpected exceptions."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, **exc.extra)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(400, f"The request was refused: {exc.description} Reload the page "
                                   "and try again.")

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        mb = app.config["LIGAN_UPLOAD_MAX_MB"]
        return error_response(413, f"The upload is larger than the limit of {mb} MB. Use a "
                                   "smaller photo (a face needs only a few hundred pixels).")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        messages = {404: "Not found.", 405: "This method is not allowed here."}
        message = messages.get(exc.code) or exc.description or exc.name
        return error_response(exc.code or 500, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "Something went wrong on the server; the error was logged. "
                                   "Try again, and tell the administrator if it persists.")
