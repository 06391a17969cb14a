"""The scheduler interface: what the master daemon asks of "something that runs jobs".

Two implementations sit behind it and are picked by configuration, never by the caller's code:
``local`` (jobs are child processes of this machine: the embedded default, no SLURM needed) and
``slurm`` (jobs are ``sbatch`` batch jobs). A job is described once, as a :class:`JobSpec`, and
observed as a :class:`JobState` whose ``reason`` is a sentence an operator or a user can read
("killed by signal 9 (SIGKILL)", "time limit of 1 min reached (Slurm: TimeLimit)").
"""
from __future__ import annotations

import abc
import dataclasses
import enum
import signal
from pathlib import Path
from typing import Any, Iterable, Mapping


class SchedulerError(RuntimeError):
    """The scheduler could not do what was asked (its tools are missing, it timed out, ...)."""


class SubmitError(SchedulerError):
    """The scheduler refused a job; ``reason`` is its own explanation (e.g. Slurm's message)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class JobStatus(str, enum.Enum):
    """Where a job is in its life. The last six are final: a job never leaves them."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    UNKNOWN = "UNKNOWN"  # the scheduler cannot tell (yet); not final, ask again
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"

    @property
    def final(self) -> bool:
        return self not in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.UNKNOWN)


@dataclasses.dataclass(frozen=True)
class JobState:
    """One observation of a job.

    ``reason`` is empty for a job that runs or completed normally, and otherwise says why in
    words (for Slurm it ends with Slurm's own reason code); it is for people. Code acts on the
    structured fields instead: ``code`` is the scheduler's own reason code (Slurm's, e.g.
    ``PartitionDown`` or ``TimeLimit``; ``""`` when it gives none) and ``stuck`` marks a
    pending job that cannot start without an operator (its partition is down, its account is
    invalid …), so that the caller gives up on it instead of waiting. ``exit_code`` is the
    process's exit status when it exited, ``signal`` the signal number when a signal killed
    it. ``node`` is the host the job runs or ran on, ``""`` while pending.
    """

    job_id: str
    status: JobStatus
    reason: str = ""
    exit_code: int | None = None
    signal: int | None = None
    node: str = ""
    code: str = ""
    stuck: bool = False

    @property
    def final(self) -> bool:
        return self.status.final

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.COMPLETED

    @property
    def timed_out(self) -> bool:
        """Whether the job ended because it reached its time limit (a planned end)."""
        return self.status is JobStatus.TIMEOUT

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "JobState":
        return cls(job_id=str(d["job_id"]), status=JobStatus(d["status"]),
                   reason=d.get("reason", ""), exit_code=d.get("exit_code"),
                   signal=d.get("signal"), node=d.get("node", ""), code=d.get("code", ""),
                   stuck=bool(d.get("stuck", False)))


CONTAINER_KINDS = ("apptainer", "enroot")


@dataclasses.dataclass(frozen=True)
class Container:
    """Run the job's command inside a container image.

    ``apptainer``: ``apptainer exec [--nv] IMAGE CMD`` (``--nv`` when the job asks for GPUs);
    ``enroot``: under SLURM, the pyxis plugin's ``srun --container-image=IMAGE CMD``; locally,
    ``enroot start IMAGE CMD`` (IMAGE is then an enroot container name). ``mounts`` are
    ``SRC:DST`` pairs (the results directory, the bundle).
    """

    kind: str
    image: str
    mounts: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in CONTAINER_KINDS:
            raise ValueError(f"container kind must be one of {', '.join(CONTAINER_KINDS)}, "
                             f"not {self.kind!r}")
        if not self.image:
            raise ValueError("a container needs an image")

    def wrap(self, argv: list[str], gpus: int, slurm: bool) -> list[str]:
        """``argv`` run inside this container (``slurm``: under a batch job)."""
        if self.kind == "apptainer":
            cmd = ["apptainer", "exec"]
            if gpus:
                cmd.append("--nv")
            for m in self.mounts:
                cmd += ["--bind", m]
            return [*cmd, self.image, *argv]
        if slurm:
            cmd = ["srun", "--ntasks=1", f"--container-image={self.image}"]
            if self.mounts:
                cmd.append("--container-mounts=" + ",".join(self.mounts))
            return [*cmd, *argv]
        cmd = ["enroot", "start"]
        for m in self.mounts:
            cmd += ["--mount", m]
        return [*cmd, self.image, *argv]


@dataclasses.dataclass
class JobSpec:
    """What to run and with which resources.

    Fields left ``None`` take the scheduler's configured defaults (partition, account, time
    limit, memory, container). ``env`` is added to the job's environment and is the only place
    for secrets (callback tokens): schedulers never write it into a command line or a script
    file. ``time_limit_s`` is enforced to the second locally; SLURM rounds it up to whole
    minutes. ``memory_mb`` is enforced by SLURM; local jobs are not memory-limited.
    """

    name: str
    command: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    workdir: Path | None = None
    stdout: Path | None = None
    stderr: Path | None = None  # None: together with stdout
    time_limit_s: int | None = None
    memory_mb: int | None = None
    cpus: int = 1
    gpus: int = 0
    partition: str | None = None
    account: str | None = None
    container: Container | None = None
    extra_args: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        """Raise :class:`SubmitError` for a spec no scheduler could run."""
        if not self.name or any(c in self.name for c in "\n\r\"'"):
            raise SubmitError(f"job name {self.name!r} is empty or holds quotes or newlines")
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise SubmitError(f"job {self.name}: command must be a non-empty list of strings")
        for key, value in self.env.items():
            if not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise SubmitError(f"job {self.name}: {key!r} is not an environment variable name")
            if not isinstance(value, str):
                raise SubmitError(f"job {self.name}: environment value of {key} is not a string")
        for label, n, low in (("cpus", self.cpus, 1), ("gpus", self.gpus, 0)):
            if not isinstance(n, int) or n < low:
                raise SubmitError(f"job {self.name}: {label} must be an integer >= {low}, got {n!r}")
        for label, n in (("time_limit_s", self.time_limit_s), ("memory_mb", self.memory_mb)):
            if n is not None and (not isinstance(n, int) or n <= 0):
                raise SubmitError(f"job {self.name}: {label} must be a positive integer, got {n!r}")


def describe_exit(exit_code: int | None, sig: int | None) -> str:
    """ "exited with code 3" / "killed by signal 9 (SIGKILL)" / ""."""
    if sig:
        try:
            name = f" ({signal.Signals(sig).name})"
        except ValueError:
            name = ""
        return f"killed by signal {sig}{name}"
    if exit_code:
        return f"exited with code {exit_code}"
    return ""


def format_duration(seconds: int) -> str:
    """A short human duration: "45 s", "2 min", "1 h 30 min"."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {sec} s" if sec else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


class Scheduler(abc.ABC):
    """Runs jobs described by :class:`JobSpec` and reports their :class:`JobState`.

    Implementations are safe to call from several threads. ``state`` never raises for a job
    the scheduler has forgotten: it answers ``UNKNOWN`` with a reason.
    """

    kind: str = ""

    @abc.abstractmethod
    def submit(self, spec: JobSpec) -> str:
        """Start (or queue) the job and return its id; :class:`SubmitError` when refused."""

    @abc.abstractmethod
    def state(self, job_id: str) -> JobState:
        """The job's current state."""

    def states(self, job_ids: Iterable[str]) -> dict[str, JobState]:
        """The states of many jobs; implementations answer with as few queries as they can."""
        return {j: self.state(j) for j in job_ids}

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after a grace period). Returns at once;
        the job reaches CANCELLED shortly after. Cancelling a finished job does nothing."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What this scheduler is and how it is configured, for logs and ``ligan status``."""

    def attach(self, job_id: str) -> JobState | None:
        """Resume watching a job submitted by an earlier process (a restarted daemon), e.g.
        enforcing its time limit again; :class:`SchedulerError` when the job is unknown.
        Default: nothing to resume, the scheduler watches its jobs by itself (None)."""
        return None

    def runs_on_submit(self) -> bool:
        """Whether a submitted job starts at once, never waiting in a queue: its time limit
        then counts from the submission (default False: it may pend)."""
        return False

    def with_resources(self, spec: JobSpec, *, cpus: int = 1, gpus: int = 0,
                       memory_mb: int | None = None, partition: str | None = None,
                       account: str | None = None) -> JobSpec:
        """``spec`` asking for the resources this scheduler can grant of those given (the
        daemon's backend settings, which callers need not sort by scheduler). Default: all
        of them."""
        return dataclasses.replace(spec, cpus=cpus, gpus=gpus, memory_mb=memory_mb,
                                   partition=partition, account=account)

    def kill_wait_s(self) -> float | None:
        """Seconds from SIGTERM to SIGKILL when a job is cancelled or reaches its time limit,
        None when this scheduler cannot tell: the budget a job's clean shutdown must fit in
        (see :func:`fit_grace`)."""
        return None

    def running_jobs(self, exclude_prefix: str = "") -> list[dict[str, Any]]:
        """Unfinished jobs of this install the scheduler knows of whose name does not start
        with ``exclude_prefix``, for ``ligan status``: dicts with ``job_id``, ``name``,
        ``user``, ``state``, ``elapsed``, ``time_limit`` and ``node``."""
        return []


def shutdown_reserve_s(kill_wait_s: float) -> float:
    """The part of ``kill_wait_s`` a backend keeps for after its grace period: stopping the
    running task at its next step and delivering its ``interrupted`` result, so that the task
    moves to the session's next backend instead of dying with the job. Half the kill wait, at
    least 1.5 s and at most 10 s (Slurm's default KillWait of 30 s leaves the default 20 s
    grace)."""
    return min(10.0, max(1.5, kill_wait_s / 2))


def kill_wait_needed_s(grace_s: float) -> float:
    """The smallest kill wait that leaves a full ``grace_s`` after :func:`shutdown_reserve_s`."""
    if grace_s + 1.5 <= 3.0:
        return grace_s + 1.5
    if 2 * grace_s <= 20.0:
        return 2 * grace_s
    return grace_s + 10.0


def fit_grace(grace_s: float, kill_wait_s: float | None) -> tuple[float, str]:
    """The grace period to give a job whose SIGKILL follows SIGTERM by ``kill_wait_s``
    seconds (None: unknown, ``grace_s`` kept), and a warning for the operator when
    ``grace_s`` had to be shortened to fit ("" when it fits)."""
    if kill_wait_s is None:
        return grace_s, ""
    reserve = shutdown_reserve_s(kill_wait_s)
    fitted = round(max(0.0, min(grace_s, kill_wait_s - reserve)), 3)
    if fitted >= grace_s:
        return grace_s, ""
    warning = (f"LIGAN_BACKEND_GRACE is {grace_s:g} s, but jobs are killed {kill_wait_s:g} s "
               f"after SIGTERM (Slurm's KillWait) and a backend needs {reserve:g} s of that to "
               f"hand its interrupted task on to the next job: backends get a grace of "
               f"{fitted:g} s instead (KillWait = {kill_wait_needed_s(grace_s):g} s or more "
               f"keeps the full grace)")
    if kill_wait_s < reserve:
        warning += (f". KillWait = {kill_wait_s:g} s is too short even for that: a task "
                    f"running when its job is cancelled may fail instead of moving on")
    return fitted, warning


def make_scheduler(kind: str, **settings: Any) -> Scheduler:
    """The scheduler named ``kind`` (``local`` or ``slurm``) built from ``settings``.

    ``local``: see :class:`jobs.local.LocalScheduler`; ``slurm``: see
    :class:`jobs.slurm.SlurmScheduler`. Unknown settings are an error, not silently ignored.
    """
    if kind == "local":
        from jobs.local import LocalScheduler

        return LocalScheduler(**settings)
    if kind == "slurm":
        from jobs.slurm import SlurmScheduler

        return SlurmScheduler(**settings)
    raise ValueError(f"unknown scheduler {kind!r}: use 'local' or 'slurm'")
