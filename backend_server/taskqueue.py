"""The in-process task queue: tasks wait in line and worker threads run them one at a time each.

Life of a task (docs/backend.md): ``queued`` → ``running`` (progress 0–100) → ``done`` |
``failed`` | ``cancelled`` | ``interrupted``. ``interrupted`` means the backend shut down before
running or finishing it; the master daemon re-queues it on the next backend. Every change that
matters to the daemon is pushed as a callback (``on-progress`` while running, one ``on-result``
at the end, whatever the end) and can be polled with ``GET /tasks/<id>``.

The queue knows nothing about what a task does: it looks the type up in the registry
(:mod:`backend_server.tasks`), validates with the type's validator and runs the type's ``run``
with a :class:`TaskContext`.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

from backend_server.tasks import BackendLimits, TaskEnv, TaskStopped, TaskType
from backend_server.validation import Conflict, NotFound, Params, RequestError, Unprocessable

log = logging.getLogger(__name__)

FINISHED = ("done", "failed", "cancelled", "interrupted")
KEEP_FINISHED = 200  # finished tasks remembered for GET /tasks/<id>
# At most this often an on-progress per task (GET /tasks/<id> always has the newest numbers):
# the daemon relays each one to the browser, and a fast task must not flood either.
PROGRESS_INTERVAL = 0.25


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Task:
    def __init__(self, task_id: str, type_: TaskType, params: dict[str, Any]) -> None:
        self.id = task_id
        self.type = type_
        self.params = params
        self.state = "queued"
        self.progress = 0.0
        self.message = "queued"
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.created = _now()
        self.started: str | None = None
        self.finished: str | None = None
        self.stop = threading.Event()
        self.stop_reason = "cancelled"  # or "interrupted" (shutdown)
        self.done = threading.Event()
        self.progress_sent = 0.0  # time.monotonic() of the last on-progress
        # Every file the task wrote, in order: the result carries the first
        # ``limits.result_files``, GET /tasks/<id>/files pages through all of them.
        self.files: list[str] = []

    def files_page(self, offset: int, limit: int) -> dict[str, Any]:
        """``limit`` paths of :attr:`files` from ``offset`` (while the task runs: so far)."""
        files = self.files
        return {"task_id": self.id, "state": self.state, "offset": offset, "limit": limit,
                "total": len(files), "files": files[offset:offset + limit]}

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.id, "type": self.type.name, "state": self.state,
                "progress": self.progress, "message": self.message, "result": self.result,
                "error": self.error, "params": self.params, "created": self.created,
                "started": self.started, "finished": self.finished}


class TaskContext:
    """What a running task gets: the bundle, the results folder, the face store, progress
    reporting and cancellation."""

    def __init__(self, task: Task, queue_: "TaskQueue") -> None:
        self._task = task
        self._queue = queue_
        self.task_id = task.id
        self.params = task.params
        self.bundle = queue_.env.bundle
        self.faces = queue_.env.faces
        self.results_dir: Path = queue_.env.results_dir
        self.limits: BackendLimits = queue_.env.limits
        self._faces: list[dict[str, Any]] = []
        self._faces_total = 0
        self._files: list[str] = task.files
        self._file_set: set[str] = set()
        self._extra: dict[str, Any] = {}

    # progress and cancellation

    def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0–100, never going back) with a short message."""
        self._queue._progress(self._task, percent, message)

    def cancelled(self) -> bool:
        """True once the task was cancelled or the backend is shutting down."""
        return self._task.stop.is_set()

    def check_cancelled(self) -> None:
        if self._task.stop.is_set():
            raise TaskStopped(self._task.stop_reason)

    # output

    def task_dir(self) -> Path:
        """``<results>/tasks/<task id>``, created on first use."""
        path = self.results_dir / "tasks" / self.task_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: str | Path) -> str:
        return Path(path).resolve().relative_to(self.results_dir).as_posix()

    def save_faces(self, records: Iterable, folder: Path) -> None:
        """Write records to ``folder/records.jsonl``, index them and add them to the result."""
        records = list(records)
        self.faces.append(folder, records)
        self._collect(records, folder)

    def faces_written(self, records: Iterable, folder: Path, records_file: Path,
                      start: int) -> int:
        """Records another function already appended to ``records_file`` from byte ``start``:
        index them and add them to the result. Returns the new end offset."""
        end = self.faces.index_appended(records_file, start)
        self._collect(list(records), folder)
        return end

    def add_faces(self, records: Iterable, folder: Path) -> None:
        """Add records that are already on disk and indexed to the result."""
        self._collect(list(records), folder)

    def add_files(self, paths: Iterable[str | Path]) -> None:
        for p in paths:
            self._add_file(self.relative(p))

    def _add_file(self, rel: str) -> None:
        if rel not in self._file_set:
            self._file_set.add(rel)
            self._files.append(rel)

    def _collect(self, records: list, folder: Path) -> None:
        # The records file before its images, so that the first files of a capped result
        # always name where every record is.
        if records:
            self._add_file(self.relative(Path(folder) / "records.jsonl"))
        for rec in records:
            self._faces_total += 1
            image = self.relative(Path(folder) / rec.image) if rec.image else None
            if image:
                self._add_file(image)
            if len(self._faces) < self.limits.result_faces:
                data = rec.to_dict()
                data["image"] = image  # in results: relative to the results folder
                self._faces.append(data)

    def annotate(self, **extra: Any) -> None:
        """Task-specific result keys, kept in partial results too (cancelled, interrupted)."""
        self._extra.update(extra)

    def result(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        """The task's result: at most ``limits.result_faces`` face records and
        ``limits.result_files`` file paths (the first ones), with their totals, so that a
        30 000-face task's result stays small; the task type's own keys after them."""
        out = {"faces": self._faces, "files": self._files[:self.limits.result_files],
               "faces_total": self._faces_total, "files_total": len(self._files)}
        out.update(self._extra)
        out.update(extra or {})
        return out

    @property
    def has_output(self) -> bool:
        return bool(self._faces_total or self._files or self._extra)


class TaskQueue:
    def __init__(self, env: TaskEnv, registry: dict[str, TaskType], notify, *,
                 workers: int = 1, identity: dict[str, Any] | None = None) -> None:
        """``notify(kind, body)`` delivers a callback (``CallbackSender.send``)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.env = env
        self.registry = dict(registry)
        self._notify = notify
        self._identity = dict(identity or {})
        self._lock = threading.RLock()
        self._submit_lock = threading.Lock()
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._waiting: queue.Queue[Task | None] = queue.Queue()
        self._running: set[str] = set()
        self.accepting = True
        self.last_activity = time.monotonic()
        self._threads = [threading.Thread(target=self._work, name=f"worker-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- API ----------------------------------------------------------------------------------

    def submit(self, type_name: Any, raw_params: Any) -> Task:
        if not isinstance(type_name, str):
            raise RequestError("type must be a string naming the task type: "
                               f"{', '.join(sorted(self.registry))}")
        task_type = self.registry.get(type_name)
        if task_type is None:
            raise Unprocessable(f"unknown task type {type_name[:60]!r}; use one of: "
                                f"{', '.join(sorted(self.registry))}")
        if not self.accepting:
            raise Conflict("the backend is shutting down and takes no new tasks; send the task "
                           "to the session's next backend")
        task_id = uuid.uuid4().hex
        params = Params(raw_params, type_name)
        env = TaskEnv(bundle=self.env.bundle, faces=self.env.faces,
                      results_dir=self.env.results_dir, limits=self.env.limits, task_id=task_id,
                      active=self._active)
        with self._submit_lock:  # one validation at a time: checks against active tasks hold
            clean = task_type.validate(params, env)
            params.finish()
            task = Task(task_id, task_type, clean)
            with self._lock:
                if not self.accepting:
                    raise Conflict("the backend is shutting down and takes no new tasks")
                self._tasks[task_id] = task
                self.last_activity = time.monotonic()
                self._forget_old()
        self._waiting.put(task)
        log.info("task %s (%s) queued", task_id, type_name)
        return task

    def _active(self) -> list[tuple[str, dict]]:
        with self._lock:
            return [(t.type.name, t.params) for t in self._tasks.values()
                    if t.state in ("queued", "running")]

    def get(self, task_id: str) -> Task:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            raise NotFound(f"no task {task_id[:64]!r} on this backend (finished tasks are kept "
                           f"for the last {KEEP_FINISHED})")
        return task

    def cancel(self, task_id: str) -> Task:
        task = self.get(task_id)
        with self._lock:
            if task.state in FINISHED:
                raise Conflict(f"task {task_id} already ended ({task.state}); nothing to cancel")
            task.stop_reason = "cancelled"
            task.stop.set()
            if task.state == "queued":
                self._finish(task, "cancelled", None, None, "cancelled before it started")
            else:
                task.message = "cancelling"
        return task

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [t.state for t in self._tasks.values()]
        return {"queued": states.count("queued"), "running": states.count("running")}

    def busy(self) -> bool:
        c = self.counts()
        return bool(c["queued"] or c["running"])

    def wait(self, task_id: str, timeout: float) -> bool:
        return self.get(task_id).done.wait(timeout)

    def shutdown(self, grace: float, stop_wait: float = 10.0) -> None:
        """Stop taking tasks, mark queued ones interrupted, let running ones finish within
        ``grace`` seconds, then stop them at their next step (interrupted, partial output kept)
        and wait up to ``stop_wait`` seconds for that."""
        with self._lock:
            self.accepting = False
            for task in list(self._tasks.values()):
                if task.state == "queued":
                    task.stop_reason = "interrupted"
                    task.stop.set()
                    self._finish(task, "interrupted", None, None,
                                 "the backend shut down before the task started")
            running = [t for t in self._tasks.values() if t.state == "running"]
        deadline = time.monotonic() + grace
        for task in running:
            task.done.wait(max(0.0, deadline - time.monotonic()))
        late = [t for t in running if not t.done.is_set()]
        for task in late:
            log.warning("task %s still running after the %.0f s grace period; stopping it",
                        task.id, grace)
            with self._lock:
                task.stop_reason = "interrupted"
                task.stop.set()
        deadline = time.monotonic() + stop_wait
        for task in late:
            if not task.done.wait(max(0.0, deadline - time.monotonic())):
                log.error("task %s did not stop within %.0f s; reporting it interrupted",
                          task.id, stop_wait)
                with self._lock:
                    if task.state == "running":
                        self._finish(task, "interrupted", None,
                                     "the backend shut down while the task was running", None)
        for _ in self._threads:
            self._waiting.put(None)

    # -- workers ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._waiting.get()
            if task is None:
                return
            try:
                self._run(task)
            except Exception:  # noqa: BLE001 - the worker must live on whatever happens
                log.exception("worker: unexpected error around task %s", task.id)
                with self._lock:
                    if task.state not in FINISHED:
                        self._finish(task, "failed", None, "internal error in the backend's "
                                     "task queue; see the backend log", None)

    def _run(self, task: Task) -> None:
        with self._lock:
            if task.state != "queued":
                return
            task.state = "running"
            task.started = _now()
            task.message = "started"
            self._running.add(task.id)
        log.info("task %s (%s) running", task.id, task.type.name)
        self._send_progress(task)
        ctx = TaskContext(task, self)
        state, extra, error = "done", None, None
        try:
            extra = task.type.run(ctx)
        except TaskStopped:
            state = task.stop_reason
        except RequestError as exc:
            state, error = "failed", exc.message
        except Exception as exc:  # noqa: BLE001 - reported as a failed task
            state, error = "failed", describe_failure(task.type.name, exc)
            log.exception("task %s (%s) failed", task.id, task.type.name)
        result = ctx.result(extra) if state == "done" or ctx.has_output else None
        if result is not None:
            result = _plain_result(result)
        with self._lock:
            self._running.discard(task.id)
            if task.state == "running":
                message = {"done": "done", "failed": "failed", "cancelled": "cancelled",
                           "interrupted": "interrupted by shutdown"}[state]
                self._finish(task, state, result, error, message)

    def _finish(self, task: Task, state: str, result, error, message) -> None:
        """Under the lock: set the final state and send on-result once."""
        task.state = state
        task.result = result
        task.error = error
        if state == "done":
            task.progress = 100.0
        task.message = message or state
        task.finished = _now()
        self.last_activity = time.monotonic()
        log.info("task %s (%s) %s%s", task.id, task.type.name, state,
                 f": {error}" if error else "")
        self._notify("on-result", {**self._identity, "task_id": task.id,
                                   "type": task.type.name, "state": state, "result": result,
                                   "error": error})
        task.done.set()

    def _progress(self, task: Task, percent: float, message: str) -> None:
        try:
            percent = float(percent)
        except (TypeError, ValueError):
            percent = task.progress
        percent = min(100.0, max(task.progress, percent if percent == percent else 0.0))
        now = time.monotonic()
        with self._lock:
            if task.state != "running":
                return
            task.progress = round(percent, 2)
            task.message = str(message)[:200]
            if now - task.progress_sent < PROGRESS_INTERVAL:
                return
        self._send_progress(task)

    def _send_progress(self, task: Task) -> None:
        task.progress_sent = time.monotonic()
        self._notify("on-progress", {**self._identity, "task_id": task.id,
                                     "progress": task.progress, "message": task.message})

    def _forget_old(self) -> None:
        finished = [tid for tid, t in self._tasks.items() if t.state in FINISHED]
        for tid in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._tasks[tid]


def describe_failure(task_type: str, exc: Exception) -> str:
    """A human-readable reason for a failed task."""
    name = type(exc).__name__
    if name == "ResourceExhaustedError":
        return (f"{task_type}: out of accelerator memory; lower LIGAN_BACKEND_BATCH_SIZE or ask "
                f"for fewer faces at once")
    if isinstance(exc, (ValueError, OSError)):
        return f"{task_type}: {exc}"
    return f"{task_type}: internal error ({name}: {exc}); see the backend log"


def _plain_result(result: dict[str, Any]) -> dict[str, Any]:
    """The result in plain JSON types, whatever a task type put in (numpy numbers, paths).
    Face records are plain by construction (``FaceRecord.to_dict``) and hold the bulk of a
    result (a page of w+ latents), so only the rest takes the round trip through JSON."""
    faces = result.get("faces")
    rest = json.loads(json.dumps({k: v for k, v in result.items() if k != "faces"},
                                 default=str))
    if faces is not None:
        rest["faces"] = faces
    return {k: rest[k] for k in result if k in rest}
