"""Per-session event streams: numbered events, kept for replay, waited on by SSE connections.

Every event gets the next id of its session (1, 2, 3, … across daemon restarts: the ids and
the newest ``keep`` events are in the store). A connection waits on its session's condition
variable, so publishing wakes exactly the browsers of that session. Events are written to the
store by a writer thread in batches (one transaction every ``flush_s`` at most), so publishing
costs no disk write: a crash of the daemon loses at most the last ``flush_s`` of the log, which
only matters for a replay after the restart.

A connection may be tied to a stream key (the hash of the frontend login it was opened for):
:meth:`EventHub.revoke` refuses keys (kept in the store until their tokens have expired, so
across restarts) and ends the connections that wait with them.
"""
from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from master_daemon.store import Store


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: str  # JSON
    at: float

    @property
    def wire(self) -> bytes:
        return f"id: {self.id}\nevent: {self.name}\ndata: {self.data}\n\n".encode()


def sse(name: str, data: Any, event_id: int | None = None) -> bytes:
    """One event in ``text/event-stream`` form (without ``id:`` when ``event_id`` is None)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()


class _Channel:
    def __init__(self, keep: int, history: list[tuple[int, str, str, float]]):
        self.cond = threading.Condition()
        self.events: collections.deque[Event] = collections.deque(
            (Event(*row) for row in history), maxlen=keep)
        self.last_id = self.events[-1].id if self.events else 0


class EventHub:
    """Publishes and replays the events of every session."""

    def __init__(self, store: Store, keep: int = 1000, flush_s: float = 0.05):
        self.store = store
        self.keep = keep
        self.flush_s = flush_s
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._revoked: dict[str, float] = store.load_revoked_keys(time.time())  # key → until
        self._pending: list[tuple[str, int, str, str, float]] = []
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._write, name="ligan-events-writer",
                                        daemon=True)
        self._writer.start()

    def _write(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.flush_s)  # gather a batch
            self._wake.clear()
            self.flush()
            if self._closed:
                return

    def flush(self) -> None:
        """Write the events not yet in the store."""
        with self._pending_lock:
            rows, self._pending = self._pending, []
        if rows:
            try:
                self.store.add_events(rows)
            except Exception:  # the log is a convenience; never stop publishing for it
                import logging

                logging.getLogger("ligan.daemon").exception("writing %d events failed",
                                                            len(rows))

    def _channel(self, sid: str) -> _Channel:
        ch = self._channels.get(sid)
        if ch is None:
            with self._lock:
                ch = self._channels.get(sid)
                if ch is None:
                    ch = _Channel(self.keep, self.store.load_events(sid))
                    self._channels[sid] = ch
        return ch

    def publish(self, sid: str, name: str, data: Any) -> int:
        """Append an event to the session's stream and wake its connections; its id."""
        text = json.dumps(data)
        ch = self._channel(sid)
        with ch.cond:
            ch.last_id += 1
            event = Event(ch.last_id, name, text, time.time())
            ch.events.append(event)
            with self._pending_lock:
                self._pending.append((sid, event.id, name, text, event.at))
            ch.cond.notify_all()
        self._wake.set()
        return event.id

    def last_id(self, sid: str) -> int:
        return self._channel(sid).last_id

    def after(self, sid: str, after_id: int, timeout: float = 0.0,
              key: str = "") -> list[Event] | None:
        """Events with an id above ``after_id`` that are still held, waiting up to ``timeout``
        seconds for one; None once the hub is closed (the daemon stops) or ``key`` is
        revoked."""
        ch = self._channel(sid)
        with ch.cond:
            if ch.last_id <= after_id and timeout > 0 and not self._ended(key):
                ch.cond.wait(timeout)
            if self._ended(key):
                return None
            out = []
            for event in reversed(ch.events):
                if event.id <= after_id:
                    break
                out.append(event)
            out.reverse()
            return out

    def revoked(self, key: str) -> bool:
        """Whether the stream key ``key`` was revoked (and its tokens may still be valid)."""
        until = self._revoked.get(key)
        return until is not None and until > time.time()

    def _ended(self, key: str) -> bool:
        return self._closed or self.revoked(key)

    def revoke(self, sid: str, keys: list[str], until: float) -> None:
        """Refuse the stream ``keys`` until ``until`` (written to the store first) and end the
        connections of session ``sid`` that use them."""
        now = time.time()
        self.store.add_revoked_keys(keys, until, now)
        with self._lock:
            live = {k: t for k, t in self._revoked.items() if t > now}
            live.update(dict.fromkeys(keys, until))
            self._revoked = live
            ch = self._channels.get(sid)
        if ch is not None:
            with ch.cond:
                ch.cond.notify_all()

    def close(self) -> None:
        """Wake and end every waiting connection; write what is not yet written."""
        self._closed = True
        self._wake.set()
        self._writer.join(5)
        self.flush()
        with self._lock:
            channels = list(self._channels.values())
        for ch in channels:
            with ch.cond:
                ch.cond.notify_all()
