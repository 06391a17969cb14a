"""Task types: one module per type, found by name, never wired into the queue by hand.

A task module in this package defines ``TASK = TaskType(name, summary, validate, run)``:

* ``validate(params: Params, env: TaskEnv) -> dict`` runs when ``POST /tasks`` arrives. It
  reads every parameter through ``params`` (typed, range-checked; a parameter it does not read
  is rejected as unknown), may look things up in ``env`` (the loaded bundle, the face store, the
  results folder) and returns the parameters the task will run with, defaults filled in, as a
  JSON object. It raises :class:`~backend_server.validation.RequestError` subclasses (400, 404,
  409, 422) with a message that says what to change.
* ``run(ctx: TaskContext) -> dict | None`` runs on a worker thread. It reports progress with
  ``ctx.progress``, stops at its next step once ``ctx.cancelled()`` is true (by raising
  :class:`TaskStopped`, e.g. through ``ctx.check_cancelled()``), records the faces it made with
  ``ctx.save_faces`` / ``ctx.faces_written`` and its other files with ``ctx.add_files``, and
  returns extra result keys (or None). Whatever it raises becomes a failed task with the
  exception's message; the worker goes on with the next task.

See docs/backend.md, "Adding a task type".
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from backend_server.validation import Params
from setup.config import DEFAULTS

log = logging.getLogger(__name__)

class TaskStopped(Exception):
    """Raised inside ``run`` to stop at a step boundary after cancellation or shutdown."""


@dataclass(frozen=True)
class BackendLimits:
    """The limits the task types read: the backend's settings (``LIGAN_BACKEND_*``, defaults
    from :class:`setup.config.Settings`, overridden on the command line) and two constants."""

    batch_size: int = DEFAULTS.backend_batch_size      # faces rendered at once
    chunk_size: int = 64         # faces per chunk written to disk (random); not a setting
    result_faces: int = DEFAULTS.backend_result_faces  # records in a result (all: records.jsonl)
    result_files: int = DEFAULTS.backend_result_files  # paths in a result (all: GET …/files)
    max_random: int = 30_000     # most faces one random task may make; not a setting


@dataclass
class TaskEnv:
    """What a validator may consult."""

    bundle: Any
    faces: Any  # models.facestore.FaceStore
    results_dir: Path
    limits: BackendLimits
    task_id: str
    # (type, params) of every task queued or running now, e.g. to refuse a second task writing
    # into the same folder; submissions are validated one at a time, so this cannot race.
    active: Callable[[], list[tuple[str, dict]]] = lambda: []


@dataclass(frozen=True)
class TaskType:
    name: str
    summary: str
    validate: Callable[[Params, TaskEnv], dict]
    run: Callable[[Any], dict | None]  # run(ctx: backend_server.taskqueue.TaskContext)


def discover() -> dict[str, TaskType]:
    """Import every module of this package and collect the ``TASK`` each defines."""
    found: dict[str, TaskType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        task = getattr(module, "TASK", None)
        if not isinstance(task, TaskType):
            log.warning("%s defines no TASK; skipped", module.__name__)
            continue
        if task.name in found:
            raise RuntimeError(f"task type {task.name!r} is defined twice "
                               f"({module.__name__})")
        found[task.name] = task
    return found
