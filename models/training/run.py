"""What every training job shares: the run folder, its log, stopping cleanly on signals, and the
step-counted loop of the encoder and attribute trainers."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from models.precision import Precision, check_precision, resolve_precision

log = logging.getLogger("ligan.train")


def prepare_run_dir(run_dir: Path, config: Any, resumable: set[str]) -> None:
    """Create the run folder (with ``samples/``), refuse a folder whose ``config.json`` differs
    in anything but ``resumable`` settings, write the config, and log to ``log.txt``.

    A setting missing from ``config.json`` (the folder predates it) counts as its default,
    which is how that run was trained."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    cfg_path = run_dir / "config.json"
    current = dataclasses.asdict(config)
    if cfg_path.exists():
        defaults = {f.name: f.default for f in dataclasses.fields(config)
                    if f.default is not dataclasses.MISSING}
        saved = {**defaults, **json.loads(cfg_path.read_text())}
        changed = sorted(k for k in set(saved) | set(current)
                         if saved.get(k) != current.get(k) and k not in resumable)
        if changed:
            diff = ", ".join(f"{k}: {saved.get(k)!r} → {current.get(k)!r}" for k in changed)
            raise ValueError(f"run folder {run_dir} belongs to a run with other settings "
                             f"({diff}); use a new run folder or the same settings to resume")
    cfg_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    path = str(run_dir / "log.txt")
    if not any(getattr(h, "baseFilename", None) == path for h in log.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def run_precision(run_dir: str | Path, setting: str | None,
                  default: str = "auto") -> Precision:
    """The precision of a run: ``setting`` when given (``--precision``), else the one an
    existing run folder was trained in (so that resuming keeps it), else ``default`` (the
    LIGAN_PRECISION setting) resolved for this machine."""
    if setting is not None:
        return resolve_precision(setting)
    cfg_path = Path(run_dir) / "config.json"
    if cfg_path.is_file():
        saved = json.loads(cfg_path.read_text())
        if saved.get("precision"):
            return Precision(check_precision(saved["precision"], False), "kept from the run")
        if saved.get("mixed_precision") is not None:  # run folders from before ``precision``
            return Precision("float16" if saved["mixed_precision"] else "float32",
                             "kept from the run")
    return resolve_precision(default)


def append_jsonl(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


class StopFlag:
    """Set by SIGTERM (SLURM's warning before a kill) or Ctrl-C; the loop checkpoints and exits
    after its current step so that running the same command resumes."""

    def __init__(self) -> None:
        self.reason = ""

    def __bool__(self) -> bool:
        return bool(self.reason)

    def _handle(self, signum, frame) -> None:
        self.reason = signal.Signals(signum).name
        log.warning("%s received: checkpointing after this step", self.reason)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals only reach the main thread; nothing to install
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def step_loop(run_dir: Path, name: str, step_var, total: int, tick_steps: int,
              snapshot_steps: int, max_minutes: float | None, progress: bool, stop: StopFlag,
              manager, train_step: Callable[[int], dict[str, Any]],
              on_snapshot: Callable[[int], dict[str, float] | None]) -> tuple[int, int, str]:
    """The step-counted training loop the encoder and attribute trainers share.

    Runs ``train_step(step)`` (returns scalars; ``step`` is the number of steps done before it)
    until ``total`` steps, SIGTERM/Ctrl-C (``stop``) or ``max_minutes``. Every ``tick_steps``
    the scalars' means, and at every ``snapshot_steps`` what ``on_snapshot(step)`` returns (it
    also checkpoints), go into one line of ``metrics.jsonl`` (``step``, ``seconds``, …) and the
    log. A stopped run is checkpointed, so the same command resumes. Returns the step reached,
    the step it started from, and why it ended ("finished", "stopped by SIGTERM", …).
    """
    start = step = int(step_var.numpy())
    bar = tqdm(total=total, initial=min(start, total), unit="step", desc=name,
               disable=not progress)
    started, sums, count, reason = time.monotonic(), {}, 0, "finished"
    with stop.installed():
        while step < total:
            stats = train_step(step)
            step = int(step_var.assign_add(1).numpy())
            bar.update(1)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            entry: dict[str, Any] = {}
            if step % tick_steps == 0 or step == total:
                entry = {k: v / count for k, v in sums.items()}
                sums, count = {}, 0
            if step % snapshot_steps == 0 or step == total:
                entry.update(on_snapshot(step) or {})
            if entry:
                entry = {"step": step, "seconds": round(time.monotonic() - started, 1), **entry}
                append_jsonl(run_dir / "metrics.jsonl", entry)
                log.info("%s step %d  %s", name, step, "  ".join(
                    f"{k} {v:.4f}" for k, v in sorted(entry.items()) if k != "step"))
            if stop:
                reason = f"stopped by {stop.reason}"
                break
            if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
                reason = f"stopped at the {max_minutes:g}-minute limit"
                break
    bar.close()
    if reason != "finished" and step != start:
        manager.save(checkpoint_number=step)
    return step, start, reason
