"""Read-only lookup of face records in a user's results folder.

The format (``faces.index``, ``records.jsonl``) is ``models.facestore``'s; this module keeps the
frontend's cached view of each folder's index, shared by lineups, exports and the gallery. The
frontend only reads: it never rebuilds or appends, so it cannot disturb a running backend.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from models import facestore
from models.facestore import FACE_ID, FaceIndex

_lock = threading.Lock()
_indexes: "OrderedDict[Path, FaceIndex]" = OrderedDict()
_MAX_INDEXES = 16


def read_index(root: Path) -> FaceIndex:
    """The face index of results folder ``root`` (cached; only an appended tail is re-read,
    a torn last line waits until it is complete)."""
    root = Path(root)
    with _lock:
        previous = _indexes.get(root)
        index = facestore.read_index(root, previous)
        if index.scanned:                 # no faces.index yet: nothing to keep up with
            _indexes.pop(root, None)
            return index
        _indexes[root] = index
        _indexes.move_to_end(root)
        while len(_indexes) > _MAX_INDEXES:
            _indexes.popitem(last=False)
        return index


def clear_cache() -> None:
    """Forget every cached index (tests)."""
    with _lock:
        _indexes.clear()


def find_record(results_dir: Path, face_id: str) -> dict | None:
    """The face record ``face_id`` with ``image`` relative to ``results_dir``, or None."""
    if not FACE_ID.match(face_id or ""):
        return None
    root = results_dir.resolve()
    index = read_index(root)
    record = facestore.read_record(root, index, face_id)
    if record is None and not index.scanned:
        # Not indexed (yet): look in the records themselves, as a rebuilt index would.
        record = _scan_for(root, face_id)
    if record is not None and record.get("image") and \
            not facestore.inside(root, record["image"]):
        record["image"] = None            # a link that leads out of the folder
    return record


def _scan_for(root: Path, face_id: str) -> dict | None:
    needle = face_id.encode()
    for path in sorted(root.rglob(facestore.RECORDS_NAME)):
        rel = path.relative_to(root).as_posix()
        with open(path, "rb") as fh:
            for offset, line in facestore.complete_lines(fh):
                if needle in line and facestore.line_id(line) == face_id:
                    return facestore.record_at(root, rel, offset, face_id)
    return None


def lineage(results_dir: Path, record: dict, depth: int = 4) -> list[dict]:
    """The records of a face's parents, grandparents … (up to ``depth`` generations)."""
    out, seen, frontier = [], {record.get("id")}, list(record.get("parents") or [])
    for _ in range(depth):
        nxt = []
        for pid in frontier:
            if pid in seen:
                continue
            seen.add(pid)
            parent = find_record(results_dir, pid)
            if parent is not None:
                out.append(parent)
                nxt.extend(parent.get("parents") or [])
        frontier = nxt
    return out
