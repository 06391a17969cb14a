"""The session's face store: every face any task of the session made, looked up by id.

Tasks write their face records as ``records.jsonl`` in their own folder of the results
directory, exactly as ``ligan generate`` does (one JSON record per line; ``image`` relative to
that folder). The store does not copy them: it keeps an index, ``faces.index`` in the results
directory, with one line per face — ``<face id> TAB <records file, relative> TAB <byte offset>``
— and reads a record back from its line when asked.

Why not SQLite: the results directory lives on a filesystem shared with the frontend (often
NFS), where SQLite's locking is unreliable. Appending lines is safe there, only one backend
serves a session at a time, and the index is small (about 80 bytes per face, so 30 000 faces
are 2.4 MB) while the records themselves (the latent: 512 floats for a real model) stay on disk.
A missing or damaged index is rebuilt by scanning every ``records.jsonl`` under the results
directory, so records are the single source of truth.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Iterable

from models.records import FaceRecord

log = logging.getLogger(__name__)

INDEX_NAME = "faces.index"
RECORDS_NAME = "records.jsonl"
FACE_ID = re.compile(r"^[0-9a-f]{32}$")


class FaceStore:
    def __init__(self, results_dir: str | os.PathLike) -> None:
        self.root = Path(results_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index: dict[str, tuple[str, int]] = {}
        self._load()

    # -- reading ------------------------------------------------------------------------------

    def __contains__(self, face_id: str) -> bool:
        return face_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def get(self, face_id: str) -> FaceRecord | None:
        """The record of ``face_id``, or None if this session never made it."""
        entry = self._index.get(face_id)
        if entry is None:
            return None
        rel, offset = entry
        try:
            with open(self.root / rel, "rb") as fh:
                fh.seek(offset)
                line = fh.readline()
            record = FaceRecord.from_dict(json.loads(line))
        except (OSError, ValueError) as exc:
            log.warning("face %s: its record in %s at %d cannot be read (%s)", face_id, rel,
                        offset, exc)
            return None
        return record if record.id == face_id else None

    def folder_of(self, face_id: str) -> Path | None:
        """The folder holding the face's records file (its ``image`` is relative to it)."""
        entry = self._index.get(face_id)
        return (self.root / entry[0]).parent if entry else None

    def relative_image(self, face_id: str, record: FaceRecord) -> str | None:
        folder = self.folder_of(face_id)
        if folder is None or not record.image:
            return None
        return (folder / record.image).relative_to(self.root).as_posix()

    # -- writing ------------------------------------------------------------------------------

    def append(self, folder: Path, records: Iterable[FaceRecord]) -> None:
        """Write records to ``folder/records.jsonl`` and index them."""
        path = Path(folder) / RECORDS_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            with open(path, "ab") as fh:
                start = fh.tell()
                for rec in records:
                    fh.write((rec.to_json() + "\n").encode("utf-8"))
                fh.flush()
            self._index_from_locked(path, start)

    def index_appended(self, records_file: str | os.PathLike, start: int) -> int:
        """Index the records another writer (e.g. ``models.generate``) appended to
        ``records_file`` from byte ``start`` on; returns the offset after the last full line."""
        with self._lock:
            return self._index_from_locked(Path(records_file), start)

    def _index_from_locked(self, path: Path, start: int) -> int:
        rel = path.resolve().relative_to(self.root).as_posix()
        lines = []
        offset = start
        with open(path, "rb") as fh:
            fh.seek(start)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                face_id = _face_id(line)
                if face_id is not None and self._index.get(face_id) != (rel, offset):
                    self._index[face_id] = (rel, offset)
                    lines.append(f"{face_id}\t{rel}\t{offset}\n")
                offset += len(line)
        if lines:
            with open(self.root / INDEX_NAME, "a", encoding="utf-8") as idx:
                idx.writelines(lines)
        return offset

    # -- start-up -----------------------------------------------------------------------------

    def _load(self) -> None:
        index = self.root / INDEX_NAME
        if index.exists():
            bad = 0
            with open(index, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) == 3 and FACE_ID.match(parts[0]) and parts[2].isdigit():
                        self._index[parts[0]] = (parts[1], int(parts[2]))
                    else:
                        bad += 1
            if not bad:
                return
            log.warning("%s has %d damaged line(s); rebuilding it from the records", index, bad)
        self._rebuild()

    def _rebuild(self) -> None:
        self._index.clear()
        tmp = self.root / (INDEX_NAME + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for path in sorted(self.root.rglob(RECORDS_NAME)):
                rel = path.relative_to(self.root).as_posix()
                offset = 0
                with open(path, "rb") as fh:
                    for line in fh:
                        if not line.endswith(b"\n"):
                            break
                        face_id = _face_id(line)
                        if face_id is not None:
                            self._index[face_id] = (rel, offset)
                            out.write(f"{face_id}\t{rel}\t{offset}\n")
                        offset += len(line)
        os.replace(tmp, self.root / INDEX_NAME)
        if self._index:
            log.info("face store: indexed %d faces under %s", len(self._index), self.root)


def _face_id(line: bytes) -> str | None:
    """The ``id`` of a records.jsonl line. Records are written with sorted keys, so their id
    comes third, before the latent: read it from the line's start instead of parsing the
    whole line (a w+ latent is thousands of numbers); anything else is parsed in full."""
    match = _LEADING_ID.match(line)
    if match:
        return match.group(1).decode("ascii")
    try:
        face_id = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
    return face_id if isinstance(face_id, str) and FACE_ID.match(face_id) else None


# {"bundle_hash": "<hex>", "created": "<iso time>", "id": "<face id>", ...
_LEADING_ID = re.compile(rb'\{"bundle_hash": "[0-9a-f]*", "created": "[0-9T:+.\-]*", '
                         rb'"id": "([0-9a-f]{32})"')
