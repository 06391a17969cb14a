"""Scheduler adapters: run backends and training as local processes or SLURM batch jobs.

``make_scheduler("local" | "slurm", **settings)`` returns a :class:`Scheduler`; see
jobs/README.md and docs/operators-slurm.md.
"""
from jobs.scheduler import (Container, JobSpec, JobState, JobStatus, Scheduler, SchedulerError,
                            SubmitError, make_scheduler)

__all__ = ["Container", "JobSpec", "JobState", "JobStatus", "Scheduler", "SchedulerError",
           "SubmitError", "make_scheduler"]
