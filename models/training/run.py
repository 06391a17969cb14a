"""What every training job shares: the run folder, its log, and stopping cleanly on signals."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("ligan.train")


def prepare_run_dir(run_dir: Path, config: Any, resumable: set[str]) -> None:
    """Create the run folder (with ``samples/``), refuse a folder whose ``config.json`` differs
    in anything but ``resumable`` settings, write the config, and log to ``log.txt``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    cfg_path = run_dir / "config.json"
    current = dataclasses.asdict(config)
    if cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
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
