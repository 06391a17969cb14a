"""Calls to the master daemon's internal API (``docs/master_daemon.md``) and event tokens."""
from __future__ import annotations

import hashlib

import requests
from itsdangerous import URLSafeTimedSerializer

from frontend_server.errors import ApiError

#: The event token's salt. The daemon checks the tokens with its own copy of this value
#: (master_daemon/app.py): it imports nothing from the frontend, and the format is part of the
#: contract in docs/master_daemon.md.
EVENTS_SALT = "ligan-events"


def session_id(user_id: int) -> str:
    """The daemon session of a user account: one backend per user, shared by their tabs."""
    return f"user-{int(user_id)}"


def stream_key(login_id: str) -> str:
    """What an event token carries of its login session: the SHA-256 of the session id (hex),
    never the id itself, so a leaked event URL does not give away the login."""
    return hashlib.sha256(login_id.encode()).hexdigest()


def events_token(daemon_token: str, sid: str, login_id: str, expires: float) -> str:
    """The token the daemon accepts on ``/events/<sid>?token=``: ``{"sid", "key":
    stream_key(login_id), "exp": when the login expires}``, signed with the daemon token. The
    daemon refuses it after ``exp``, 12 hours after it was made, and once the key is revoked
    (:meth:`DaemonClient.revoke_stream_keys`, at logout)."""
    claims = {"sid": sid, "key": stream_key(login_id), "exp": int(expires)}
    return URLSafeTimedSerializer(daemon_token, salt=EVENTS_SALT).dumps(claims)


class DaemonClient:
    """The daemon's internal API with the shared bearer token; errors become :class:`ApiError`."""

    def __init__(self, url: str, token: str, timeout: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: never through an http_proxy of the environment

    @property
    def enabled(self) -> bool:
        """Whether there is a daemon to call (a URL and a token)."""
        return bool(self.url and self.token)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """``(status, JSON body)`` of one request; 4xx answers are returned, not raised."""
        if not self.enabled:
            raise ApiError(503, "The frontend runs without a master daemon (no --daemon-url or "
                                "LIGAN_DAEMON_TOKEN), so backends cannot be started.")
        try:
            resp = self._http.request(method, self.url + path, json=body, timeout=self.timeout,
                                      headers={"Authorization": f"Bearer {self.token}"})
        except requests.RequestException as exc:
            raise ApiError(502, f"The master daemon cannot be reached ({type(exc).__name__}). "
                                "Try again in a moment.") from None
        try:
            data = resp.json()
        except ValueError:
            data = {"error": f"the master daemon answered {resp.status_code} without JSON"}
        if resp.status_code >= 500 or resp.status_code == 401:
            reason = data.get("error") if isinstance(data, dict) else None
            raise ApiError(502, f"The master daemon could not do this: "
                                f"{reason or resp.status_code}.")
        return resp.status_code, data if isinstance(data, dict) else {"value": data}

    def start_session(self, sid: str) -> dict:
        return self.call("PUT", f"/api/sessions/{sid}")[1]

    def session(self, sid: str) -> tuple[int, dict]:
        return self.call("GET", f"/api/sessions/{sid}")

    def stop_session(self, sid: str) -> tuple[int, dict]:
        return self.call("DELETE", f"/api/sessions/{sid}")

    def post_task(self, sid: str, type_: str, params: dict) -> tuple[int, dict]:
        return self.call("POST", f"/api/sessions/{sid}/tasks", {"type": type_, "params": params})

    def task(self, sid: str, task_id: str) -> tuple[int, dict]:
        return self.call("GET", f"/api/sessions/{sid}/tasks/{task_id}")

    def tasks(self, sid: str) -> tuple[int, dict]:
        return self.call("GET", f"/api/sessions/{sid}/tasks")

    def cancel_task(self, sid: str, task_id: str) -> tuple[int, dict]:
        return self.call("DELETE", f"/api/sessions/{sid}/tasks/{task_id}")

    def revoke_stream_keys(self, sid: str, login_ids: list[str]) -> tuple[int, dict]:
        """Make the daemon refuse, and end, the event streams of these login sessions."""
        return self.call("POST", f"/api/sessions/{sid}/revoked-keys",
                         {"keys": [stream_key(i) for i in login_ids]})
