"""The master daemon with the SLURM scheduler against the real single-node cluster
(``slurm_cluster``): backends are sbatch jobs running the real backend with the tiny bundle.

The backends run with the default ``LIGAN_BACKEND_GRACE`` (20 s): the daemon reads the
cluster's KillWait (2 s) from ``scontrol show config`` and gives them a grace that fits
(0.5 s), so that ``scancel`` mid-task moves the task to the next job. Slurm's smallest time
limit is one minute; the time-limit test waits for it.
"""
from __future__ import annotations

import time

import pytest

from master_daemon.testing import EventStream, start_daemon
from tests.conftest import (READY_S, current_backend, post_task, session, task, wait_state,
                            wait_task, wait_until)


@pytest.fixture(scope="module")
def sd(slurm_cluster, tmp_path_factory, tiny_bundle_dir):
    import os

    home = tmp_path_factory.mktemp("daemon-slurm")
    old = os.environ.pop("LIGAN_BACKEND_GRACE", None)  # the default, 20 s
    d = start_daemon(home, tiny_bundle_dir, "slurm", frontend_command=None,
                     scheduler_settings={"slurm_conf": slurm_cluster.conf, "use_json": "yes"},
                     max_backends=3, session_idle_timeout=0, callback_host="127.0.0.1",
                     backend_host="127.0.0.1", slurm_gpus=0, slurm_cpus=1,
                     slurm_memory_mb=3000, backend_time_limit=60, backend_renew_before=8,
                     backend_grace=20.0)
    assert d.daemon.manager.backend_grace() == 0.5  # fitted into KillWait = 2 s
    yield d
    jobs = [b.job_id for b in d.daemon.manager.backends.values() if b.job_id]
    d.stop(cancel_backends=True)
    if jobs:
        slurm_cluster.run("scancel", *jobs)
    if old is not None:
        os.environ["LIGAN_BACKEND_GRACE"] = old


def test_slurm_backend_ready_task_result_then_scancel_mid_task(sd, slurm_cluster):
    d = sd
    t0 = time.monotonic()
    s = d.api("PUT", "/api/sessions/slurm-1").json()
    assert s["state"] == "starting" and s["backend"]["scheduler"] == "slurm"
    assert s["backend"]["job_id"].isdigit()
    ready = wait_state(d, "slurm-1", "ready", READY_S)
    print(f"start-of-interaction -> ready with SLURM: {time.monotonic() - t0:.1f} s")
    assert ready["backend"]["state"] == "RUNNING"
    t = post_task(d, "slurm-1", "random", {"amount": 3, "seed": 1})
    done = wait_task(d, "slurm-1", t["task_id"], timeout=60)
    assert done["state"] == "done" and len(done["result"]["faces"]) == 3
    # an operator cancels the job while a task runs
    es = EventStream(d.events_url("slurm-1"))
    try:
        job = ready["backend"]["job_id"]
        # long enough to be running when the job is cancelled, short enough for what is
        # left of it to finish within the next one-minute job on two busy cores (~30 faces/s)
        long = post_task(d, "slurm-1", "random", {"amount": 400, "seed": 2})
        wait_until(lambda: task(d, "slurm-1", long["task_id"])["state"] == "running", 30,
                   "long task running")
        t0 = time.monotonic()
        r = slurm_cluster.run("scancel", job)
        assert r.returncode == 0, r.stderr

        def noticed():
            tk = task(d, "slurm-1", long["task_id"])
            if tk["state"] == "failed":
                return tk["error"]
            for e in es.events:
                if e["event"] == "session" and "ended" in e["data"]["reason"]:
                    return e["data"]["reason"]
            return None

        why = wait_until(noticed, 10, "the cancelled job noticed")
        print(f"scancel noticed after {time.monotonic() - t0:.1f} s: {why}")
        assert "cancelled" in why, why
        end = wait_task(d, "slurm-1", long["task_id"], timeout=READY_S + 120)
        # interrupted within the fitted grace, re-queued, and finished on a new job
        assert end["state"] == "done", end
        assert d.daemon.manager.tasks[long["task_id"]].attempts >= 2
        assert end["result"]["faces_total"] == 400
        assert current_backend(d, "slurm-1").job_id != job
    finally:
        es.close()
    assert d.api("DELETE", "/api/sessions/slurm-1").json()["state"] == "stopped"


def test_slurm_time_limit_renews_without_losing_queued_tasks(sd, slurm_cluster):
    d = sd
    d.api("PUT", "/api/sessions/slurm-2")
    wait_state(d, "slurm-2", "ready", READY_S)
    first = current_backend(d, "slurm-2")
    # the replacement is submitted 8 s before the one-minute limit
    wait_until(lambda: first.renewed_by, 90, "the replacement submitted")
    tasks = [post_task(d, "slurm-2", "random", {"amount": 6000, "seed": 10}),
             post_task(d, "slurm-2", "random", {"amount": 2, "seed": 11}),
             post_task(d, "slurm-2", "random", {"amount": 2, "seed": 12})]
    ends = [wait_task(d, "slurm-2", t["task_id"], timeout=READY_S + 120) for t in tasks]
    assert [e["state"] for e in ends] == ["done"] * 3, ends
    assert ends[0]["result"]["faces_total"] == 6000
    st = wait_until(lambda: (lambda s: s if s.final else None)(
        d.daemon.scheduler.state(first.job_id)), 120, "the first job ended")
    print(f"first job: {st.status.value}, {st.reason}; attempts:",
          [d.daemon.manager.tasks[t["task_id"]].attempts for t in tasks])
    assert current_backend(d, "slurm-2").backend_id != first.backend_id
    assert session(d, "slurm-2")["state"] == "ready"


def test_slurm_job_stuck_pending_fails_early_with_slurms_reason(sd, slurm_cluster):
    import dataclasses

    d = sd
    m = d.daemon.manager
    r = slurm_cluster.run("scontrol", "update", "PartitionName=cpu", "State=DOWN")
    assert r.returncode == 0, r.stderr
    old = m.settings
    m.settings = dataclasses.replace(old, slurm_partition="cpu")
    try:
        s = d.api("PUT", "/api/sessions/slurm-3").json()
        job = s["backend"]["job_id"]
        t0 = time.monotonic()
        failed = wait_state(d, "slurm-3", "failed", 30)
        print(f"stuck job noticed after {time.monotonic() - t0:.1f} s: {failed['reason']}")
        assert "partition is down" in failed["reason"] and "PartitionDown" in failed["reason"]
        wait_until(lambda: d.daemon.scheduler.state(job).final, 30, "the stuck job cancelled")
    finally:
        m.settings = old
        slurm_cluster.run("scontrol", "update", "PartitionName=cpu", "State=UP")
