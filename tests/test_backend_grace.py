"""A backend's grace period fits the time its scheduler leaves between SIGTERM and SIGKILL.

With the default ``LIGAN_BACKEND_GRACE`` (20 s) and the dev cluster's ``KillWait = 2 sec``, a
backend that kept the full grace was SIGKILLed inside it when an operator ran ``scancel``, and
its running task failed instead of moving to the session's next job. These tests use fake
``scontrol``/``sbatch`` commands on ``PATH`` (no cluster needed); the real cluster's version is
``tests/integration/test_master_daemon_slurm.py``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import stat
import textwrap
from pathlib import Path

from jobs.scheduler import fit_grace, kill_wait_needed_s, shutdown_reserve_s
from jobs.slurm import SlurmScheduler, parse_job_list, parse_kill_wait
from setup.config import load_settings

# What ``scontrol show config`` of Slurm 22.05 prints around KillWait (abridged).
SCONTROL_CONFIG = """\
Configuration data as of 2024-05-02T10:11:12
AccountingStorageBackupHost = (null)
JobCompType             = jobcomp/filetxt
KeepAliveTime           = SYSTEM_DEFAULT
KillOnBadExit           = 0
KillWait                = {kill_wait} sec
LaunchParameters        = (null)
MinJobAge               = 600 sec
"""


def test_kill_wait_is_read_from_scontrol_show_config():
    assert parse_kill_wait(SCONTROL_CONFIG.format(kill_wait=2)) == 2
    assert parse_kill_wait(SCONTROL_CONFIG.format(kill_wait=30)) == 30
    assert parse_kill_wait("KillWait=45\n") == 45  # slurm.conf spelling
    assert parse_kill_wait("KillOnBadExit = 0\nMinJobAge = 300 sec\n") is None


def test_the_default_grace_is_fitted_into_the_dev_clusters_kill_wait():
    default = load_settings({}).backend_grace
    assert default == 20
    grace, warning = fit_grace(default, 2)
    assert grace + shutdown_reserve_s(2) <= 2 and grace == 0.5
    assert "KillWait" in warning and "0.5 s" in warning and "30 s" in warning
    # Slurm's own default KillWait (30 s) leaves the default grace whole
    assert fit_grace(default, 30) == (20, "")
    assert fit_grace(default, None) == (20, "")  # unknown: kept
    assert fit_grace(5, 10) == (5, "")
    grace, warning = fit_grace(default, 1)
    assert grace == 0 and "too short" in warning
    for g in (0.5, 1.5, 5, 12, 20, 60):  # the KillWait the warning asks for is enough
        assert fit_grace(g, kill_wait_needed_s(g)) == (g, "")


def _fake_tools(bin_dir: Path, kill_wait: int) -> Path:
    """``scontrol`` (counts its calls) and ``sbatch`` (answers job id 4242) on ``bin_dir``."""
    bin_dir.mkdir()
    calls = bin_dir / "scontrol.calls"
    config = bin_dir / "config.txt"
    config.write_text(SCONTROL_CONFIG.format(kill_wait=kill_wait))
    for name, body in (("scontrol", f'echo "$@" >> "{calls}"\ncat "{config}"\n'),
                       ("sbatch", "echo 4242\n"),
                       ("squeue", textwrap.dedent("""\
                           echo '4242|ligan-backend-user-1|ops|RUNNING|1:02|8:00:00|node1|None'
                           echo '77|ligan-train-stylegan2|ann|RUNNING|3:04:05|2-00:00:00|node2|None'
                           echo '78|ligan-dataset-build|bob|PENDING|0:00|4:00:00||Resources'
                           echo '79|somebody-else|carl|RUNNING|0:10|1:00:00|node3|None'
                           """))):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return calls


def test_slurm_scheduler_asks_scontrol_for_kill_wait_once(tmp_path, monkeypatch):
    calls = _fake_tools(tmp_path / "bin", kill_wait=2)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    sched = SlurmScheduler(script_dir=tmp_path / "scripts")
    assert sched.kill_wait_s() == 2.0 and sched.kill_wait_s() == 2.0
    assert calls.read_text().splitlines() == ["show config"]
    assert sched.describe()["kill_wait_s"] == 2


def test_slurm_backend_jobs_get_a_grace_that_fits_kill_wait_with_the_defaults(
        tmp_path, monkeypatch, caplog):
    """The daemon's backend job script, with every setting at its default, on a cluster whose
    KillWait is 2 s: ``--grace 0.5``, and one warning saying why."""
    from master_daemon.events import EventHub
    from master_daemon.manager import Manager
    from master_daemon.store import Store

    _fake_tools(tmp_path / "bin", kill_wait=2)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("LIGAN_BACKEND_GRACE", raising=False)
    settings = dataclasses.replace(load_settings({}), home=tmp_path / "home", scheduler="slurm")
    sched = SlurmScheduler(script_dir=tmp_path / "scripts")
    store = Store(tmp_path / "state.sqlite3")
    hub = EventHub(store)
    manager = Manager(settings, sched, store, hub, bundle=tmp_path / "bundle")
    manager.callback_base = "http://127.0.0.1:1/callbacks"
    try:
        with caplog.at_level(logging.WARNING, logger="ligan.daemon"):
            manager.start()
            session = manager.start_session("user-1")
        assert session["backend"]["job_id"] == "4242"
        script = next((tmp_path / "scripts").glob("*.sbatch")).read_text()
        assert " --grace 0.5" in script, script
        warnings = [r.getMessage() for r in caplog.records if "KillWait" in r.getMessage()]
        assert len(warnings) == 1 and "grace of 0.5 s" in warnings[0], warnings
    finally:
        manager.shutdown(cancel_backends=False)
        hub.close()
        store.close()


def test_local_backends_keep_their_full_grace(tmp_path):
    """The local scheduler kills 15 s after the grace (master_daemon.app): nothing to fit."""
    from master_daemon.app import scheduler_from_settings

    settings = dataclasses.replace(load_settings({}), home=tmp_path)
    sched = scheduler_from_settings(settings)
    assert fit_grace(settings.backend_grace, sched.kill_wait_s()) == (20, "")


def test_running_jobs_lists_ligans_other_jobs():
    jobs = parse_job_list(textwrap.dedent("""\
        4242|ligan-backend-user-1|ops|RUNNING|1:02|8:00:00|node1|None
        77|ligan-train-stylegan2|ann|RUNNING|3:04:05|2-00:00:00|node2|None
        78|ligan-dataset-build|bob|PENDING|0:00|4:00:00||Resources
        79|somebody-else|carl|RUNNING|0:10|1:00:00|node3|None
        """), exclude_prefix="ligan-backend-")
    assert [j["job_id"] for j in jobs] == ["77", "78"]
    assert jobs[0] == {"job_id": "77", "name": "ligan-train-stylegan2", "user": "ann",
                       "state": "RUNNING", "elapsed": "3:04:05", "time_limit": "2-00:00:00",
                       "node": "node2", "reason": ""}
    assert jobs[1]["reason"] == "Resources" and jobs[1]["node"] == ""


def test_slurm_running_jobs_asks_squeue(tmp_path, monkeypatch):
    _fake_tools(tmp_path / "bin", kill_wait=2)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    sched = SlurmScheduler(script_dir=tmp_path / "scripts")
    names = [j["name"] for j in sched.running_jobs(exclude_prefix="ligan-backend-")]
    assert names == ["ligan-train-stylegan2", "ligan-dataset-build"]
