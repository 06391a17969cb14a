"""jobs.local: jobs as child processes, with time limits, cancel and re-attaching after a restart."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from jobs import JobSpec, JobStatus, SchedulerError, SubmitError, make_scheduler
from jobs.local import _alive, _session_members
from tests.conftest import wait_until

PY = sys.executable


@pytest.fixture
def sched(tmp_path):
    return make_scheduler("local", state_dir=tmp_path / "jobs", kill_grace_s=1.0)


def wait_final(sched, job_id, timeout=10.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = sched.state(job_id)
        if st.final:
            return st, time.monotonic() - t0
        time.sleep(0.05)
    pytest.fail(f"job {job_id} not finished within {timeout} s: {sched.state(job_id)}")


def wait_file(path: Path, timeout: float = 10.0) -> str:
    return wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                      f"{path} written", interval=0.05)


def sleeper(pidfile: Path, ignore_term: bool = False) -> list[str]:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
    return [PY, "-c", f"import os, signal, time; {ignore}open({str(pidfile)!r}, 'w')"
                      ".write(str(os.getpid())); time.sleep(60)"]


def test_completed_with_output_env_and_workdir(sched, tmp_path):
    out = tmp_path / "logs" / "job.out"
    job = sched.submit(JobSpec("ok", [PY, "-c", "import os; print(os.environ['TOKEN'], "
                                      "os.getcwd())"], env={"TOKEN": "t0ken"}, stdout=out,
                               workdir=tmp_path))
    st, _ = wait_final(sched, job)
    assert st.status is JobStatus.COMPLETED and st.exit_code == 0 and st.reason == ""
    assert out.read_text().split() == ["t0ken", str(tmp_path)]
    record = (tmp_path / "jobs" / f"{job}.json").read_text()
    assert "t0ken" not in record  # secrets live in the environment only
    assert oct((tmp_path / "jobs" / f"{job}.json").stat().st_mode & 0o777) == "0o600"


def test_nonzero_exit_and_stderr(sched, tmp_path):
    job = sched.submit(JobSpec("bad", ["sh", "-c", "echo oops >&2; exit 3"],
                               stdout=tmp_path / "o", stderr=tmp_path / "e"))
    st, _ = wait_final(sched, job)
    assert st.status is JobStatus.FAILED and st.exit_code == 3
    assert st.reason == "exited with code 3"
    assert (tmp_path / "e").read_text() == "oops\n" and (tmp_path / "o").read_text() == ""


def test_kill_9_is_failed_with_signal(sched, tmp_path):
    job = sched.submit(JobSpec("victim", sleeper(tmp_path / "pid")))
    assert sched.state(job).status is JobStatus.RUNNING
    os.kill(int(wait_file(tmp_path / "pid")), signal.SIGKILL)
    st, waited = wait_final(sched, job)
    assert st.status is JobStatus.FAILED and st.signal == 9
    assert st.reason == "killed by signal 9 (SIGKILL)" and waited < 10


def test_cancel_sigterm(sched, tmp_path):
    job = sched.submit(JobSpec("c", sleeper(tmp_path / "pid")))
    wait_file(tmp_path / "pid")
    sched.cancel(job)
    st, waited = wait_final(sched, job)
    assert st.status is JobStatus.CANCELLED and st.signal == 15 and waited < 1
    sched.cancel(job)  # harmless on a finished job
    assert sched.state(job).status is JobStatus.CANCELLED


def test_cancel_escalates_to_sigkill_after_grace(sched, tmp_path):
    job = sched.submit(JobSpec("stubborn", sleeper(tmp_path / "pid", ignore_term=True)))
    pid = int(wait_file(tmp_path / "pid"))
    sched.cancel(job)
    st, waited = wait_final(sched, job)
    assert st.status is JobStatus.CANCELLED and "SIGKILL" in st.reason
    assert 0.8 < waited < 5
    assert not _alive(pid, None)


def test_time_limit_is_timeout(sched, tmp_path):
    job = sched.submit(JobSpec("slow", sleeper(tmp_path / "pid"), time_limit_s=1))
    st, waited = wait_final(sched, job)
    assert st.status is JobStatus.TIMEOUT
    assert st.reason.startswith("time limit of 1 s reached") and waited < 3


def test_reattach_after_restart(tmp_path):
    """A new scheduler on the same state dir (a restarted daemon) finds and controls the job."""
    state_dir = tmp_path / "jobs"
    first = make_scheduler("local", state_dir=state_dir, kill_grace_s=1.0)
    running = first.submit(JobSpec("backend", sleeper(tmp_path / "pid")))
    short = first.submit(JobSpec("short", ["sh", "-c", "exit 5"]))
    wait_file(tmp_path / "pid")
    first._jobs.clear()  # the owning process "restarts": nobody watches the jobs now
    time.sleep(0.3)
    second = make_scheduler("local", state_dir=state_dir, kill_grace_s=1.0)
    assert set(second.recorded_jobs()) == {running, short}
    assert second.attach(running).status is JobStatus.RUNNING
    ended = second.attach(short)  # ended while unwatched: the wrapper recorded how
    assert ended.status is JobStatus.FAILED and ended.exit_code == 5
    second.cancel(running)
    st, _ = wait_final(second, running)
    assert st.status is JobStatus.CANCELLED
    with pytest.raises(SchedulerError):
        second.attach("local-nosuchjob")
    assert second.state("local-nosuchjob").status is JobStatus.UNKNOWN


def test_time_limit_survives_reattach(tmp_path):
    state_dir = tmp_path / "jobs"
    first = make_scheduler("local", state_dir=state_dir, kill_grace_s=1.0)
    job = first.submit(JobSpec("limited", sleeper(tmp_path / "pid"), time_limit_s=2))
    record = json.loads((state_dir / f"{job}.json").read_text())
    first._jobs.clear()  # forget it without stopping it, as a crashed daemon would
    second = make_scheduler("local", state_dir=state_dir, kill_grace_s=1.0)
    second.attach(job)
    st, _ = wait_final(second, job, timeout=6)
    assert st.status is JobStatus.TIMEOUT
    assert not _session_members(record["pid"])


def test_wrapper_killed_leaves_no_orphans(sched, tmp_path):
    job = sched.submit(JobSpec("orphan", sleeper(tmp_path / "pid")))
    child = int(wait_file(tmp_path / "pid"))
    wrapper = json.loads((sched.state_dir / f"{job}.json").read_text())["pid"]
    os.kill(wrapper, signal.SIGKILL)
    st, _ = wait_final(sched, job)
    assert st.status is JobStatus.FAILED and "SIGKILL" in st.reason
    time.sleep(0.2)
    assert not _alive(child, None)


def test_refused_specs(sched, tmp_path):
    with pytest.raises(SubmitError, match="not found"):
        sched.submit(JobSpec("x", ["/no/such/program"]))
    with pytest.raises(SubmitError, match="working directory"):
        sched.submit(JobSpec("x", ["true"], workdir=tmp_path / "missing"))
    with pytest.raises(SubmitError):
        sched.submit(JobSpec("x", []))
    with pytest.raises(SubmitError):
        sched.submit(JobSpec("x", ["true"], env={"BAD NAME": "1"}))
    with pytest.raises(SubmitError):
        sched.submit(JobSpec("x", ["true"], time_limit_s=0))
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("kubernetes")


def test_describe(sched):
    d = sched.describe()
    assert d["kind"] == "local" and d["kill_grace_s"] == 1.0 and "memory" in d["limits"]


def test_leftover_processes_are_killed_when_the_job_ends(sched, tmp_path):
    """A command that exits but leaves a background process behind: like SLURM, the job's end
    takes the leftover with it, and the job counts as completed."""
    pidfile = tmp_path / "bg"
    job = sched.submit(JobSpec("leaky", ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; exit 0"]))
    st, _ = wait_final(sched, job)
    assert st.status is JobStatus.COMPLETED
    leftover = int(wait_file(pidfile))
    deadline = time.monotonic() + 2
    while _alive(leftover, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(leftover, None)


def test_structured_state_and_what_a_local_job_asks_for(sched, tmp_path):
    """What the daemon asks of a scheduler instead of reading its reasons or its kind: a local
    job runs at once, asks for no cluster resources, and its final state (recorded in a file)
    keeps the structured fields; records written before those fields still read."""
    from jobs import JobState

    assert sched.runs_on_submit()
    spec = JobSpec("plain", [PY, "-c", "pass"])
    assert sched.with_resources(spec, cpus=8, gpus=2, memory_mb=4096, partition="gpu",
                                account="lab") == spec
    job = sched.submit(spec)
    st, _ = wait_final(sched, job)
    assert st.ok and not st.stuck and not st.timed_out and st.code == ""
    state = JobState(job, JobStatus.PENDING, reason="queued", code="Resources", stuck=True)
    assert JobState.from_dict(state.to_dict()) == state
    old = {"job_id": job, "status": "COMPLETED", "reason": "", "exit_code": 0}
    assert JobState.from_dict(old) == JobState(job, JobStatus.COMPLETED, exit_code=0)
