"""What operators see of a running master daemon: its log file, its state file and
``ligan status``.

The daemon logs to ``$LIGAN_HOME/logs/master_daemon.log`` (rotated at ``LIGAN_LOG_MAX_MB``,
``LIGAN_LOG_BACKUPS`` kept) besides its standard error, and while it runs it keeps
``$LIGAN_HOME/var/daemon.json`` (mode 0600: its URL, process id and bearer token), which is how
``ligan status`` on the same machine finds it and authenticates. ``ligan status`` asks
``GET /api/status`` (see docs/master_daemon.md) and prints the answer as a summary, or as JSON
with ``--json``.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import shutil
import time
from pathlib import Path
from typing import Any

import requests

from setup.config import Settings

#: Where a running daemon describes itself, under LIGAN_HOME.
STATE_FILE = Path("var") / "daemon.json"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StatusError(RuntimeError):
    """``ligan status`` could not get an answer; the message is the one line to print."""


# -- the daemon's side ---------------------------------------------------------------------
def attach_log_file(settings: Settings) -> logging.Handler:
    """Send every log record of this process also to ``settings.log_file``, rotated at
    ``settings.log_max_mb`` MiB with ``settings.log_backups`` old files kept; returns the
    handler (remove it from the root logger to stop)."""
    path = Path(settings.log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=int(settings.log_max_mb) * 1024 * 1024,
        backupCount=int(settings.log_backups), encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(getattr(logging, str(settings.log_level), logging.INFO))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > handler.level:
        root.setLevel(handler.level)
    return handler


def write_state_file(home: Path, url: str, token: str, started: float) -> Path:
    """Write ``daemon.json`` (mode 0600, replaced atomically) for ``ligan status``."""
    path = Path(home) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "pid": os.getpid(), "token": token, "started": started}, f)
    os.replace(tmp, path)
    return path


def remove_state_file(home: Path, url: str) -> None:
    """Remove ``daemon.json`` if the daemon at ``url`` of this process wrote it (a newer
    daemon's stays)."""
    path = Path(home) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        if state.get("pid") == os.getpid() and state.get("url") == url:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def disk(path: Path) -> dict[str, Any]:
    """Free and total bytes of the filesystem holding ``path``."""
    usage = shutil.disk_usage(path)
    return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total,
            "used_fraction": round(1 - usage.free / usage.total, 4) if usage.total else None}


# -- ligan status ------------------------------------------------------------------------------
def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fetch_status(home: Path, url: str = "", token: str = "", timeout: float = 10.0
                 ) -> dict[str, Any]:
    """The status of the daemon of ``home`` (or the one at ``url``), as ``GET /api/status``
    answers it. The URL and token come from ``daemon.json`` unless given; raises
    :class:`StatusError` with a one-line reason when no daemon answers."""
    path = Path(home) / STATE_FILE
    state: dict[str, Any] = {}
    if path.exists():
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise StatusError(f"cannot read {path}: {e}") from None
    elif not url:
        raise StatusError(f"no master daemon runs for LIGAN_HOME={home} (no {path}); start "
                          f"one with 'ligan daemon serve' or 'ligan up'")
    url = (url or str(state.get("url") or "")).rstrip("/")
    token = token or str(state.get("token") or "")
    stale = ""
    if state and not _pid_alive(state.get("pid")):
        stale = f"; {path} was left by process {state.get('pid')}, which no longer runs"
    try:
        r = requests.get(f"{url}/api/status", headers={"Authorization": f"Bearer {token}"},
                         timeout=timeout)
    except requests.ConnectionError:
        raise StatusError(f"no master daemon answers at {url}{stale}") from None
    except requests.Timeout:
        raise StatusError(f"the master daemon at {url} did not answer within {timeout:g} s") \
            from None
    except requests.RequestException as e:
        raise StatusError(f"cannot ask the master daemon at {url}: {e}") from None
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code == 401:
        raise StatusError(f"the master daemon at {url} refused the token (from {path} or "
                          f"LIGAN_DAEMON_TOKEN): {body.get('error', r.reason)}")
    if r.status_code != 200 or not isinstance(body, dict):
        raise StatusError(f"the master daemon at {url} answered {r.status_code}: "
                          f"{body.get('error') if isinstance(body, dict) else r.text[:200]}")
    return body


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from jobs.scheduler import format_duration

    return format_duration(max(0, int(seconds)))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


def format_status(st: dict[str, Any]) -> str:
    """``GET /api/status``'s answer as the summary ``ligan status`` prints."""
    now = float(st.get("now") or time.time())
    d = st.get("daemon", {})
    b = st.get("backends", {})
    out = [f"master daemon  {d.get('url')} (pid {d.get('pid')}, up "
           f"{_duration(now - d['started']) if d.get('started') else '-'}), "
           f"{d.get('scheduler')} scheduler; public URL {d.get('public_url')}",
           f"log file       {d.get('log_file')}",
           f"backends       {b.get('live', 0)} running of {b.get('max', 0)} slots; grace "
           f"{b.get('grace_s', 0):g} s"
           + (f" (jobs killed {b['kill_wait_s']:g} s after SIGTERM)"
              if b.get("kill_wait_s") is not None else "")]
    disk_ = st.get("disk") or {}
    if disk_.get("total_bytes"):
        out.append(f"disk           {_size(disk_['free_bytes'])} free of "
                   f"{_size(disk_['total_bytes'])} ({disk_['used_fraction']:.0%} used) "
                   f"under {disk_['path']}")
    sessions = st.get("sessions", [])
    counts = st.get("session_counts", {})
    stopped = counts.get("stopped", 0)
    out += ["", f"sessions: {len(sessions)} not stopped"
            + (f", {stopped} stopped" if stopped else "")]
    if sessions:
        rows = []
        for s in sessions:
            tasks = s.get("tasks", {})
            work = ", ".join(f"{n} {k}" for k, n in tasks.items() if n) or "-"
            rows.append([s["session_id"], s.get("user") or "-", s["state"],
                         s.get("backend_id") or "-", s.get("job_id") or "-",
                         s.get("job_state") or "-", s.get("precision") or "-",
                         _duration(s["ends"] - now) if s.get("ends") else "-", work,
                         (s.get("reason") or "")[:60]])
        out += _table(["SESSION", "USER", "STATE", "BACKEND", "JOB", "JOB STATE", "PRECISION",
                       "ENDS IN", "TASKS", "REASON"], rows)
    queue = st.get("queue", [])
    out += ["", f"queue: {len(queue)} session{'s' if len(queue) != 1 else ''} waiting for a "
                f"backend slot"]
    out += [f"  {q['position']}. {q['session_id']} (waiting {_duration(q.get('waiting_s'))})"
            for q in queue]
    t = st.get("tasks", {})
    out += ["", f"tasks: {t.get('running', 0)} running, {t.get('queued', 0)} queued"]
    jobs = st.get("training_jobs", [])
    out += ["", f"training and dataset jobs: {len(jobs)}"
            + (f" ({st['training_jobs_note']})" if st.get("training_jobs_note") else "")]
    if jobs:
        out += _table(["JOB", "NAME", "USER", "STATE", "ELAPSED", "LIMIT", "NODE/REASON"],
                      [[j.get("job_id", ""), j.get("name", ""), j.get("user", ""),
                        j.get("state", ""), j.get("elapsed", ""), j.get("time_limit", ""),
                        j.get("node") or j.get("reason") or ""] for j in jobs])
    return "\n".join(out)
