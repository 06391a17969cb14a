"""Callbacks to the master daemon: ``on-ready``, ``on-progress`` and ``on-result``.

Sending never blocks a task: :meth:`CallbackSender.send` puts the message in an outbox that one
thread delivers in order. A message that cannot be delivered (connection refused, timeout, 5xx,
408 or 429) stays at the head of the outbox and is retried with exponential back-off and
jitter, so nothing is lost while the daemon restarts and nothing overtakes it. Two rules keep
the outbox small however long the daemon is away: a newer ``on-progress`` of a task replaces
an older one that is still waiting, and a task's ``on-result`` drops its waiting
``on-progress`` messages. A 4xx other than 408/429 means the daemon refuses the message (a
wrong secret, an unknown session): retrying cannot help, so it is logged and dropped.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429}
# The daemon is reached directly: an http_proxy meant for the outside world must not carry
# callbacks (or the per-job secret) anywhere else.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class _Message:
    kind: str  # "on-ready", "on-progress", "on-result"
    body: dict[str, Any]
    attempts: int = 0
    queued_at: float = field(default_factory=time.monotonic)


class CallbackSender:
    def __init__(self, base_url: str, secret: str, *, timeout: float = 10.0,
                 retry_initial: float = 0.5, retry_max: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._outbox: deque[_Message] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.dropped = 0

    # -- queueing -----------------------------------------------------------------------------

    def send(self, kind: str, body: dict[str, Any]) -> None:
        """Queue a callback; returns at once."""
        with self._cond:
            task_id = body.get("task_id")
            if kind == "on-progress" and task_id is not None:
                for msg in self._outbox:
                    if (msg.kind == "on-progress" and msg.body.get("task_id") == task_id
                            and msg is not self._head_in_flight()):
                        msg.body = body  # keep the place in line, carry the newest numbers
                        return
            elif kind == "on-result" and task_id is not None:
                head = self._head_in_flight()
                kept = [m for m in self._outbox
                        if m is head or not (m.kind == "on-progress"
                                             and m.body.get("task_id") == task_id)]
                self._outbox = deque(kept)
            self._outbox.append(_Message(kind, body))
            self._cond.notify_all()

    def _head_in_flight(self) -> _Message | None:
        return self._outbox[0] if self._busy and self._outbox else None

    def pending(self) -> int:
        with self._cond:
            return len(self._outbox)

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outbox:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def close(self, timeout: float, leftover_file: Path | None = None) -> list[dict[str, Any]]:
        """Deliver what is waiting within ``timeout`` seconds, then stop. Messages still not
        delivered are returned (and appended to ``leftover_file`` as JSON lines, if given) so
        that they are not silently lost."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            left = [{"callback": m.kind, "body": m.body} for m in self._outbox]
            self._outbox.clear()
            self._cond.notify_all()
        if left:
            log.error("%d callback(s) could not be delivered to %s before exit", len(left),
                      self.base_url)
            if leftover_file is not None:
                try:
                    with open(leftover_file, "a", encoding="utf-8") as fh:
                        for item in left:
                            fh.write(json.dumps(item) + "\n")
                except OSError as exc:
                    log.error("cannot write %s: %s", leftover_file, exc)
        return left

    # -- delivery -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._outbox and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                msg = self._outbox[0]
                self._busy = True
            ok, retry, reason = self._post(msg)
            with self._cond:
                self._busy = False
                if ok or not retry:
                    if self._outbox and self._outbox[0] is msg:
                        self._outbox.popleft()
                    if ok:
                        self.delivered += 1
                    else:
                        self.dropped += 1
                        log.error("callback %s refused by the master daemon, dropped: %s",
                                  msg.kind, reason)
                    self._cond.notify_all()
                    continue
                msg.attempts += 1
                delay = min(self.retry_max, self.retry_initial * 2 ** (msg.attempts - 1))
                delay *= 0.75 + 0.5 * random.random()
                if msg.attempts == 1 or msg.attempts % 10 == 0:
                    log.warning("callback %s not delivered (%s); try %d again in %.1f s",
                                msg.kind, reason, msg.attempts + 1, delay)
                deadline = time.monotonic() + delay
                while not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)

    def _post(self, msg: _Message) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, reason)."""
        data = json.dumps(msg.body, default=str).encode("utf-8")
        req = urllib.request.Request(
            f"{self.base_url}/{msg.kind}", data=data, method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self._secret}"})
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                resp.read()
                return True, False, ""
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            try:
                reason += f": {exc.read(500).decode('utf-8', 'replace')}"
            except Exception:  # noqa: BLE001 - the reason is only for the log
                pass
            return False, exc.code >= 500 or exc.code in RETRY_STATUSES, reason
        except (OSError, ValueError) as exc:  # URLError, timeouts, connection refused/reset
            return False, True, str(getattr(exc, "reason", exc))
        except Exception as exc:  # noqa: BLE001 - e.g. a garbled answer; the thread must live
            return False, True, f"{type(exc).__name__}: {exc}"
