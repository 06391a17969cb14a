"""The catch-all reverse proxy: every request the daemon does not answer itself goes to the
frontend server, and its answer streams back unchanged.

Method, path, query, body and end-to-end headers pass through; hop-by-hop headers (RFC 9110
§7.6.1, and any named in ``Connection``) do not. ``X-Forwarded-For``/``-Proto``/``-Host`` say
who asked: the frontend builds links and logs addresses from them. With ``trusted_proxies`` > 0
(``LIGAN_TRUSTED_PROXIES``: a reverse proxy sits in front of the daemon) the incoming
``X-Forwarded-*`` values are kept and extended; otherwise they are replaced — the address by the
client's, the scheme and host by those of ``LIGAN_PUBLIC_URL`` (never the request's own ``Host``
header, which any client sets at will and which would end up in the frontend's redirects) — so a
browser cannot forge them. One pooled ``requests.Session`` keeps connections to the frontend open, which keeps
the proxy's cost per request at about a millisecond (tests/bench/master_daemon.py measures it).
When the frontend does not answer, the browser gets a 502 that says so (JSON for API and JSON
requests, a small page otherwise).
"""
from __future__ import annotations

import html
import http.cookiejar
import json
import logging
from typing import Callable, Iterator
from urllib.parse import quote, urlsplit

import requests
from flask import Request, Response
from requests.adapters import HTTPAdapter

log = logging.getLogger("ligan.daemon.proxy")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
                        "upgrade"})
CHUNK = 64 * 1024


def _hop_headers(connection_value: str | None) -> set[str]:
    extra = {h.strip().lower() for h in (connection_value or "").split(",") if h.strip()}
    return set(HOP_BY_HOP) | extra


class Proxy:
    """Forwards a Flask request to ``target()`` (the frontend's base URL, or None while there
    is none) and streams the answer back."""

    def __init__(self, target: Callable[[], str | None], trusted_proxies: int = 0,
                 timeout_s: float = 300.0, pool_size: int = 64, public_url: str = ""):
        self.target = target
        self.trusted_proxies = trusted_proxies
        public = urlsplit(public_url) if public_url else None
        self.public = (public.scheme, public.netloc) if public and public.netloc else None
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.trust_env = False  # never through an environment proxy: it is on loopback
        # No cookie jar: one Session serves every browser, and a jar would hand the last
        # login's session cookie to the next request that carries none.
        self.http.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("http://", adapter)

    def headers_for(self, request: Request) -> dict[str, str]:
        drop = _hop_headers(request.headers.get("Connection")) | {"host", "content-length"}
        out = {k: v for k, v in request.headers.items() if k.lower() not in drop}
        remote = request.remote_addr or ""
        scheme, host = self.public or (request.scheme, request.host)
        if self.trusted_proxies > 0:
            prior = request.headers.get("X-Forwarded-For")
            out["X-Forwarded-For"] = f"{prior}, {remote}" if prior else remote
            out["X-Forwarded-Proto"] = request.headers.get("X-Forwarded-Proto", scheme)
            out["X-Forwarded-Host"] = request.headers.get("X-Forwarded-Host", host)
        else:
            for k in list(out):
                if k.lower().startswith("x-forwarded-"):
                    del out[k]
            out["X-Forwarded-For"] = remote
            out["X-Forwarded-Proto"] = scheme
            out["X-Forwarded-Host"] = host
        return out

    def forward(self, request: Request) -> Response:
        base = self.target()
        if not base:
            return self.unavailable(request, "the web server is not running yet")
        url = base.rstrip("/") + quote(request.path, safe="/:@!$&'()*+,;=-._~%")
        qs = request.query_string.decode("latin-1")
        if qs:
            url += "?" + qs
        body = request.get_data(cache=False) if request.method not in ("GET", "HEAD") else None
        try:
            upstream = self.http.request(request.method, url, headers=self.headers_for(request),
                                         data=body, stream=True, allow_redirects=False,
                                         timeout=(5, self.timeout_s))
        except requests.RequestException as e:
            log.warning("proxy: the frontend at %s did not answer %s %s: %s", base,
                        request.method, request.path, type(e).__name__)
            return self.unavailable(request, f"the web server did not answer "
                                             f"({type(e).__name__})")
        drop = _hop_headers(upstream.headers.get("Connection"))
        headers = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in drop]

        def stream() -> Iterator[bytes]:
            try:
                yield from upstream.raw.stream(CHUNK, decode_content=False)
            except Exception as e:  # the frontend went away mid-answer: end the body here
                log.warning("proxy: answer to %s %s cut off: %s", request.method, request.path,
                            type(e).__name__)
            finally:
                upstream.close()

        if request.method == "HEAD":
            upstream.close()
            return Response(b"", status=upstream.status_code, headers=headers)
        return Response(stream(), status=upstream.status_code, headers=headers,
                        direct_passthrough=True)

    @staticmethod
    def unavailable(request: Request, why: str) -> Response:
        wants_json = request.path.startswith("/api/") or \
            "application/json" in request.headers.get("Accept", "")
        if wants_json:
            return Response(json.dumps({"error": f"{why}; try again in a few seconds"}),
                            status=502, mimetype="application/json")
        page = (f"<!doctype html><title>LiGAN is starting</title><h1>LiGAN is not available "
                f"right now</h1><p>{html.escape(why)}. It restarts by itself; reload this page in "
                f"a few seconds.</p>")
        return Response(page, status=502, mimetype="text/html", headers={"Retry-After": "5"})
