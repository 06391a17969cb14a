"""Read-only lookup of face records in a session's results folder.

The backend's face store (``backend_server/facestore.py``) writes ``faces.index`` lines
``<face id> TAB <records file> TAB <byte offset>``; the records themselves are the
``records.jsonl`` lines (``image`` relative to that file's folder). The frontend only reads:
it never rebuilds or appends, so it cannot disturb a running backend.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

FACE_ID = re.compile(r"^[0-9a-f]{32}$")


def find_record(results_dir: Path, face_id: str) -> dict | None:
    """The face record ``face_id`` with ``image`` relative to ``results_dir``, or None."""
    if not FACE_ID.match(face_id or ""):
        return None
    root = results_dir.resolve()
    index = root / "faces.index"
    if index.is_file():
        with open(index, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3 and parts[0] == face_id and parts[2].isdigit():
                    record = _read_at(root, parts[1], int(parts[2]), face_id)
                    if record is not None:
                        return record
    for path in sorted(root.rglob("records.jsonl")):  # not indexed yet: scan the records
        with open(path, "rb") as fh:
            offset = 0
            for raw in fh:
                if face_id.encode() in raw:
                    return _read_at(root, path.relative_to(root).as_posix(), offset, face_id)
                offset += len(raw)
    return None


def _read_at(root: Path, rel: str, offset: int, face_id: str) -> dict | None:
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    with open(path, "rb") as fh:
        fh.seek(offset)
        try:
            record = json.loads(fh.readline())
        except ValueError:
            return None
    if not isinstance(record, dict) or record.get("id") != face_id:
        return None
    if record.get("image"):
        image = (path.parent / record["image"]).resolve()
        record["image"] = image.relative_to(root).as_posix() if image.is_relative_to(root) \
            else None
    return record


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
