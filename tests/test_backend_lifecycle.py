"""The backend as the master daemon runs it: ``python -m backend_server serve`` (the same code as
``ligan backend serve``) in its own process, reporting on-ready, failing loudly, shutting down
on SIGTERM and after the idle timeout."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from backend_server.testing import CallbackReceiver

REPO = Path(__file__).resolve().parent.parent
SECRET = "job-secret-123"
AUTH = {"Authorization": f"Bearer {SECRET}"}
T = 60  # start-up includes importing TensorFlow and warming the graphs


def start(bundle: Path, results: Path, receiver: CallbackReceiver, *extra: str,
          secret: str | None = SECRET) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO),
               LIGAN_LOG_LEVEL="INFO")
    env.pop("LIGAN_JOB_SECRET", None)
    if secret is not None:
        env["LIGAN_JOB_SECRET"] = secret
    cmd = [sys.executable, "-m", "backend_server", "serve", "--bundle", str(bundle),
           "--session-id", "sess-1", "--job-id", "job.7", "--results-dir", str(results),
           "--callback-url", receiver.url, "--port", "0", *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_backend_outlives_its_test():
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"the backend did not exit within {timeout} s:\n{out[-3000:]}")
    return proc.returncode, out


def ready(receiver: CallbackReceiver, proc: subprocess.Popen) -> dict:
    try:
        cb = receiver.wait_for(lambda cbs: next((c for c in cbs if c.kind == "on-ready"), None),
                               T, "on-ready")
    except TimeoutError:
        proc.kill()
        raise AssertionError("no on-ready:\n" + proc.communicate()[0][-3000:]) from None
    return cb.body


def post(address: str, type_: str, params: dict) -> str:
    resp = requests.post(f"{address}/tasks", json={"type": type_, "params": params},
                         headers=AUTH, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["task_id"]


def progress_of(receiver: CallbackReceiver, task_id: str) -> float:
    return max([c.body["progress"] for c in receiver.of("on-progress", task_id)] or [0])


@pytest.fixture
def receiver():
    rx = CallbackReceiver(SECRET).start()
    yield rx
    rx.stop()


def test_sigterm_reports_queued_tasks_interrupted_and_checkpoints_the_running_one(
        tiny_bundle_dir, tmp_path, receiver):
    from models.bundle import read_manifest, manifest_hash

    proc = start(tiny_bundle_dir, tmp_path / "results", receiver, "--grace", "0.5")
    body = ready(receiver, proc)
    assert body["status"] == "ready" and body["pid"] == proc.pid
    assert body["session_id"] == "sess-1" and body["job_id"] == "job.7"
    assert body["bundle_hash"] == manifest_hash(read_manifest(tiny_bundle_dir))
    address = body["address"]
    assert address.startswith("http://127.0.0.1:")
    assert SECRET not in " ".join(proc.args)  # the secret never shows in ps / squeue
    resp = requests.get(f"{address}/health", headers=AUTH, timeout=10)
    assert resp.json()["status"] == "ok"

    running = post(address, "random", {"amount": 30000, "seed": 3})
    queued = [post(address, "random", {"amount": 10}) for _ in range(2)]
    receiver.wait_for(lambda _: progress_of(receiver, running) > 0, T, "progress")
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 0, out[-3000:]
    for task_id in queued:
        result = receiver.result_of(task_id, 1)
        assert result["state"] == "interrupted" and result["result"] is None
    result = receiver.result_of(running, 1)
    assert result["state"] == "interrupted", result
    made = result["result"]["faces_total"]
    assert 0 < made < 30000
    records = tmp_path / "results" / result["result"]["records"]
    assert len(records.read_text().splitlines()) == made  # the checkpoint is on disk
    # what the daemon needs to resume it on the next backend: the same params plus the folder
    assert result["result"]["seed"] == 3 and result["result"]["folder"] == f"tasks/{running}"
    assert "received SIGTERM" in out and "stopping it" in out
    assert not (tmp_path / "results" / "undelivered-callbacks.jsonl").exists()


def test_sigterm_lets_a_running_task_finish_within_the_grace_period(
        tiny_bundle_dir, tmp_path, receiver):
    proc = start(tiny_bundle_dir, tmp_path / "results", receiver, "--grace", "30")
    address = ready(receiver, proc)["address"]
    running = post(address, "random", {"amount": 600})
    receiver.wait_for(lambda _: progress_of(receiver, running) > 0, T, "progress")
    proc.send_signal(signal.SIGTERM)
    code, out = finish(proc)
    assert code == 0, out[-3000:]
    result = receiver.result_of(running, 1)
    assert result["state"] == "done" and result["result"]["faces_total"] == 600


def test_failing_to_load_is_reported_not_silent(tiny_bundle_dir, tmp_path, receiver):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle_dir, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    weights = broken / manifest["parts"]["generator"]["file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    procs = [start(broken, tmp_path / "r1", receiver),
             start(tmp_path / "no-such-bundle", tmp_path / "r2", receiver)]
    outs = [finish(p, T) for p in procs]
    assert [code for code, _ in outs] == [1, 1], [o[-2000:] for _, o in outs]
    failed = receiver.wait_for(lambda cbs: len(cbs) >= 2 and cbs, 5, "two on-ready")
    assert all(c.kind == "on-ready" and c.body["status"] == "failed" for c in failed)
    corrupt, missing = sorted((c.body["error"] for c in failed), key=lambda e: "no-such" in e)
    assert corrupt.startswith("cannot load the model bundle:")
    assert "generator.npz does not match its recorded sha256" in corrupt
    assert missing.startswith("cannot load the model bundle:")
    assert "no-such-bundle: the path does not exist" in missing
    for _, out in outs:
        assert "backend could not start" in out


def test_idle_timeout_exits_after_the_last_task(tiny_bundle_dir, tmp_path, receiver):
    proc = start(tiny_bundle_dir, tmp_path / "results", receiver, "--idle-timeout", "2")
    address = ready(receiver, proc)["address"]
    task_id = post(address, "random", {"amount": 3})
    assert receiver.result_of(task_id, T)["state"] == "done"
    ended = time.monotonic()
    code, out = finish(proc, T)
    assert code == 0 and "idle for 2 s" in out, out[-2000:]
    assert time.monotonic() - ended >= 1.0  # idle time counts from the end of the last task


def test_missing_secret_or_bad_arguments_stop_with_a_message(tmp_path, receiver):
    proc = start(tmp_path, tmp_path / "results", receiver, secret=None)
    code, out = finish(proc)
    assert code == 2 and "LIGAN_JOB_SECRET is not set" in out
    proc = start(tmp_path, tmp_path / "results", receiver, "--workers", "0")
    code, out = finish(proc)
    assert code == 2 and "--workers must be from 1 to 64" in out
    assert not receiver.callbacks


def test_register_adds_backend_serve_to_a_parser():
    import argparse

    from backend_server.cli import register
    from setup.config import load_settings

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"), load_settings({}))
    args = parser.parse_args(["backend", "serve", "--session-id", "s", "--job-id", "j",
                              "--results-dir", "/tmp/r", "--callback-url", "http://h:1/cb"])
    assert args.port == 0 and args.host == "127.0.0.1" and args.workers == 1
    assert args.idle_timeout == 0 and args.handler.__name__ == "_serve"


def test_ligan_backend_serve_is_the_same_command():
    from conftest import ligan

    proc = ligan("backend", "serve", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "LIGAN_JOB_SECRET" in proc.stdout and "--callback-url" in proc.stdout
