"""jobs.slurm against a real single-node SLURM cluster, plus its parsers on recorded output.

The cluster tests submit tiny shell/Python jobs and bound every wait. The time-limit job needs
Slurm's smallest limit, one minute (plus up to 30 s until slurmctld checks), so it is submitted
first, runs beside the other tests, and is checked last.
"""
from __future__ import annotations

import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest

from jobs import Container, JobSpec, JobStatus, SubmitError, make_scheduler
from jobs.slurm import (SlurmRecord, decode_exit, parse_pipe_rows, parse_sacct_json,
                        parse_squeue_json, sbatch_error, slurm_time, to_job_state)
from tests.conftest import wait_until

PY = sys.executable


def wait_for(sched, job_id, want, timeout):
    """Poll until the job's status is in ``want``; return (state, seconds waited)."""
    t0 = time.monotonic()
    seen = []
    while True:
        st = sched.state(job_id)
        if not seen or seen[-1] != st.status:
            seen.append(st.status)
        if st.status in want:
            return st, time.monotonic() - t0
        if st.final or time.monotonic() - t0 > timeout:
            pytest.fail(f"job {job_id}: wanted {[w.value for w in want]} within {timeout} s, "
                        f"saw {[s.value for s in seen]}; last: {st}")
        time.sleep(0.25)


def wait_file(path: Path, timeout: float = 15) -> str:
    return wait_until(lambda: path.exists() and path.read_text().strip(), timeout,
                      f"{path} written", interval=0.1)


@pytest.fixture(scope="module")
def sched(slurm_cluster, tmp_path_factory):
    return make_scheduler("slurm", script_dir=tmp_path_factory.mktemp("scripts"),
                          slurm_conf=slurm_cluster.conf, use_json="yes")


@pytest.fixture(scope="module")
def timeout_job(sched, tmp_path_factory):
    """Submitted before every other test of this module (see test_00_start_timeout_job)."""
    out = tmp_path_factory.mktemp("timeout") / "out.log"
    job = sched.submit(JobSpec("ligan-timeout", ["sleep", "300"], time_limit_s=30, stdout=out))
    return job, time.monotonic(), out


def test_00_start_timeout_job(timeout_job):
    """Only starts the clock of the time-limit job (checked by the last test)."""
    assert timeout_job[0].isdigit()


def test_submit_running_completed_with_secret_in_env_only(sched, tmp_path):
    out = tmp_path / "job.out"
    secret = "s3cr3t-callback-token"
    spec = JobSpec("ligan-ok", [PY, "-c", "import os,time; time.sleep(2); "
                                "print('token', os.environ['LIGAN_TEST_TOKEN'])"],
                   env={"LIGAN_TEST_TOKEN": secret}, stdout=out, workdir=tmp_path,
                   time_limit_s=300, memory_mb=256)
    job = sched.submit(spec)
    st, _ = wait_for(sched, job, {JobStatus.RUNNING}, 30)
    assert st.node and not st.final
    st, _ = wait_for(sched, job, {JobStatus.COMPLETED}, 30)
    assert st.exit_code == 0 and st.reason == "" and st.ok
    assert f"token {secret}" in out.read_text()
    scripts = list(Path(sched.script_dir).glob("ligan-ok-*.sbatch"))
    assert len(scripts) == 1
    assert stat.S_IMODE(scripts[0].stat().st_mode) == 0o600
    text = scripts[0].read_text()
    assert secret not in text and "#SBATCH --mem=256M" in text and "#SBATCH --time=00:05:00" in text


def test_failed_exit_code(sched):
    job = sched.submit(JobSpec("ligan-exit3", ["sh", "-c", "exit 3"]))
    st, _ = wait_for(sched, job, {JobStatus.FAILED}, 30)
    assert st.exit_code == 3 and "exited with code 3" in st.reason


def test_scancel_detected_within_10s(sched, slurm_cluster):
    job = sched.submit(JobSpec("ligan-cancel", ["sleep", "120"]))
    wait_for(sched, job, {JobStatus.RUNNING}, 30)
    r = slurm_cluster.run("scancel", job)  # as an operator would
    assert r.returncode == 0, r.stderr
    st, waited = wait_for(sched, job, {JobStatus.CANCELLED}, 10)
    assert waited < 10 and "cancelled" in st.reason
    print(f"scancel detected after {waited:.1f} s: {st.reason}")


def test_cancel_through_the_scheduler(sched):
    job = sched.submit(JobSpec("ligan-cancel2", ["sleep", "120"]))
    wait_for(sched, job, {JobStatus.RUNNING}, 30)
    sched.cancel(job)
    st, waited = wait_for(sched, job, {JobStatus.CANCELLED}, 10)
    sched.cancel(job)  # cancelling a finished job is harmless
    assert sched.state(job).status is JobStatus.CANCELLED


def test_kill_9_is_failed_with_reason_within_10s(sched, tmp_path):
    pidfile = tmp_path / "pid"
    job = sched.submit(JobSpec("ligan-kill9", [PY, "-c", f"import os,time; open({str(pidfile)!r},"
                                               "'w').write(str(os.getpid())); time.sleep(120)"]))
    pid = int(wait_file(pidfile))
    os.kill(pid, 9)
    st, waited = wait_for(sched, job, {JobStatus.FAILED}, 10)
    assert st.signal == 9 and "killed by signal 9" in st.reason
    print(f"kill -9 detected after {waited:.1f} s: {st.reason}")


def test_bad_partition_is_a_clear_error(sched):
    with pytest.raises(SubmitError) as err:
        sched.submit(JobSpec("ligan-badpart", ["true"], partition="no-such-partition"))
    assert "Invalid partition" in str(err.value) and "no-such-partition" in str(err.value)
    assert "Slurm refused job ligan-badpart" in str(err.value)


def test_cpu_partition_and_job_on_this_node(sched, slurm_cluster, tmp_path):
    out = tmp_path / "p.out"
    job = sched.submit(JobSpec("ligan-cpu", ["sh", "-c", "echo $SLURM_JOB_PARTITION"],
                               partition="cpu", stdout=out))
    st, _ = wait_for(sched, job, {JobStatus.COMPLETED}, 30)
    assert out.read_text().splitlines()[-1] == "cpu"
    assert st.node == os.uname().nodename.split(".")[0]


def test_memory_limit_out_of_memory(sched, slurm_cluster):
    if not slurm_cluster.cgroups:
        pytest.skip("this machine's Slurm runs without cgroups (task/none), so it cannot "
                    "enforce memory limits: OUT_OF_MEMORY not testable here")
    job = sched.submit(JobSpec("ligan-oom", [PY, "-c", "import time; x = bytearray(600 << 20); "
                                             "x[::4096] = b'1' * len(x[::4096]); time.sleep(5)"],
                               memory_mb=100))
    st, _ = wait_for(sched, job, {JobStatus.OUT_OF_MEMORY}, 30)
    assert "out of memory" in st.reason and "100 MB" in st.reason and "OutOfMemory" in st.reason


def test_text_formats_agree_with_json(sched, slurm_cluster, tmp_path_factory):
    """squeue -o / scontrol, and sacct --completion (no slurmdbd here) give the same states."""
    ok = sched.submit(JobSpec("ligan-fmt-ok", ["true"]))
    bad = sched.submit(JobSpec("ligan-fmt-bad", ["sh", "-c", "exit 7"]))
    wait_for(sched, ok, {JobStatus.COMPLETED}, 30)
    wait_for(sched, bad, {JobStatus.FAILED}, 30)
    text = make_scheduler("slurm", script_dir=tmp_path_factory.mktemp("s2"),
                          slurm_conf=slurm_cluster.conf, use_json="no")
    states = text.states([ok, bad])
    assert states[ok].status is JobStatus.COMPLETED and states[ok].exit_code == 0
    assert states[bad].status is JobStatus.FAILED and states[bad].exit_code == 7
    assert text.describe()["squeue"] == "squeue -o"
    # Jobs leave squeue after MinJobAge; then sacct answers. Ask it directly.
    acct = text._sacct([ok, bad])
    assert text.describe()["sacct"] in ("plain", "completion")
    assert acct[ok].state == "COMPLETED" and acct[bad].exit_code == 7
    unknown = text.state("999999")
    assert unknown.status is JobStatus.UNKNOWN and "999999" in unknown.reason


def test_describe(sched, slurm_cluster):
    d = sched.describe()
    version = slurm_cluster.run("sinfo", "--version").stdout.split()[-1]
    assert d["slurm_version"] == version and d["kind"] == "slurm"
    assert "pyslurm" in d["pyslurm"] or "disabled" in d["pyslurm"]
    print("scheduler:", d)


# Correct in any order or alone (it then waits the job's whole ~100 s itself); the names only
# say where it belongs: test_00 first and this test last in the file, so that the other tests
# run while Slurm lets the job reach its time limit.
def test_zz_time_limit_is_timeout_with_slurms_reason(sched, timeout_job):
    job, started, out = timeout_job
    # Slurm limits are whole minutes (30 s -> 1 min); slurmctld checks them every 30 s.
    remaining = 100 - (time.monotonic() - started)
    st, _ = wait_for(sched, job, {JobStatus.TIMEOUT}, max(remaining, 5))
    assert "time limit of 1 min reached" in st.reason and "TimeLimit" in st.reason
    assert "DUE TO TIME LIMIT" in out.read_text()


# -- parsers, on output recorded from Slurm 22.05 and 23.x+ (no cluster needed) ------------------
def test_decode_exit_all_spellings():
    assert decode_exit(768) == (3, None)  # raw wait status (squeue --json 22.05)
    assert decode_exit(9) == (None, 9)
    assert decode_exit(253) == (None, None)  # OUT_OF_MEMORY's "0:125" is no real signal
    assert decode_exit("3:0") == (3, None) and decode_exit("0:9") == (0, 9)
    assert decode_exit({"status": ["SIGNALED"], "return_code": {"set": True, "number": 0},
                        "signal": {"id": {"set": True, "number": 9}, "name": "KILL"}}) == (0, 9)
    assert decode_exit({"status": "FAILED", "return_code": 2}) == (2, None)
    assert decode_exit(None) == (None, None)


def test_parse_squeue_json_23_format_filters_ids():
    doc = {"jobs": [
        {"job_id": 5, "job_state": ["TIMEOUT"], "state_reason": "TimeLimit", "nodes": "n1",
         "exit_code": {"return_code": {"set": True, "number": 0}, "signal": {"id": {"set": True,
                       "number": 15}}}, "time_limit": {"set": True, "infinite": False,
                                                       "number": 2}},
        {"job_id": 6, "job_state": "RUNNING", "state_reason": "None", "nodes": "n2",
         "exit_code": 0, "time_limit": 1}]}
    recs = parse_squeue_json(doc, ["5"])
    assert list(recs) == ["5"]
    st = to_job_state(recs["5"])
    assert st.status is JobStatus.TIMEOUT and st.signal == 15 and st.node == "n1"
    assert st.reason == "time limit of 2 min reached (Slurm: TimeLimit)"


def test_parse_sacct_json_and_rows():
    doc = {"jobs": [{"job_id": 7, "state": {"current": "NODE_FAIL", "reason": "None"},
                     "exit_code": {"status": "SIGNALED", "return_code": 0,
                                   "signal": {"signal_id": 9, "name": "KILL"}},
                     "nodes": "gpu3", "time": {"limit": 60}}]}
    st = to_job_state(parse_sacct_json(doc, ["7"])["7"])
    assert st.status is JobStatus.NODE_FAIL and st.reason == "node gpu3 failed"
    rows = "8|CANCELLED by 0|0:15|gpu1|01:00:00|None\n8|PENDING|0:0|(null)|1:00:00|\n" \
           "9|OUT_OF_MEMORY|0:125|gpu2|UNLIMITED|OutOfMemory\n"
    recs = parse_pipe_rows(rows, ["8", "9"], "sacct")
    assert recs["8"].state == "PENDING"  # the last row of a requeued job wins
    assert recs["9"].state == "OUT_OF_MEMORY" and recs["9"].signal is None
    assert to_job_state(recs["9"], memory_mb=4096).reason == \
        "out of memory: the job exceeded its memory limit of 4096 MB (Slurm: OutOfMemory)"


def test_reasons_in_words():
    pend = to_job_state(SlurmRecord("1", "PENDING", reason="PartitionDown"))
    assert pend.status is JobStatus.PENDING and pend.reason == \
        "its partition is down (Slurm: PartitionDown)"
    assert pend.code == "PartitionDown" and pend.stuck  # what the daemon acts on
    waiting = to_job_state(SlurmRecord("5", "PENDING", reason="Resources"))
    assert waiting.code == "Resources" and not waiting.stuck
    assert not to_job_state(SlurmRecord("6", "PENDING", reason="None")).code
    late = to_job_state(SlurmRecord("7", "TIMEOUT", reason="TimeLimit"))
    assert late.timed_out and late.code == "TimeLimit" and not late.stuck
    boot = to_job_state(SlurmRecord("2", "BOOT_FAIL", reason="None"))
    assert boot.status is JobStatus.FAILED and "failed to boot" in boot.reason
    kill = to_job_state(SlurmRecord("3", "FAILED", reason="JobLaunchFailure", signal=9))
    assert kill.reason == "killed by signal 9 (SIGKILL) (Slurm: JobLaunchFailure)"
    assert to_job_state(SlurmRecord("4", "WEIRD_NEW_STATE")).status is JobStatus.UNKNOWN


def test_sbatch_error_and_time():
    err = ("sbatch: error: invalid partition specified: nope\n"
           "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert sbatch_error(err) == "Invalid partition name specified (invalid partition specified: nope)"
    assert sbatch_error("sbatch: error: Batch job submission failed: Requested node "
                        "configuration is not available\n") == \
        "Requested node configuration is not available"
    assert slurm_time(30) == "00:00:30" and slurm_time(90061) == "1-01:01:01"


def test_script_with_gres_account_and_containers(tmp_path):
    sched = make_scheduler("slurm", script_dir=tmp_path, partition="gpu", account="lab",
                           gpu_type="a100", time_limit_s=7200, memory_mb=32000,
                           extra_args=["--qos=normal"], setup_lines=["module load cuda"])
    spec = JobSpec("backend-1", ["python", "-m", "backend_server", "--port", "0"], gpus=1,
                   env={"LIGAN_CALLBACK_SECRET": "xyz"}, stdout=tmp_path / "a b.log")
    text = sched.render_script(spec)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --gres=gpu:a100:1", "#SBATCH --time=02:00:00",
                 "#SBATCH --mem=32000M", "#SBATCH --qos=normal", "#SBATCH --no-requeue",
                 f'#SBATCH --output="{tmp_path}/a b.log"', "module load cuda",
                 "exec python -m backend_server --port 0"):
        assert line in text, line
    assert "xyz" not in text
    spec.container = Container("apptainer", "/images/ligan.sif", mounts=("/data:/data",))
    assert "exec apptainer exec --nv --bind /data:/data /images/ligan.sif python -m" in \
        sched.render_script(spec)
    spec.container = Container("enroot", "registry#ligan/ligan:1")
    assert re.search(r"exec srun --ntasks=1 '--container-image=registry#ligan/ligan:1' python",
                     sched.render_script(spec))
    with pytest.raises(ValueError):
        Container("docker", "x")
