"""Building a large dataset as a SLURM job array through ``jobs/``' scheduler.

Task *i* of an array of *n* runs ``ligan dataset build`` on the *i*-th contiguous block of the
sorted file list (it reads ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``) and writes its
own shards and report; a second job, ``ligan dataset merge``, waits for all tasks to succeed
(``--dependency=afterok``) and combines the reports. The job specs are plain
:class:`jobs.JobSpec` objects, so the scheduler's partition, account, container and setup lines
apply as to every other job.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from jobs.scheduler import JobSpec, Scheduler
from jobs.submit import ligan_command

_BUILD_OPTIONS = ("resolution", "workers", "min_size", "min_colourfulness", "min_face_size",
                  "several_faces", "detector", "upsample", "align", "min_sharpness",
                  "max_upscale", "window_size", "similarity_threshold", "shard_size")


def build_command(args: argparse.Namespace) -> list[str]:
    """``ligan dataset build`` with the settings of ``args`` (no shard index: the task's
    environment gives it)."""
    argv = [*ligan_command(), "dataset", "build",
            *[str(Path(s).resolve()) for s in args.sources],
            "--out", str(Path(args.out).resolve()), "--no-progress"]
    for name in _BUILD_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def array_job_specs(args: argparse.Namespace, tasks: int, time_limit_s: int | None = None,
                    memory_mb: int | None = None, max_parallel: int | None = None
                    ) -> tuple[JobSpec, JobSpec]:
    """The job array's spec and the merge job's spec (its dependency is added at submission,
    when the array's id is known)."""
    if tasks < 1:
        raise ValueError("a job array needs at least 1 task")
    out = Path(args.out).resolve()
    logs = out / "logs"
    array = f"--array=0-{tasks - 1}" + (f"%{max_parallel}" if max_parallel else "")
    build = JobSpec(name="ligan-dataset", command=build_command(args), workdir=Path.cwd(),
                    stdout=logs / "build-%A_%a.out", time_limit_s=time_limit_s,
                    memory_mb=memory_mb, cpus=max(1, args.workers), extra_args=[array])
    merge = JobSpec(name="ligan-dataset-merge",
                    command=[*ligan_command(), "dataset", "merge", str(out)],
                    workdir=Path.cwd(), stdout=logs / "merge-%j.out", time_limit_s=1800,
                    memory_mb=2000)
    return build, merge


def submit_array(scheduler: Scheduler, args: argparse.Namespace, tasks: int,
                 **limits) -> tuple[str, str]:
    """Submit the array and its merge job; returns their job ids."""
    build, merge = array_job_specs(args, tasks, **limits)
    (Path(args.out).resolve() / "logs").mkdir(parents=True, exist_ok=True)
    array_id = scheduler.submit(build)
    merge.extra_args.append(f"--dependency=afterok:{array_id}")
    return array_id, scheduler.submit(merge)
