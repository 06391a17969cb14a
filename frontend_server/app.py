"""The Flask application: security settings, blueprints and the web UI's static files."""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, jsonify, send_from_directory
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from frontend_server import accounts, gallery, lineups, witness, work
from frontend_server.context import Frontend
from frontend_server.daemon import DaemonClient
from frontend_server.errors import register_error_handlers
from frontend_server.limits import limiter
from frontend_server.store import SESSION_LIFETIME_S, Store
from setup.strict_json import use_strict_json

WEB_UI = Path(__file__).resolve().parent.parent / "web_ui"
TOKEN_ENV = "LIGAN_DAEMON_TOKEN"
#: The master daemon is itself a proxy in front of the frontend (master_daemon/proxy.py).
DAEMON_HOPS = 1
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")


def database_path(settings) -> Path:
    return Path(settings.home) / "frontend" / "ligan.sqlite3"


def secret_key(settings) -> bytes:
    """The session-signing key, kept in LIGAN_HOME so logins survive restarts (mode 0600)."""
    path = Path(settings.home) / "frontend" / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def create_app(settings, daemon_url: str = "", daemon_token: str | None = None) -> Flask:
    """The frontend app for ``settings``; ``daemon_token`` defaults to $LIGAN_DAEMON_TOKEN."""
    token = daemon_token if daemon_token is not None else os.environ.get(TOKEN_ENV, "")
    app = Flask(__name__, static_folder=str(WEB_UI), static_url_path="/ui")
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_NAME="ligan_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=SESSION_LIFETIME_S),  # = a login session
        MAX_CONTENT_LENGTH=settings.upload_max_mb * 1024 * 1024 + 64 * 1024,
        LIGAN_UPLOAD_MAX_MB=settings.upload_max_mb,
        WTF_CSRF_TIME_LIMIT=None,          # the token lives as long as the login session
        SEND_FILE_MAX_AGE_DEFAULT=0,
    )
    # The daemon sets X-Forwarded-For/-Proto/-Host on every proxied request (replacing what a
    # browser sent, or extending what LIGAN_TRUSTED_PROXIES reverse proxies sent), so the
    # client's address is that many hops plus the daemon's from the right.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies + DAEMON_HOPS,
                            x_proto=1, x_host=1)
    use_strict_json(app)
    app.extensions["ligan"] = Frontend(settings, Store(database_path(settings)),
                                       DaemonClient(daemon_url, token))
    csrf = CSRFProtect(app)
    # A mock witness has no login and no session: the link's unguessable token is what a
    # forged request would lack, so the witness routes need no CSRF token (and set no cookie).
    csrf.exempt(witness.witness_bp)
    limiter.init_app(app)
    register_error_handlers(app)
    for bp in (accounts.bp, work.bp, lineups.bp, gallery.bp, witness.bp, witness.witness_bp):
        app.register_blueprint(bp)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/")
    def index():
        return send_from_directory(WEB_UI, "index.html")

    @app.get("/login")
    def login_page():
        return send_from_directory(WEB_UI, "login.html")

    @app.get("/admin")
    def admin_page():
        return send_from_directory(WEB_UI, "admin.html")

    @app.get("/witnesses")
    def witnesses_page():
        return send_from_directory(WEB_UI, "witnesses.html")

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if resp.mimetype == "application/json":
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app
