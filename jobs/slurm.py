"""Jobs as SLURM batch jobs: ``sbatch`` a generated script, watch with squeue/sacct, ``scancel``.

Submission writes a batch script (``jobs/scripts/slurm_batch.sh.in``: ``#SBATCH`` lines for
partition, ``--gres=gpu:N``, time, memory, account, then ``exec`` of the command, optionally
inside Apptainer or pyxis/Enroot) with mode 0600 and runs ``sbatch --parsable``. Secrets in
``JobSpec.env`` go into sbatch's own environment and reach the job through ``--export``; they
never appear in a command line or in the script.

State comes from ``squeue`` while the controller still lists the job (finished jobs stay there
for ``MinJobAge``, 300 s by default), then from ``sacct``. Both are asked for JSON first
(``--json``, which every Slurm since 21.08 has when its openapi plugins are installed) and fall
back to their ``-o`` formats; sacct without slurmdbd falls back to ``sacct --completion`` (the
``jobcomp/filetxt`` log, Slurm <= 22.05) and otherwise to nothing, reported as UNKNOWN. pyslurm
is used for state queries only when it is importable *and* built for the cluster's Slurm
release; :meth:`SlurmScheduler.describe` says which paths are in use and why.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import string
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from jobs.scheduler import (Container, JobSpec, JobState, JobStatus, Scheduler, SchedulerError,
                            SubmitError, describe_exit, format_duration)

log = logging.getLogger("ligan.jobs.slurm")
TEMPLATE = Path(__file__).resolve().parent / "scripts" / "slurm_batch.sh.in"

# Slurm's job states (squeue/sacct names) onto ours.
STATE_MAP = {
    "PENDING": JobStatus.PENDING, "REQUEUED": JobStatus.PENDING, "REQUEUE_HOLD": JobStatus.PENDING,
    "REQUEUE_FED": JobStatus.PENDING, "CONFIGURING": JobStatus.PENDING,
    "RESV_DEL_HOLD": JobStatus.PENDING, "SUSPENDED": JobStatus.PENDING,
    "STOPPED": JobStatus.PENDING,
    "RUNNING": JobStatus.RUNNING, "COMPLETING": JobStatus.RUNNING, "SIGNALING": JobStatus.RUNNING,
    "STAGE_OUT": JobStatus.RUNNING, "RESIZING": JobStatus.RUNNING,
    "COMPLETED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED, "BOOT_FAIL": JobStatus.FAILED, "DEADLINE": JobStatus.FAILED,
    "PREEMPTED": JobStatus.FAILED, "SPECIAL_EXIT": JobStatus.FAILED,
    "CANCELLED": JobStatus.CANCELLED, "REVOKED": JobStatus.CANCELLED,
    "TIMEOUT": JobStatus.TIMEOUT,
    "OUT_OF_MEMORY": JobStatus.OUT_OF_MEMORY,
    "NODE_FAIL": JobStatus.NODE_FAIL,
}
# Slurm state names that say more than our status does.
STATE_WORDS = {
    "BOOT_FAIL": "the node failed to boot", "DEADLINE": "the job's deadline passed",
    "PREEMPTED": "preempted by a higher-priority job", "SPECIAL_EXIT": "special exit",
    "SUSPENDED": "suspended", "STOPPED": "stopped", "REQUEUED": "requeued",
    "REQUEUE_HOLD": "requeued and held", "CONFIGURING": "its node is being configured",
    "REVOKED": "revoked (started on another cluster)",
}
# Common pending reasons, in words; any other is shown as Slurm spells it.
PENDING_WORDS = {
    "None": "queued", "Resources": "waiting for resources", "Priority": "waiting behind jobs of"
    " higher priority", "BeginTime": "waiting for its start time",
    "Dependency": "waiting for another job", "PartitionDown": "its partition is down",
    "PartitionInactive": "its partition is inactive", "ReqNodeNotAvail": "the nodes it needs"
    " are not available", "NodeDown": "a node it needs is down", "JobHeldAdmin": "held by an"
    " administrator", "JobHeldUser": "held by its user", "PartitionTimeLimit": "its time limit"
    " exceeds the partition's", "PartitionNodeLimit": "it needs more nodes than the partition"
    " allows", "QOSMaxJobsPerUserLimit": "the user has too many jobs",
    "AssocGrpGRES": "the account's GPU quota is used up", "InvalidAccount": "its account is"
    " invalid", "InvalidQOS": "its QOS is invalid", "BadConstraints": "its constraints cannot"
    " be satisfied",
}
# Pending reasons that do not resolve without an operator: the daemon should give up early.
PENDING_STUCK = frozenset({"PartitionDown", "PartitionInactive", "JobHeldAdmin", "InvalidAccount",
                           "InvalidQOS", "BadConstraints", "PartitionTimeLimit",
                           "PartitionNodeLimit", "DependencyNeverSatisfied", "PartitionConfig"})


@dataclasses.dataclass
class SlurmRecord:
    """What squeue/sacct/pyslurm said about one job, before it becomes a :class:`JobState`."""

    job_id: str
    state: str  # Slurm's state name, e.g. "OUT_OF_MEMORY"
    reason: str = ""  # Slurm's reason code, e.g. "TimeLimit"; "" or "None" when none
    exit_code: int | None = None
    signal: int | None = None
    node: str = ""
    time_limit_min: int | None = None
    description: str = ""  # Slurm's free-text state description, where it gives one
    source: str = ""


# -- parsing (module level so that it is tested without a cluster) ------------------------------
def _number(value: Any) -> int | None:
    """An integer from Slurm JSON: plain, or {"set": .., "infinite": .., "number": ..}."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _state_name(value: Any) -> str:
    """Slurm's state from JSON: "RUNNING", ["RUNNING"] (23.02+) or {"current": ...} (sacct)."""
    if isinstance(value, dict):
        value = value.get("current", "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").split()[0] if value else ""  # "CANCELLED by 0" -> "CANCELLED"


def _real_signal(sig: int | None) -> int | None:
    # Slurm reports OUT_OF_MEMORY as "0:125": 125 is not a signal a process died of.
    return sig if sig and 0 < sig < 65 else None


def decode_exit(value: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) from any of Slurm's spellings.

    A raw wait status (squeue --json, 22.05: 768 = exit 3, 9 = SIGKILL); ``"3:0"`` (text
    formats, ``code:signal``); ``{"return_code": .., "signal": {..}}`` (sacct --json, and
    squeue --json since 23.02, where numbers may be {"set", "number"} objects).
    """
    if value is None or value == "":
        return None, None
    if isinstance(value, dict):
        code = _number(value.get("return_code"))
        sig_field = value.get("signal")
        sig = None
        if isinstance(sig_field, dict):
            sig = _number(sig_field.get("id", sig_field.get("signal_id")))
        else:
            sig = _number(sig_field)
        return code, _real_signal(sig)
    if isinstance(value, str) and ":" in value:
        code_s, sig_s = value.split(":", 1)
        try:
            return int(code_s), _real_signal(int(sig_s))
        except ValueError:
            return None, None
    status = _number(value)
    if status is None:
        return None, None
    if status & 0x7F:
        return None, _real_signal(status & 0x7F)
    return (status >> 8) & 0xFF, None


def parse_squeue_json(doc: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, SlurmRecord]:
    """Records for the ``wanted`` job ids from ``squeue --json`` output (22.05 lists every job
    whatever ``-j`` says, so the filtering happens here)."""
    wanted = set(wanted)
    out = {}
    for job in doc.get("jobs", []):
        jid = str(_number(job.get("job_id")))
        if jid not in wanted:
            continue
        code, sig = decode_exit(job.get("exit_code"))
        out[jid] = SlurmRecord(
            job_id=jid, state=_state_name(job.get("job_state")),
            reason=str(job.get("state_reason") or ""), exit_code=code, signal=sig,
            node=str(job.get("nodes") or job.get("batch_host") or ""),
            time_limit_min=_number(job.get("time_limit")),
            description=str(job.get("state_description") or ""), source="squeue --json")
    return out


def parse_sacct_json(doc: Mapping[str, Any], wanted: Iterable[str]) -> dict[str, SlurmRecord]:
    """Records from ``sacct --json`` (the allocation, not its steps; the last of requeues)."""
    wanted = set(wanted)
    out = {}
    for job in doc.get("jobs", []):
        jid = str(_number(job.get("job_id")))
        if jid not in wanted:
            continue
        state = job.get("state") or {}
        code, sig = decode_exit(job.get("exit_code"))
        limit = job.get("time_limit")
        if limit is None and isinstance(job.get("time"), dict):
            limit = job["time"].get("limit")
        out[jid] = SlurmRecord(
            job_id=jid, state=_state_name(state), reason=str(state.get("reason") or ""),
            exit_code=code, signal=sig, node=str(job.get("nodes") or ""),
            time_limit_min=_number(limit), source="sacct --json")
    return out


def _limit_minutes(text: str) -> int | None:
    """Minutes from Slurm's time text: "UNLIMITED", "30", "1:00" (m:s), "2:00:00", "1-00:00:00"."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "PARTITION_LIMIT"):
        return None
    if text.isdigit():
        return int(text)
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts[-3:]
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def parse_pipe_rows(text: str, wanted: Iterable[str], source: str) -> dict[str, SlurmRecord]:
    """Records from ``id|state|exit|node|timelimit|reason`` rows (squeue -o / sacct -P); the
    last row of a job wins (sacct lists a requeued job once per run). An empty exit field is
    unknown, not zero."""
    wanted = set(wanted)
    out = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 6 or fields[0] not in wanted:
            continue
        jid, state, exit_text, node, limit, reason = fields[:6]
        code, sig = decode_exit(exit_text) if exit_text else (None, None)
        out[jid] = SlurmRecord(job_id=jid, state=_state_name(state), reason=reason,
                               exit_code=code, signal=sig,
                               node="" if node in ("(null)", "None assigned") else node,
                               time_limit_min=_limit_minutes(limit), source=source)
    return out


def parse_job_list(text: str, exclude_prefix: str = "") -> list[dict[str, Any]]:
    """The ``ligan-…`` jobs in ``squeue -o "%i|%j|%u|%T|%M|%l|%N|%r"`` output whose name does
    not start with ``exclude_prefix``."""
    jobs = []
    for line in text.splitlines():
        cells = line.strip().split("|")
        if len(cells) < 8 or not cells[1].startswith("ligan-"):
            continue
        if exclude_prefix and cells[1].startswith(exclude_prefix):
            continue
        job_id, name, user, state, elapsed, limit, node, reason = cells[:8]
        jobs.append({"job_id": job_id, "name": name, "user": user, "state": state,
                     "elapsed": elapsed, "time_limit": limit,
                     "node": node if state != "PENDING" else "",
                     "reason": reason if state == "PENDING" else ""})
    return jobs


def to_job_state(rec: SlurmRecord, time_limit_s: int | None = None,
                 memory_mb: int | None = None) -> JobState:
    """Our :class:`JobState` for a Slurm record, with the reason in words ending in Slurm's own
    reason code, that code in ``code`` and ``stuck`` set for a pending reason in
    :data:`PENDING_STUCK`. ``time_limit_s``/``memory_mb``: what was asked, when this scheduler
    knows."""
    status = STATE_MAP.get(rec.state, JobStatus.UNKNOWN)
    code_words = rec.reason if rec.reason not in ("", "None", "NonZeroExitCode") else ""
    slurm_bits = [b for b in (rec.state if rec.state in STATE_WORDS else "", code_words,
                              rec.description) if b]
    suffix = f" (Slurm: {', '.join(slurm_bits)})" if slurm_bits else ""
    how = describe_exit(rec.exit_code, rec.signal)
    if status is JobStatus.PENDING:
        words = STATE_WORDS.get(rec.state) or PENDING_WORDS.get(rec.reason, rec.reason or "queued")
        reason = words + (f" (Slurm: {rec.reason})" if rec.reason not in ("", "None") else "")
    elif status is JobStatus.RUNNING:
        reason = "" if rec.state == "RUNNING" else rec.state.lower()
    elif status is JobStatus.COMPLETED:
        reason = ""
    elif status is JobStatus.TIMEOUT:
        # Slurm's own limit first: it rounded what was asked up to whole minutes.
        limit = format_duration(rec.time_limit_min * 60) if rec.time_limit_min else (
            format_duration(time_limit_s) if time_limit_s else "the job")
        reason = f"time limit of {limit} reached{suffix}"
    elif status is JobStatus.OUT_OF_MEMORY:
        limit = f" of {memory_mb} MB" if memory_mb else ""
        reason = f"out of memory: the job exceeded its memory limit{limit}{suffix}"
    elif status is JobStatus.NODE_FAIL:
        reason = f"node {rec.node or '?'} failed{suffix}"
    elif status is JobStatus.CANCELLED:
        reason = "cancelled" + (f"; {how}" if how else "") + suffix
    elif status is JobStatus.FAILED:
        what = STATE_WORDS.get(rec.state) or how or "failed"
        if rec.state in STATE_WORDS and how:
            what += f"; {how}"
        reason = what + (f" (Slurm: {', '.join(b for b in (code_words, rec.description) if b)})"
                         if code_words or rec.description else "")
    else:
        reason = f"Slurm reports state {rec.state!r}{suffix}"
    code = rec.reason if rec.reason not in ("", "None") else ""
    return JobState(rec.job_id, status, reason=reason, exit_code=rec.exit_code,
                    signal=rec.signal, node=rec.node, code=code,
                    stuck=status is JobStatus.PENDING and code in PENDING_STUCK)


def sbatch_error(stderr: str) -> str:
    """Slurm's reason from sbatch's stderr: "Invalid partition name specified (invalid partition
    specified: nope)"."""
    lines = [re.sub(r"^sbatch: (error|fatal): ", "", ln).strip()
             for ln in stderr.splitlines() if ln.strip()]
    main = [ln.split(":", 1)[1].strip() for ln in lines
            if ln.startswith("Batch job submission failed:")]
    rest = [ln for ln in lines if not ln.startswith("Batch job submission failed:")]
    if main:
        return main[-1] + (f" ({'; '.join(rest)})" if rest else "")
    return "; ".join(lines) or "sbatch failed without a message"


_KILL_WAIT = re.compile(r"^\s*KillWait\s*=\s*(\d+)\s*(sec|secs|seconds?)?\s*$",
                        re.MULTILINE | re.IGNORECASE)


def parse_kill_wait(config_text: str) -> int | None:
    """KillWait in seconds from ``scontrol show config`` (``KillWait = 30 sec``), None when
    the text has no such line."""
    m = _KILL_WAIT.search(config_text)
    return int(m.group(1)) if m else None


def slurm_time(seconds: int) -> str:
    """``--time`` text for ``seconds`` (Slurm rounds up to whole minutes)."""
    days, rem = divmod(int(seconds), 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return (f"{days}-" if days else "") + f"{h:02d}:{m:02d}:{s:02d}"


# -- the scheduler -----------------------------------------------------------------------------
class SlurmScheduler(Scheduler):
    """Backends and training as SLURM batch jobs.

    Defaults for every job (a :class:`JobSpec` field that is set wins): ``partition``,
    ``account``, ``time_limit_s``, ``memory_mb``, ``gpu_type`` (``--gres=gpu:TYPE:N``),
    ``container`` (a :class:`Container` or ``{"kind":..,"image":..,"mounts":[..]}``),
    ``extra_args`` (more ``#SBATCH`` options), ``setup_lines`` (shell lines run before the
    command, e.g. ``module load cuda``). ``slurm_conf`` points the command-line tools at a
    cluster (the dev cluster's ``SLURM_CONF``); ``export_env`` is ``"ALL"`` (the job inherits
    the submitting environment, Slurm's default) or ``"NAMED"`` (only ``JobSpec.env``).
    ``script_dir`` keeps the generated scripts (the daemon passes ``$LIGAN_HOME/jobs/slurm``).
    ``use_json``: ``"yes"``/``"no"`` force squeue/sacct's JSON or text output; ``"auto"`` uses
    JSON from Slurm 23.02 on (22.05's ``squeue --json`` ignores ``-j`` and prints every job of
    the cluster, too heavy to poll on a busy cluster) and text formats before.
    """

    kind = "slurm"

    def __init__(self, script_dir: str | Path, partition: str | None = None,
                 account: str | None = None, time_limit_s: int | None = None,
                 memory_mb: int | None = None, gpu_type: str | None = None,
                 container: Container | Mapping[str, Any] | None = None,
                 extra_args: Iterable[str] = (), setup_lines: Iterable[str] = (),
                 slurm_conf: str | Path | None = None, export_env: str = "ALL",
                 requeue: bool = False, use_json: str = "auto", use_pyslurm: bool = True,
                 command_timeout_s: float = 30.0):
        self.script_dir = Path(script_dir)
        self.partition, self.account = partition, account
        self.time_limit_s, self.memory_mb, self.gpu_type = time_limit_s, memory_mb, gpu_type
        if isinstance(container, Mapping):
            container = Container(kind=container["kind"], image=container["image"],
                                  mounts=tuple(container.get("mounts", ())))
        self.container = container
        self.extra_args = list(extra_args)
        self.setup_lines = list(setup_lines)
        self.slurm_conf = str(slurm_conf) if slurm_conf else None
        if export_env not in ("ALL", "NAMED"):
            raise ValueError(f"export_env must be 'ALL' or 'NAMED', not {export_env!r}")
        self.export_env = export_env
        self.requeue = requeue
        if use_json not in ("auto", "yes", "no"):
            raise ValueError(f"use_json must be 'auto', 'yes' or 'no', not {use_json!r}")
        self.use_json = use_json
        self.command_timeout_s = command_timeout_s
        self._lock = threading.Lock()
        self._final: dict[str, JobState] = {}
        self._asked: dict[str, dict[str, Any]] = {}  # job id -> what was submitted
        self._squeue_json: bool | None = None  # None: not decided yet
        self._sacct_mode: str | None = None  # "json" | "plain" | "completion" | "none"
        self._version: str | None = None
        self._kill_wait: int | None = None  # KillWait, read once from scontrol
        self._pyslurm, self._pyslurm_why = (None, "not checked yet")
        self._want_pyslurm = use_pyslurm
        self._pyslurm_checked = False

    # -- running the tools -------------------------------------------------------------------
    def _env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        env.update(extra or {})
        return env

    def _run(self, argv: list[str], extra_env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=self._env(extra_env),
                                  timeout=self.command_timeout_s, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise SchedulerError(f"{argv[0]} not found: install Slurm's client commands "
                                 "(Debian: slurm-client) or use the local scheduler") from None
        except subprocess.TimeoutExpired:
            raise SchedulerError(f"{argv[0]} did not answer within {self.command_timeout_s} s "
                                 "(is slurmctld up?)") from None

    def version(self) -> str:
        """The cluster's Slurm release, e.g. "22.05.8" (from ``sinfo --version``)."""
        if self._version is None:
            r = self._run(["sinfo", "--version"])
            m = re.search(r"(\d+\.\d+\.\d+)", r.stdout)
            if r.returncode != 0 or not m:
                raise SchedulerError(f"sinfo --version failed: {(r.stderr or r.stdout).strip()}")
            self._version = m.group(1)
        return self._version

    def _check_pyslurm(self) -> None:
        """Use pyslurm only when it is importable and built for this cluster's Slurm release."""
        if self._pyslurm_checked:
            return
        self._pyslurm_checked = True
        if not self._want_pyslurm:
            self._pyslurm_why = "disabled by configuration (use_pyslurm=False)"
            return
        try:
            import pyslurm  # type: ignore[import-not-found]
        except ImportError:
            self._pyslurm_why = "pyslurm is not installed; using Slurm's command-line tools"
            return
        ours = getattr(pyslurm, "__version__", "?")
        try:
            theirs = self.version()
        except SchedulerError as e:
            self._pyslurm_why = f"cannot tell the cluster's Slurm release ({e})"
            return
        if ours.split(".")[:2] != theirs.split(".")[:2]:
            self._pyslurm_why = (f"pyslurm {ours} is built for another Slurm release than the "
                                 f"cluster's {theirs}; using Slurm's command-line tools")
            return
        self._pyslurm, self._pyslurm_why = pyslurm, f"pyslurm {ours} matches Slurm {theirs}"
        log.info("using %s for job states", self._pyslurm_why)

    # -- submission --------------------------------------------------------------------------
    def render_script(self, spec: JobSpec) -> str:
        """The batch script for ``spec`` with this scheduler's defaults filled in."""
        spec.validate()
        lines = [f'--job-name="{spec.name}"', "--nodes=1", "--ntasks=1",
                 f"--cpus-per-task={spec.cpus}"]
        stdout = spec.stdout or (self.script_dir / "%x-%j.out")
        lines.append(f'--output="{stdout}"')
        if spec.stderr:
            lines.append(f'--error="{spec.stderr}"')
        if spec.workdir:
            lines.append(f'--chdir="{spec.workdir}"')
        for opt, value in (("partition", spec.partition or self.partition),
                           ("account", spec.account or self.account)):
            if value:
                lines.append(f"--{opt}={value}")
        limit = spec.time_limit_s or self.time_limit_s
        if limit:
            lines.append(f"--time={slurm_time(limit)}")
        memory = spec.memory_mb or self.memory_mb
        if memory:
            lines.append(f"--mem={memory}M")
        if spec.gpus:
            lines.append(f"--gres=gpu:{self.gpu_type + ':' if self.gpu_type else ''}{spec.gpus}")
        if not self.requeue:
            lines.append("--no-requeue")
        lines += [*self.extra_args, *spec.extra_args]
        for ln in lines:
            if "\n" in ln or "\r" in ln:
                raise SubmitError(f"job {spec.name}: option {ln!r} holds a newline")
        container = spec.container or self.container
        argv = container.wrap(spec.command, spec.gpus, slurm=True) if container else spec.command
        return string.Template(TEMPLATE.read_text()).substitute(
            name=spec.name, sbatch_lines="\n".join(f"#SBATCH {ln}" for ln in lines),
            setup_lines="\n".join(self.setup_lines), command=shlex.join(argv))

    def submit(self, spec: JobSpec) -> str:
        script = self.render_script(spec)
        self.script_dir.mkdir(parents=True, exist_ok=True)
        path = self.script_dir / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" \
                                 f"-{time.monotonic_ns() % 10**6}.sbatch"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        export = "ALL" if self.export_env == "ALL" else ",".join(sorted(spec.env)) or "NONE"
        r = self._run(["sbatch", "--parsable", f"--export={export}", str(path)],
                      extra_env=spec.env)
        if r.returncode != 0:
            reason = sbatch_error(r.stderr or r.stdout)
            log.warning("Slurm refused job %s (script %s): %s", spec.name, path, reason)
            raise SubmitError(f"Slurm refused job {spec.name}: {reason}", reason=reason)
        job_id = r.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch answered {r.stdout.strip()!r}, not a job id")
        with self._lock:
            self._asked[job_id] = {"name": spec.name, "script": str(path),
                                   "time_limit_s": spec.time_limit_s or self.time_limit_s,
                                   "memory_mb": spec.memory_mb or self.memory_mb}
        log.info("submitted Slurm job %s (%s) from %s", job_id, spec.name, path)
        return job_id

    # -- state -------------------------------------------------------------------------------
    def state(self, job_id: str) -> JobState:
        return self.states([job_id])[job_id]

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        ids = [str(j) for j in job_ids]
        out: dict[str, JobState] = {}
        with self._lock:
            for j in ids:
                if j in self._final:
                    out[j] = self._final[j]
        todo = [j for j in ids if j not in out and j.isdigit()]
        for j in ids:
            if not j.isdigit():
                out[j] = JobState(j, JobStatus.UNKNOWN, reason=f"{j!r} is not a Slurm job id")
        records: dict[str, SlurmRecord] = {}
        if todo:
            self._check_pyslurm()
            self._choose_json()
            if self._pyslurm is not None:
                records.update(self._pyslurm_records(todo))
            missing = [j for j in todo if j not in records]
            if missing:
                records.update(self._squeue(missing))
            missing = [j for j in todo if j not in records]
            if missing:
                records.update(self._sacct(missing))
        for j in todo:
            rec = records.get(j)
            if rec is None:
                out[j] = JobState(j, JobStatus.UNKNOWN, reason=f"Slurm job {j} is known neither "
                                  f"to squeue nor to sacct ({self._sacct_words()})")
                continue
            asked = self._asked.get(j, {})
            state = to_job_state(rec, asked.get("time_limit_s"), asked.get("memory_mb"))
            out[j] = state
            if state.final:
                with self._lock:
                    first = j not in self._final
                    self._final[j] = state
                if first:
                    level = logging.INFO if state.ok else logging.WARNING
                    log.log(level, "Slurm job %s (%s) ended: %s%s [from %s]", j,
                            asked.get("name", "?"), state.status.value,
                            f", {state.reason}" if state.reason else "", rec.source)
        return out

    def _choose_json(self) -> None:
        """Decide once between JSON and text output of squeue/sacct (see ``use_json``)."""
        if self._squeue_json is not None or self._sacct_mode is not None:
            return
        if self.use_json == "auto":
            try:
                major, minor = (int(x) for x in self.version().split(".")[:2])
                json_ok = (major, minor) >= (23, 2)
            except (SchedulerError, ValueError):
                json_ok = True
            log.info("Slurm %s: asking squeue/sacct for %s", self._version or "?",
                     "JSON" if json_ok else "text formats (22.05's squeue --json lists every job)")
        else:
            json_ok = self.use_json == "yes"
        if not json_ok:
            self._squeue_json, self._sacct_mode = False, "plain"

    def _pyslurm_records(self, ids: list[str]) -> dict[str, SlurmRecord]:
        out = {}
        for j in ids:
            try:
                job = self._pyslurm.Job.load(int(j))
                out[j] = SlurmRecord(
                    job_id=j, state=_state_name(job.state), reason=str(job.state_reason or ""),
                    exit_code=getattr(job, "exit_code", None),
                    signal=_real_signal(getattr(job, "exit_code_signal", None)),
                    node=str(getattr(job, "batch_host", "") or ""),
                    time_limit_min=_number(getattr(job, "time_limit", None)), source="pyslurm")
            except Exception as e:  # not in the controller any more, or an API mismatch
                log.debug("pyslurm could not load job %s (%s); asking the command-line tools", j, e)
        return out

    def _squeue(self, ids: list[str]) -> dict[str, SlurmRecord]:
        joined = ",".join(ids)
        if self._squeue_json is not False:
            r = self._run(["squeue", "--json", "-t", "all", "-j", joined])
            if r.returncode == 0:
                try:
                    records = parse_squeue_json(json.loads(r.stdout), ids)
                    self._squeue_json = True
                    return records
                except (json.JSONDecodeError, AttributeError, TypeError) as e:
                    err = f"unreadable JSON ({e})"
            else:
                err = (r.stderr or r.stdout).strip()
            if "Invalid job id" in err:
                return {}
            if self._squeue_json is None:
                log.info("squeue --json is not available here (%s); using squeue -o", err[:200])
                self._squeue_json = False
            else:
                log.warning("squeue --json failed: %s", err[:300])
                return {}
        r = self._run(["squeue", "-h", "-t", "all", "-j", joined, "-o", "%i|%T||%N|%l|%r"])
        if r.returncode != 0:
            if "Invalid job id" in r.stderr and len(ids) > 1:
                out = {}
                for j in ids:  # older Slurm rejects the whole list for one forgotten id
                    out.update(self._squeue([j]))
                return out
            if "Invalid job id" not in r.stderr:
                log.warning("squeue failed: %s", r.stderr.strip()[:300])
            return {}
        records = parse_pipe_rows(r.stdout, ids, "squeue -o")
        for rec in records.values():  # squeue's formats have no exit code: ask scontrol
            if STATE_MAP.get(rec.state, JobStatus.UNKNOWN).final:
                s = self._run(["scontrol", "-o", "show", "job", rec.job_id])
                m = re.search(r"\bExitCode=(\d+:\d+)", s.stdout)
                if m:
                    rec.exit_code, rec.signal = decode_exit(m.group(1))
        return records

    def _sacct(self, ids: list[str]) -> dict[str, SlurmRecord]:
        joined = ",".join(ids)
        fields = "JobIDRaw,State,ExitCode,NodeList,Timelimit,Reason"
        if self._sacct_mode in (None, "json"):
            r = self._run(["sacct", "--json", "-X", "-j", joined])
            if r.returncode == 0:
                try:
                    records = parse_sacct_json(json.loads(r.stdout), ids)
                    self._sacct_mode = "json"
                    return records
                except (json.JSONDecodeError, AttributeError, TypeError) as e:
                    err = f"unreadable JSON ({e})"
            else:
                err = (r.stderr or r.stdout).strip()
            if self._sacct_mode == "json":
                log.warning("sacct --json failed: %s", err[:300])
                return {}
            log.info("sacct --json is not available here (%s); trying sacct -P", err[:200])
            self._sacct_mode = "plain"
        if self._sacct_mode == "plain":
            r = self._run(["sacct", "-P", "-n", "-X", "-j", joined, "-o", fields])
            if r.returncode == 0:
                return parse_pipe_rows(r.stdout, ids, "sacct -P")
            err = (r.stderr or r.stdout).strip()
            if "accounting storage is disabled" not in err:
                log.warning("sacct failed: %s", err[:300])
                return {}
            log.info("Slurm accounting is disabled (no slurmdbd); trying sacct --completion "
                     "(the jobcomp/filetxt log)")
            self._sacct_mode = "completion"
        if self._sacct_mode == "completion":
            r = self._run(["sacct", "--completion", "-P", "-n", "-X", "-j", joined, "-o", fields])
            if r.returncode == 0:
                return parse_pipe_rows(r.stdout, ids, "sacct --completion")
            log.warning("sacct --completion does not work here (%s): finished jobs are known "
                        "only while squeue lists them (MinJobAge)",
                        (r.stderr or r.stdout).strip()[:200])
            self._sacct_mode = "none"
        return {}

    def _sacct_words(self) -> str:
        return {"none": "this cluster has no job accounting: finished jobs vanish after "
                        "MinJobAge"}.get(self._sacct_mode or "", "finished too long ago or never "
                                                                 "submitted")

    # -- the cluster's kill wait and other jobs ----------------------------------------------
    def kill_wait_s(self) -> float | None:
        """The cluster's KillWait (SIGTERM to SIGKILL on ``scancel`` and at the time limit),
        read once from ``scontrol show config``; None, and asked again next time, while
        scontrol does not answer."""
        if self._kill_wait is None:
            r = self._run(["scontrol", "show", "config"])
            value = parse_kill_wait(r.stdout) if r.returncode == 0 else None
            if value is None:
                log.warning("cannot read KillWait from scontrol show config: %s",
                            (r.stderr or r.stdout).strip()[:200] or "no KillWait line")
                return None
            self._kill_wait = value
            log.info("the cluster's KillWait is %d s", value)
        return float(self._kill_wait)

    def running_jobs(self, exclude_prefix: str = "") -> list[dict[str, Any]]:
        """LiGAN's pending and running jobs on the cluster (names starting ``ligan-``), of
        every user, but those named ``exclude_prefix…``: one ``squeue``."""
        r = self._run(["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING",
                       "-o", "%i|%j|%u|%T|%M|%l|%N|%r"])
        if r.returncode != 0:
            raise SchedulerError(f"squeue failed: {(r.stderr or r.stdout).strip()[:300]}")
        return parse_job_list(r.stdout, exclude_prefix)

    # -- cancel and describe -----------------------------------------------------------------
    def cancel(self, job_id: str) -> None:
        r = self._run(["scancel", str(job_id)])
        err = (r.stderr or "").strip()
        if r.returncode != 0 and not re.search(r"Invalid job id|already completing|completed",
                                               err):
            raise SchedulerError(f"scancel {job_id} failed: {err}")
        log.info("cancelled Slurm job %s (%s)%s", job_id, self._asked.get(job_id, {}).get(
            "name", "?"), f": {err}" if err else "")

    def describe(self) -> dict[str, Any]:
        self._check_pyslurm()
        try:
            version = self.version()
        except SchedulerError as e:
            version = f"unknown ({e})"
        return {
            "kind": self.kind, "slurm_version": version, "slurm_conf": self.slurm_conf,
            "partition": self.partition, "account": self.account,
            "time_limit_s": self.time_limit_s, "memory_mb": self.memory_mb,
            "gpu_type": self.gpu_type,
            "container": dataclasses.asdict(self.container) if self.container else None,
            "export_env": self.export_env, "script_dir": str(self.script_dir),
            "kill_wait_s": self._kill_wait,
            "pyslurm": self._pyslurm_why,
            "use_json": self.use_json,
            "squeue": {None: "not used yet", True: "squeue --json",
                       False: "squeue -o"}[self._squeue_json],
            "sacct": self._sacct_mode or "not used yet",
        }
