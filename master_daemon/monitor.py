"""The monitor thread: calls :meth:`Manager.tick` every ``interval_s`` seconds.

One tick asks the scheduler for the state of every live backend job in one query, so a
backend killed mid-task (``kill -9``, ``scancel``, a node failure) is noticed within
``interval_s`` plus the scheduler's own delay, well inside 10 s with the default 2 s. A failing
tick is logged and the next one runs anyway.
"""
from __future__ import annotations

import logging
import threading

from master_daemon.manager import Manager

log = logging.getLogger("ligan.daemon.monitor")


class Monitor:
    def __init__(self, manager: Manager, interval_s: float = 2.0):
        self.manager = manager
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ligan-daemon-monitor",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.manager.tick()
            except Exception:
                log.exception("monitor tick failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
