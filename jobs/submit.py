"""``--slurm``: run a ``ligan train …`` or ``ligan dataset build`` command as a SLURM batch job.

One mechanism for every long-running command: :func:`add_submit_options` adds ``--local`` /
``--slurm`` and the job's resources (``--partition``, ``--account``, ``--gpus``, ``--time``,
``--memory``, ``--cpus``, ``--container``) to a subcommand's parser, and :func:`submittable`
wraps its handler. With ``--slurm`` the wrapped handler does not run the command: it rebuilds the
same command line from the parsed arguments (paths made absolute), replaces ``--slurm`` and the
resource options by ``--local``, and submits that as a :class:`jobs.JobSpec` through the SLURM
scheduler of ``jobs/``. The job writes into the same run folder, so submitting the same command
again resumes from its last checkpoint; the job's log is ``RUN/slurm/JOBID.out``.

Defaults come from the settings (``LIGAN_SLURM_PARTITION``, ``LIGAN_SLURM_ACCOUNT``,
``LIGAN_SLURM_GPUS``, ``LIGAN_SLURM_MEMORY_MB``, ``LIGAN_SLURM_CPUS``, ``LIGAN_CONTAINER``;
docs/configuration.md). The job is asked to receive SIGTERM two minutes before its time limit
(``--signal=B:TERM@120``): the trainers checkpoint on SIGTERM, so a job that runs out of time
loses at most the current step.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from setup.config import DEFAULTS, Settings
from setup.entry import CommandError

#: Options that describe the submission, not the command; never passed on to the job.
SUBMIT_DESTS = ("local", "slurm", "partition", "account", "gpus", "time", "memory", "cpus",
                "container", "mount")
#: Seconds before the time limit at which SLURM sends SIGTERM to the job.
SIGTERM_WARNING_S = 120


def parse_time(text: str) -> int:
    """A SLURM-style time limit in seconds: ``MINUTES``, ``HH:MM:SS``, ``MM:SS`` or
    ``D-HH[:MM[:SS]]``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"time limit {text!r} is not MINUTES, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = m.groups()
    if days is None and b is None:  # plain minutes
        seconds = int(a) * 60
    elif days is None and c is None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # [D-]HH[:MM[:SS]]
        seconds = int(days or 0) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"time limit {text!r} must be positive")
    return seconds


def parse_container(text: str):
    """``apptainer:IMAGE`` or ``enroot:IMAGE`` → :class:`jobs.Container` (None for "")."""
    from jobs.scheduler import Container

    if not text:
        return None
    kind, _, image = text.partition(":")
    try:
        return Container(kind=kind, image=image)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--container {text!r}: {exc} (use apptainer:IMAGE or enroot:IMAGE)") from None


def add_submit_options(parser: argparse.ArgumentParser, settings: Settings | None,
                       gpus: int | None = None) -> None:
    """``--local`` / ``--slurm`` and the job's resources, defaults from ``settings`` (None:
    the defaults of :class:`~setup.config.Settings`, as in tests that build a parser alone).

    ``gpus``: the default number of GPUs (None: ``settings.slurm_gpus``; 0 for CPU-only
    commands such as the dataset build).
    """
    settings = DEFAULTS if settings is None else settings

    group = parser.add_argument_group(
        "where it runs", "Default: in the foreground on this machine. --slurm submits the same "
                         "command as a SLURM batch job (it runs there with --local).")
    if "--local" not in parser._option_string_actions:
        group.add_argument("--local", action="store_true",
                           help="run in the foreground on this machine (the default)")
    group.add_argument("--slurm", action="store_true",
                       help="submit as a SLURM batch job instead; prints the job id and log")
    group.add_argument("--partition", default=settings.slurm_partition or None,
                       help="SLURM partition; LIGAN_SLURM_PARTITION sets the default")
    group.add_argument("--account", default=settings.slurm_account or None,
                       help="SLURM account; LIGAN_SLURM_ACCOUNT sets the default")
    group.add_argument("--gpus", type=int,
                       default=settings.slurm_gpus if gpus is None else gpus,
                       help="GPUs of the job")
    group.add_argument("--time", type=parse_time, default=None, metavar="LIMIT",
                       help="time limit: MINUTES, HH:MM:SS or D-HH:MM:SS (none: the "
                            "partition's); SIGTERM comes 2 minutes before, the run checkpoints")
    group.add_argument("--memory", type=int, default=settings.slurm_memory_mb,
                       metavar="MB", help="memory of the job in MB")
    group.add_argument("--cpus", type=int, default=settings.slurm_cpus, help="CPU cores")
    group.add_argument("--container", type=parse_container,
                       default=settings.container or None,
                       metavar="KIND:IMAGE",
                       help="run inside apptainer:IMAGE or enroot:IMAGE; LIGAN_CONTAINER sets "
                            "the default")
    group.add_argument("--mount", action="append", default=[], metavar="SRC:DST",
                       help="container bind mount (repeatable; the run folder and the "
                            "checkout are always mounted)")


def submittable(handler: Callable, path: Sequence[str], run_dir_dest: str,
                parser: argparse.ArgumentParser) -> Callable:
    """``handler`` unchanged for ``--local`` runs; with ``--slurm`` the command is submitted
    instead. ``path`` is the subcommand (``("train", "stylegan2")``), ``run_dir_dest`` the
    argument holding the run folder (its ``slurm/`` subfolder receives the job's log)."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        if not getattr(args, "slurm", False):
            return handler(args, settings)
        run_dir = Path(getattr(args, run_dir_dest)).resolve()
        job_id, log = submit(args, parser, path, run_dir, settings)
        print(f"submitted SLURM job {job_id}\n"
              f"  run folder: {run_dir}\n"
              f"  log:        {log}\n"
              f"  follow it:  squeue -j {job_id}; tail -f {log}\n"
              f"  resume:     submit the same command again (it continues from the last "
              f"checkpoint)")
        return 0

    return run


def ligan_command() -> list[str]:
    """How a job calls ``ligan``: the venv's script next to this Python, else ``-m setup.cli``."""
    script = Path(sys.executable).parent / "ligan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "setup.cli"]


def job_command(args: argparse.Namespace, parser: argparse.ArgumentParser,
                path: Sequence[str]) -> list[str]:
    """The command line that re-runs ``args`` with ``--local``: every option whose value
    differs from its default (paths made absolute), positionals, and no submission options."""
    argv = [*ligan_command(), *path]
    positionals: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in SUBMIT_DESTS:
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            values = value if isinstance(value, list) else [value]
            positionals += [_text(v) for v in values if v is not None]
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") \
            else action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            if value is not None and value != action.default:
                argv.append(action.option_strings[0 if value else 1])
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if value != action.default:
                argv.append(flag)
        elif isinstance(action, argparse._AppendAction):
            for v in value or []:
                argv += [flag, _text(v)]
        elif value is not None and value != action.default:
            for v in value if isinstance(value, list) else [value]:
                argv += [flag, _text(v)]
    return [*argv, *positionals, "--local"]


def _text(value: Any) -> str:
    return str(value.resolve()) if isinstance(value, Path) else str(value)


def submit(args: argparse.Namespace, parser: argparse.ArgumentParser, path: Sequence[str],
           run_dir: Path, settings: Settings) -> tuple[str, Path]:
    """Submit the job; returns its id and its log file."""
    from jobs.scheduler import JobSpec, SchedulerError, make_scheduler

    logs = run_dir / "slurm"
    logs.mkdir(parents=True, exist_ok=True)
    container = args.container
    if container is not None:
        checkout = Path(__file__).resolve().parents[1]
        mounts = (*args.mount, f"{run_dir}:{run_dir}", f"{checkout}:{checkout}")
        container = type(container)(kind=container.kind, image=container.image, mounts=mounts)
    spec = JobSpec(name=f"ligan-{'-'.join(path)}", command=job_command(args, parser, path),
                   workdir=Path.cwd(), stdout=logs / "%j.out", time_limit_s=args.time,
                   memory_mb=args.memory, cpus=args.cpus, gpus=args.gpus,
                   partition=args.partition, account=args.account, container=container,
                   env={"PYTHONUNBUFFERED": "1"},
                   extra_args=[f"--signal=B:TERM@{SIGTERM_WARNING_S}"])
    try:
        scheduler = make_scheduler("slurm", script_dir=logs)
        job_id = scheduler.submit(spec)
    except (SchedulerError, ValueError) as exc:
        raise CommandError(f"SLURM submission failed: {exc}") from None
    return job_id, logs / f"{job_id}.out"


def make_submittable(subparsers: argparse._SubParsersAction, prefix: Sequence[str],
                     settings: Settings | None, run_dir_dest: str = "run_dir",
                     names: Sequence[str] | None = None, gpus: int | None = None) -> None:
    """Add the submission options to the named subcommands of ``subparsers`` (all by default)
    and wrap their handlers: one call per command group, no per-command copies."""
    for name, parser in subparsers.choices.items():
        if names is not None and name not in names:
            continue
        handler = parser.get_default("handler")
        add_submit_options(parser, settings, gpus)
        parser.set_defaults(handler=submittable(handler, (*prefix, name), run_dir_dest, parser))

