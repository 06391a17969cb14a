"""The backend's parts on their own: the callback outbox and the session's face store."""
from __future__ import annotations

import json
import time

import pytest

from backend_server.callbacks import CallbackSender
from models.facestore import INDEX_NAME, FaceStore
from backend_server.testing import CallbackReceiver
from models.records import FaceRecord

SECRET = "parts-secret"


@pytest.fixture
def receiver():
    rx = CallbackReceiver(SECRET).start()
    yield rx
    rx.stop()


def sender_for(rx: CallbackReceiver, **kw) -> CallbackSender:
    return CallbackSender(rx.url, SECRET, timeout=2, retry_initial=0.02, retry_max=0.1, **kw)


def test_outbox_keeps_order_and_only_the_newest_progress_while_the_daemon_is_down(receiver):
    sender = sender_for(receiver)
    receiver.stop()
    for i in range(50):
        sender.send("on-progress", {"task_id": "a", "progress": i, "message": f"{i}"})
        sender.send("on-progress", {"task_id": "b", "progress": i, "message": f"{i}"})
    sender.send("on-result", {"task_id": "a", "state": "done"})
    time.sleep(0.2)
    assert sender.pending() <= 3  # a's result, b's newest progress (+ one in flight at most)
    assert not sender.flush(0.2)
    receiver.start()
    assert sender.flush(10)
    got = [(c.kind, c.body["task_id"], c.body.get("progress")) for c in receiver.callbacks]
    assert ("on-result", "a", None) in got
    assert got[-1] == ("on-progress", "b", 49) or ("on-progress", "b", 49) in got
    a_events = [g for g in got if g[1] == "a"]
    assert a_events[-1][0] == "on-result" and len(a_events) <= 2
    assert sender.close(1) == []


def test_refused_callbacks_are_dropped_not_retried_forever(receiver):
    sender = sender_for(receiver)
    receiver.secret = "another secret"  # the daemon answers 401
    sender.send("on-progress", {"task_id": "a", "progress": 1, "message": ""})
    assert sender.flush(5)
    assert sender.dropped == 1 and receiver.rejected == 1
    receiver.secret = SECRET
    sender.send("on-result", {"task_id": "a", "state": "done"})
    assert sender.flush(5) and [c.kind for c in receiver.callbacks] == ["on-result"]
    assert receiver.callbacks[0].authorization == f"Bearer {SECRET}"


def test_undelivered_callbacks_are_written_down_at_exit(receiver, tmp_path):
    sender = sender_for(receiver)
    receiver.stop()
    sender.send("on-result", {"task_id": "a", "state": "interrupted"})
    left = sender.close(0.2, leftover_file=tmp_path / "left.jsonl")
    assert left == [{"callback": "on-result", "body": {"task_id": "a", "state": "interrupted"}}]
    assert json.loads((tmp_path / "left.jsonl").read_text()) == left[0]


def record(i: int, image: str | None = None) -> FaceRecord:
    return FaceRecord(bundle_hash="h", latent_space="z", latent=[float(i), 0.5],
                      operation="test", parameters={"i": i}, image=image or f"{i}.png")


def test_face_store_finds_every_face_of_the_session_across_restarts(tmp_path):
    store = FaceStore(tmp_path)
    a = [record(i) for i in range(3)]
    store.append(tmp_path / "tasks" / "one", a)
    # another writer appends to a records file; the store indexes what it wrote
    other = tmp_path / "tasks" / "two" / "records.jsonl"
    other.parent.mkdir(parents=True)
    b = record(7)
    other.write_text(b.to_json() + "\n" + '{"id": "partial line')
    end = store.index_appended(other, 0)
    assert end == len(b.to_json()) + 1  # the unfinished line is left for later
    assert store.get(a[1].id) == a[1] and store.get(b.id) == b
    assert store.relative_image(b.id, b) == "tasks/two/7.png"
    assert store.get("0" * 32) is None and len(store) == 4

    again = FaceStore(tmp_path)  # the next backend of the session
    assert again.get(a[2].id) == a[2] and again.get(b.id) == b

    (tmp_path / INDEX_NAME).unlink()  # lost index: rebuilt from the records
    rebuilt = FaceStore(tmp_path)
    assert rebuilt.get(a[0].id) == a[0] and len(rebuilt) == 4

    with open(tmp_path / INDEX_NAME, "a") as fh:  # damaged index: rebuilt too
        fh.write("garbage\n")
    assert FaceStore(tmp_path).get(b.id) == b
