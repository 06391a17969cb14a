"""HTTP calls from the daemon to a backend's API (``POST /tasks``, ``DELETE /tasks/<id>``).

One pooled ``requests.Session`` for every backend; environment proxies are ignored, since
backends are on the cluster's own network. Every call is authenticated with the backend's
per-job secret. Connection problems come back as status 0 with the reason in words.
"""
from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter


class BackendClient:
    def __init__(self, timeout_s: float = 15.0):
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.trust_env = False
        adapter = HTTPAdapter(pool_connections=32, pool_maxsize=64)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def call(self, method: str, address: str, path: str, secret: str,
             body: Any = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON answer); (0, {"error": why}) when the backend cannot be reached."""
        try:
            resp = self.http.request(method, address.rstrip("/") + path, json=body,
                                     headers={"Authorization": f"Bearer {secret}"},
                                     timeout=self.timeout_s)
        except requests.RequestException as e:
            return 0, {"error": f"the backend at {address} cannot be reached: "
                                f"{type(e).__name__}"}
        try:
            data = resp.json()
        except ValueError:
            data = {"error": f"the backend answered {resp.status_code} without JSON"}
        if not isinstance(data, dict):
            data = {"error": f"the backend answered {resp.status_code} with {type(data).__name__}"}
        return resp.status_code, data
