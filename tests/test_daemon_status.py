"""Operators' view of the master daemon: its rotating log file and ``ligan status``."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from master_daemon.app import free_port
from master_daemon.models import B_READY, QUEUED, READY, Backend, Session, Task
from master_daemon.status import STATE_FILE, attach_log_file
from master_daemon.testing import daemon_settings, start_daemon
from setup.config import load_settings, to_env
from tests.conftest import REPO, ligan, wait_until


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LIGAN_DAEMON_TOKEN"}
    return dict(env, LIGAN_HOME=str(home))


def test_log_file_is_rotated_at_the_configured_size(tmp_path):
    settings = load_settings({"LIGAN_HOME": str(tmp_path), "LIGAN_LOG_MAX_MB": "1",
                              "LIGAN_LOG_BACKUPS": "2"})
    assert (settings.log_max_mb, settings.log_backups) == (1, 2)
    assert load_settings({}).log_max_mb == 10 and load_settings({}).log_backups == 5
    handler = attach_log_file(settings)
    try:
        log = logging.getLogger("ligan.daemon.test")
        for i in range(4000):  # ~4 MB
            log.warning("line %d %s", i, "x" * 1000)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    logs = tmp_path / "logs"
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["master_daemon.log", "master_daemon.log.1", "master_daemon.log.2"], names
    assert all(p.stat().st_size <= 1024 * 1024 + 2000 for p in logs.iterdir())
    assert "line 3999" in (logs / "master_daemon.log").read_text()


def test_status_without_a_daemon_is_a_one_line_error(tmp_path):
    r = ligan("status", env=_env(tmp_path))
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no master daemon runs" in r.stderr and str(tmp_path) in r.stderr
    # a daemon that died without cleaning up
    state = tmp_path / STATE_FILE
    state.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.write_text(json.dumps({"url": f"http://127.0.0.1:{free_port()}", "pid": dead.pid,
                                 "token": "x", "started": 0}))
    r = ligan("status", "--json", env=_env(tmp_path))
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no master daemon answers" in r.stderr and "no longer runs" in r.stderr


def test_status_lists_sessions_queue_tasks_and_disk(tmp_path):
    d = start_daemon(tmp_path, None, frontend_command=None, max_backends=1,
                     session_idle_timeout=0)
    try:
        assert (tmp_path / STATE_FILE).stat().st_mode & 0o077 == 0  # it holds the token
        r = requests.get(f"{d.url}/api/status", timeout=10)
        assert r.status_code == 401
        m = d.daemon.manager
        now = time.time()
        with m._lock:  # one ready session with a backend, one waiting for a slot
            m.sessions["user-7"] = Session("user-7", str(tmp_path), now, now, state=READY,
                                           backend_id="b-0123456789ab")
            m.backends["b-0123456789ab"] = Backend(
                "b-0123456789ab", "user-7", "local", "secret", 3600, now, job_id="local-fake",
                state=B_READY, job_state="RUNNING", precision="float32", started=now,
                ends=now + 3600, ready_at=now)
            m.sessions["user-8"] = Session("user-8", str(tmp_path), now, now, state=QUEUED,
                                           queued_at=now - 125)
            m._add_task(Task("t1", "user-8", "random", {}, now))
        r = ligan("status", env=_env(tmp_path))
        assert r.returncode == 0, r.stderr
        out = r.stdout
        print(out)
        row = next(ln for ln in out.splitlines() if "user-7" in ln).split()
        # (the monitor's squeue-like poll finds no such local job: UNKNOWN)
        assert row[:5] == ["user-7", "7", "ready", "b-0123456789ab", "local-fake"], row
        assert row[5] in ("RUNNING", "UNKNOWN") and row[6] == "float32", row
        assert "1. user-8 (waiting 2 min" in out
        assert "1 running of 1 slots" in out and "grace 20 s" in out
        assert "tasks: 0 running, 1 queued" in out
        assert "free of" in out and str(tmp_path) in out
        assert str(tmp_path / "logs" / "master_daemon.log") in out
        r = ligan("status", "--json", env=_env(tmp_path))
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert {s["session_id"]: s["state"] for s in st["sessions"]} == {"user-7": "ready",
                                                                         "user-8": "queued"}
        s7 = next(s for s in st["sessions"] if s["session_id"] == "user-7")
        assert (s7["job_id"], s7["precision"], s7["user"]) == ("local-fake", "float32", "7")
        assert st["queue"][0]["session_id"] == "user-8"
        assert st["tasks"] == {"queued": 1, "running": 0}
        assert st["daemon"]["pid"] == os.getpid() and st["daemon"]["scheduler"] == "local"
        assert st["disk"]["free_bytes"] > 0 and st["training_jobs"] == []
        _check_against_openapi(st, "Status")
    finally:
        with d.daemon.manager._lock:  # the fake backend has no process to cancel
            d.daemon.manager.backends.clear()
        d.stop()
    assert not (tmp_path / STATE_FILE).exists()
    assert ligan("status", env=_env(tmp_path)).returncode == 1


def test_daemon_serve_logs_to_its_file_and_answers_status(tmp_path):
    """``python -m master_daemon serve`` (what ``ligan daemon serve`` runs) end to end."""
    port = free_port()
    settings = dataclasses.replace(daemon_settings(tmp_path, port=port), log_backups=2)
    env = dict(_env(tmp_path), **to_env(settings))
    daemon = subprocess.Popen([sys.executable, "-m", "master_daemon", "serve"], env=env,
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        def written() -> bool:
            assert daemon.poll() is None, daemon.stderr.read()[-2000:]
            return (tmp_path / STATE_FILE).exists()

        wait_until(written, 120, "daemon.json written", interval=0.3)
        r = subprocess.run([sys.executable, "-m", "master_daemon", "status"], env=env,
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert f"http://127.0.0.1:{port}" in r.stdout and "sessions: 0 not stopped" in r.stdout
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    text = (tmp_path / "logs" / "master_daemon.log").read_text()
    assert f"master daemon serving on http://127.0.0.1:{port}" in text
    assert "master daemon stopped" in text
    assert not (tmp_path / STATE_FILE).exists()


def _check_against_openapi(obj: dict, name: str) -> None:
    import jsonschema
    import yaml
    from openapi_spec_validator import validate

    spec = yaml.safe_load((REPO / "docs" / "api" / "master_daemon.yaml").read_text())
    validate(spec)
    jsonschema.Draft202012Validator({**spec, "$ref": f"#/components/schemas/{name}"}
                                    ).validate(obj)
