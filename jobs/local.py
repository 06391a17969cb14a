"""Jobs as local processes: the embedded default when there is no SLURM.

Every job runs as ``python jobs/scripts/local_wrapper.py EXIT_FILE -- COMMAND`` in a new session,
so the job and everything it starts form one process group that cancel and the time limit
signal together (SIGTERM, then SIGKILL after ``kill_grace_s``). The wrapper records the
command's exit status in a file, and the scheduler keeps one small JSON record per job in
``state_dir`` (pid, the process's start time from ``/proc``, time limit, what was asked of it).
Together they let a *restarted* master daemon re-attach to the backends it started
(:meth:`LocalScheduler.attach`): the pid plus start time identify the process even if the pid
was reused, and the exit file says how it ended while nobody watched.

Local jobs are not memory-limited and see every GPU of the machine; ``JobSpec.memory_mb`` and
``gpus`` are recorded but not enforced here (SLURM enforces them).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jobs.scheduler import (JobSpec, JobState, JobStatus, Scheduler, SchedulerError, SubmitError,
                            describe_exit, format_duration)

log = logging.getLogger("ligan.jobs.local")
WRAPPER = Path(__file__).resolve().parent / "scripts" / "local_wrapper.py"
# After writing its exit file the wrapper only has to exit; if it still shows as alive this
# long after, it is treated as gone (its pid may be stuck in the kernel, e.g. on a dead mount).
WRAPPER_EXIT_S = 10.0


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, session id, start time in clock ticks) of ``pid`` from /proc, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rindex(")") + 2:].split()  # fields 3.. of proc(5); the name may hold spaces
    return rest[0], int(rest[3]), int(rest[19])


def _alive(pid: int, start_ticks: int | None) -> bool:
    """Whether ``pid`` is still the process we started (not a zombie, not a reused pid)."""
    if not Path("/proc/self/stat").exists():  # no procfs: trust the pid alone
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    st = _proc_stat(pid)
    if st is None or st[0] in "ZX":
        return False
    return start_ticks is None or st[2] == start_ticks


def _session_members(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (a job's wrapper is its session leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st and st[1] == sid and st[0] not in "ZX":
                members.append(int(entry.name))
    return members


class _Tracked:
    """A job this scheduler watches: its record, and the Popen when it is our child."""

    def __init__(self, record: dict[str, Any], popen: Any = None):
        self.record = record
        self.popen = popen
        self.kill_at: float | None = None


class LocalScheduler(Scheduler):
    """Runs jobs as child processes of this machine.

    ``state_dir`` holds one record per job (the daemon passes ``$LIGAN_HOME/jobs/local``);
    ``kill_grace_s`` is the time between SIGTERM and SIGKILL on cancel and on the time limit.
    A background thread enforces time limits and grace periods while jobs run.
    """

    kind = "local"

    def __init__(self, state_dir: str | Path, kill_grace_s: float = 5.0,
                 poll_interval_s: float = 0.2, python: str = sys.executable):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.kill_grace_s = float(kill_grace_s)
        self.poll_interval_s = float(poll_interval_s)
        self.python = python
        self._jobs: dict[str, _Tracked] = {}
        self._lock = threading.RLock()
        self._monitor: threading.Thread | None = None

    # -- files -------------------------------------------------------------------------------
    def _record_path(self, job_id: str) -> Path:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise SchedulerError(f"not a local job id: {job_id!r}")
        return self.state_dir / f"{job_id}.json"

    def _exit_path(self, job_id: str) -> Path:
        return self.state_dir / f"{job_id}.exit"

    def _save(self, record: dict[str, Any]) -> None:
        path = self._record_path(record["job_id"])
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)

    def recorded_jobs(self) -> list[str]:
        """Ids of every job with a record in ``state_dir`` (finished ones included)."""
        return sorted(p.stem for p in self.state_dir.glob("*.json"))

    # -- interface ---------------------------------------------------------------------------
    def submit(self, spec: JobSpec) -> str:
        spec.validate()
        argv = spec.container.wrap(spec.command, spec.gpus, slurm=False) if spec.container \
            else list(spec.command)
        if shutil.which(argv[0], path=os.environ.get("PATH")) is None and not Path(argv[0]).is_file():
            raise SubmitError(f"job {spec.name}: command {argv[0]!r} not found")
        workdir = Path(spec.workdir) if spec.workdir else Path.cwd()
        if not workdir.is_dir():
            raise SubmitError(f"job {spec.name}: working directory {workdir} does not exist")
        job_id = f"local-{secrets.token_hex(4)}"
        stdout = Path(spec.stdout) if spec.stdout else self.state_dir / f"{job_id}.out"
        stderr = Path(spec.stderr) if spec.stderr else stdout
        for p in {stdout, stderr}:
            p.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **spec.env, LIGAN_JOB_ID=job_id)
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(stdout, "ab"))
            err = files.enter_context(open(stderr, "ab")) if stderr != stdout else out
            try:
                popen = subprocess.Popen(
                    [self.python, str(WRAPPER), str(self._exit_path(job_id)), "--", *argv],
                    cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True, close_fds=True)
            except OSError as e:
                raise SubmitError(f"job {spec.name}: cannot start: {e}") from e
        st = _proc_stat(popen.pid)
        record = {"job_id": job_id, "name": spec.name, "command": argv, "pid": popen.pid,
                  "start_ticks": st[2] if st else None, "started": time.time(),
                  "time_limit_s": spec.time_limit_s, "memory_mb": spec.memory_mb,
                  "gpus": spec.gpus, "workdir": str(workdir), "stdout": str(stdout),
                  "stderr": str(stderr), "host": socket.gethostname(), "intent": None,
                  "final": None}
        with self._lock:
            self._save(record)
            self._jobs[job_id] = _Tracked(record, popen)
            self._ensure_monitor()
        limit = f", time limit {format_duration(spec.time_limit_s)}" if spec.time_limit_s else ""
        log.info("started local job %s (%s) as pid %d%s; output in %s", job_id, spec.name,
                 popen.pid, limit, stdout)
        return job_id

    def attach(self, job_id: str) -> JobState:
        """Watch a job started by an earlier process (e.g. before the daemon restarted).

        Reads the job's record, resumes enforcing its time limit and returns its state;
        :class:`SchedulerError` when there is no record of it.
        """
        with self._lock:
            if job_id in self._jobs:
                return self._observe(self._jobs[job_id])
            path = self._record_path(job_id)
            try:
                record = json.loads(path.read_text())
            except FileNotFoundError:
                raise SchedulerError(f"no local job {job_id} recorded in {self.state_dir}") from None
            tracked = _Tracked(record)
            self._jobs[job_id] = tracked
            state = self._observe(tracked)
            if not state.final:
                log.info("re-attached to local job %s (%s), pid %d", job_id, record["name"],
                         record["pid"])
                self._ensure_monitor()
            return state

    def state(self, job_id: str) -> JobState:
        try:
            return self.attach(job_id)
        except SchedulerError as e:
            return JobState(job_id, JobStatus.UNKNOWN, reason=str(e))

    def cancel(self, job_id: str) -> None:
        with self._lock:
            state = self.attach(job_id)
            tracked = self._jobs[job_id]
            if state.final or tracked.record["intent"] == "cancel":
                return
            log.info("cancelling local job %s (%s): SIGTERM, SIGKILL after %s s", job_id,
                     tracked.record["name"], self.kill_grace_s)
            self._stop(tracked, "cancel")

    def runs_on_submit(self) -> bool:
        """True: a local job is a child process started by :meth:`submit` itself."""
        return True

    def with_resources(self, spec: JobSpec, *, cpus: int = 1, gpus: int = 0,
                       memory_mb: int | None = None, partition: str | None = None,
                       account: str | None = None) -> JobSpec:
        """``spec`` as it is: a local job sees the machine's CPUs and GPUs, has no memory
        limit and no partition or account, so none of these is asked for (nor recorded)."""
        return spec

    def kill_wait_s(self) -> float | None:
        """``kill_grace_s``: the time a cancelled local job has between SIGTERM and SIGKILL."""
        return self.kill_grace_s

    def describe(self) -> dict[str, Any]:
        with self._lock:
            running = [j for j, t in self._jobs.items() if not t.record["final"]]
        return {"kind": self.kind, "state_dir": str(self.state_dir),
                "kill_grace_s": self.kill_grace_s, "host": socket.gethostname(),
                "watched_jobs": running,
                "limits": "time limit enforced; memory and GPUs not limited for local jobs"}

    # -- watching ----------------------------------------------------------------------------
    def _stop(self, tracked: _Tracked, intent: str) -> None:
        """Record why the job is being stopped, SIGTERM its group, schedule the SIGKILL."""
        record = tracked.record
        record["intent"] = intent
        record["intent_at"] = time.time()
        self._save(record)
        self._signal_group(record, signal.SIGTERM)
        tracked.kill_at = time.monotonic() + self.kill_grace_s
        self._ensure_monitor()

    def _signal_group(self, record: dict[str, Any], sig: int) -> None:
        if _alive(record["pid"], record["start_ticks"]):
            try:
                os.killpg(record["pid"], sig)
            except ProcessLookupError:
                pass

    def _observe(self, tracked: _Tracked) -> JobState:
        """The job's state now; records it as final once the job has ended."""
        record = tracked.record
        if record["final"]:
            return JobState.from_dict(record["final"])
        if tracked.popen is not None:
            tracked.popen.poll()  # reap our child so that it does not linger as a zombie
        job_id, host = record["job_id"], record.get("host", "")
        try:
            ended = json.loads(self._exit_path(job_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            ended = None
        if _alive(record["pid"], record["start_ticks"]) and not (
                ended and time.time() - ended.get("ended", 0) > WRAPPER_EXIT_S):
            # Still running, or the wrapper has just recorded the end and is exiting: the job
            # is final only once its wrapper is gone, so "ended" means nothing of it runs.
            return JobState(job_id, JobStatus.RUNNING, node=host)
        if ended is None and tracked.popen is None and not Path("/proc/self/stat").exists():
            return JobState(job_id, JobStatus.UNKNOWN, reason="cannot see the process", node=host)
        # Like SLURM at the end of a job, nothing the job started may live on unobserved
        # (e.g. the wrapper was SIGKILLed by our grace period before its command ended).
        self._kill_leftovers(record)
        state = self._final_state(record, returncode=None if ended is None
                                  else int(ended["returncode"]))
        record["final"] = state.to_dict()
        record["ended"] = (ended or {}).get("ended", time.time())
        self._save(record)
        level = logging.INFO if state.ok or state.status is JobStatus.CANCELLED else logging.WARNING
        log.log(level, "local job %s (%s) ended: %s%s", job_id, record["name"], state.status.value,
                f", {state.reason}" if state.reason else "")
        return state

    @staticmethod
    def _kill_leftovers(record: dict[str, Any]) -> None:
        """SIGKILL whatever still runs in the job's session once its wrapper has gone."""
        leftovers = _session_members(record["pid"]) if Path("/proc").is_dir() else []
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if leftovers:
            log.warning("local job %s (%s) left %d process(es) behind: killed", record["job_id"],
                        record["name"], len(leftovers))

    def _final_state(self, record: dict[str, Any], returncode: int | None) -> JobState:
        job_id, host, intent = record["job_id"], record.get("host", ""), record["intent"]
        code = returncode if returncode is not None and returncode >= 0 else None
        sig = -returncode if returncode is not None and returncode < 0 else None
        if returncode is None:
            sig = int(signal.SIGKILL)
        how = describe_exit(code, sig)
        if intent == "timeout":
            return JobState(job_id, JobStatus.TIMEOUT, node=host, exit_code=code, signal=sig,
                            reason=f"time limit of {format_duration(record['time_limit_s'])} reached"
                                   + (f"; {how}" if how else ""))
        if intent == "cancel":
            return JobState(job_id, JobStatus.CANCELLED, node=host, exit_code=code, signal=sig,
                            reason="cancelled" + (f"; {how}" if how else ""))
        if returncode is None:
            return JobState(job_id, JobStatus.FAILED, node=host, signal=sig,
                            reason=f"the job's process (pid {record['pid']}) was killed by signal"
                                   f" 9 (SIGKILL) before it could record an exit status")
        if returncode == 0:
            return JobState(job_id, JobStatus.COMPLETED, node=host, exit_code=0)
        return JobState(job_id, JobStatus.FAILED, node=host, exit_code=code, signal=sig, reason=how)

    def _ensure_monitor(self) -> None:
        with self._lock:
            if self._monitor is None or not self._monitor.is_alive():
                self._monitor = threading.Thread(target=self._watch, name="ligan-local-jobs",
                                                 daemon=True)
                self._monitor.start()

    def _watch(self) -> None:
        while True:
            with self._lock:
                active = [t for t in self._jobs.values() if not t.record["final"]]
                if not active:
                    self._monitor = None
                    return
                for tracked in active:
                    try:
                        self._tick(tracked)
                    except Exception:  # a bad record must not stop the watching of the others
                        log.exception("watching local job %s failed", tracked.record["job_id"])
            time.sleep(self.poll_interval_s)

    def _tick(self, tracked: _Tracked) -> None:
        state = self._observe(tracked)
        if state.final:
            return
        record = tracked.record
        limit = record.get("time_limit_s")
        if limit and not record["intent"] and time.time() - record["started"] >= limit:
            log.warning("local job %s (%s) reached its time limit of %s: SIGTERM, SIGKILL after"
                        " %s s", record["job_id"], record["name"], format_duration(limit),
                        self.kill_grace_s)
            self._stop(tracked, "timeout")
        elif record["intent"] and tracked.kill_at is None:
            # Re-attached while a stop was under way: give it one more grace period.
            tracked.kill_at = time.monotonic() + self.kill_grace_s
        elif tracked.kill_at is not None and time.monotonic() >= tracked.kill_at:
            log.warning("local job %s (%s) still runs %s s after SIGTERM: SIGKILL",
                        record["job_id"], record["name"], self.kill_grace_s)
            self._signal_group(record, signal.SIGKILL)
            tracked.kill_at = float("inf")

