"""The face store format, read and written: ``faces.index`` and the ``records.jsonl`` files.

Tasks write their face records as ``records.jsonl`` anywhere under a session's results folder,
exactly as ``ligan generate`` does: one :class:`~models.records.FaceRecord` JSON object per line,
``image`` relative to that file's folder. The store does not copy them: it keeps an index,
``faces.index`` in the results folder, with one line per face —
``<face id> TAB <records file, relative, with /> TAB <byte offset of its line>`` — and reads a
record back from its line when asked. A later line for the same id wins; ids keep the order in
which they were first indexed (the gallery lists newest first from it).

This module is the one place that knows the format. The backend's :class:`FaceStore` is the
only writer of an index (one backend serves a session at a time); the frontend reads with
:func:`read_index` and :func:`read_record`, never writes, and so cannot disturb a running
backend. A reader waits for a line that is still being written (no newline yet).

Why not SQLite: the results folder lives on a filesystem shared with the frontend (often NFS),
where SQLite's locking is unreliable. Appending lines is safe there and the index is small
(about 80 bytes per face, so 30 000 faces are 2.4 MB) while the records themselves (the latent:
512 floats for a real model, thousands for w+) stay on disk. A missing or damaged index is
rebuilt by scanning every ``records.jsonl`` under the results folder, so records are the single
source of truth.

Records are parsed without their latent where the latent is not needed (:func:`record_head`):
it is most of a line's bytes, and it is cut out wherever it sits in the line, so nothing here
depends on the order in which a writer put the keys.
"""
from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from models.records import FaceRecord

log = logging.getLogger(__name__)

INDEX_NAME = "faces.index"
RECORDS_NAME = "records.jsonl"
FACE_ID = re.compile(r"^[0-9a-f]{32}$")

_LATENT_KEY = b'"latent": '

# -- index lines ------------------------------------------------------------------------------

def index_line(face_id: str, rel: str, offset: int) -> str:
    """One ``faces.index`` line (with its newline)."""
    return f"{face_id}\t{rel}\t{offset}\n"


def parse_index_line(line: str) -> tuple[str, str, int] | None:
    """``(face id, records file, offset)`` of one index line (without its newline), or None
    for a damaged one."""
    parts = line.split("\t")
    if len(parts) == 3 and FACE_ID.match(parts[0]) and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    return None


@dataclass
class FaceIndex:
    """One results folder's index: face ids in the order they were first indexed, and where
    each one's record line is. ``size``, ``mtime`` and ``inode`` describe the part of
    ``faces.index`` read so far, so that :func:`read_index` can read only an appended tail."""

    order: list[str] = field(default_factory=list)
    where: dict[str, tuple[str, int]] = field(default_factory=dict)
    size: int = 0            # bytes of complete lines read
    mtime: int = -1
    inode: int = -1
    damaged: int = 0         # complete lines that are not index lines
    torn: bool = False       # the file ends in a line without its newline
    scanned: bool = False    # there was no faces.index: built by scanning the records

    def __contains__(self, face_id: object) -> bool:
        return face_id in self.where

    def __len__(self) -> int:
        return len(self.where)

    def add(self, face_id: str, rel: str, offset: int) -> None:
        """Record where ``face_id`` is now (a later entry replaces an earlier one)."""
        if face_id not in self.where:
            self.order.append(face_id)
        self.where[face_id] = (rel, offset)

    def copy(self) -> "FaceIndex":
        """A copy that can be extended without changing this one."""
        return FaceIndex(list(self.order), dict(self.where), self.size, self.mtime, self.inode,
                         self.damaged, self.torn, self.scanned)


def read_index(root: str | os.PathLike, previous: FaceIndex | None = None) -> FaceIndex:
    """The face index of results folder ``root``.

    With ``previous`` (an earlier answer for the same folder) only what was appended since is
    read; ``previous`` itself is returned when nothing changed, and never modified. A shorter
    or replaced (rebuilt) file is read afresh. Without ``faces.index`` (no backend has indexed
    yet) every ``records.jsonl`` is scanned, as the backend does when it rebuilds the index."""
    root = Path(root)
    path = root / INDEX_NAME
    try:
        st = path.stat()
    except OSError:
        return scan_records(root)
    if previous is not None and not previous.scanned and previous.inode == st.st_ino \
            and (previous.size, previous.mtime) == (st.st_size, st.st_mtime_ns):
        return previous
    if previous is None or previous.scanned or previous.inode != st.st_ino \
            or st.st_size < previous.size:
        index, start = FaceIndex(inode=st.st_ino), 0
    else:
        index, start = previous.copy(), previous.size
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(max(0, st.st_size - start))
    complete = data[:data.rfind(b"\n") + 1]
    for raw in complete.split(b"\n")[:-1]:
        entry = parse_index_line(raw.decode("utf-8", "replace"))
        if entry is None:
            index.damaged += 1
        else:
            index.add(*entry)
    index.size = start + len(complete)
    index.torn = len(complete) < len(data)
    index.mtime = st.st_mtime_ns
    return index


def scan_records(root: str | os.PathLike) -> FaceIndex:
    """An index built from every ``records.jsonl`` under ``root`` (files in sorted order)."""
    root = Path(root)
    index = FaceIndex(scanned=True)
    if not root.is_dir():
        return index
    for path in sorted(root.rglob(RECORDS_NAME)):
        rel = path.relative_to(root).as_posix()
        with open(path, "rb") as fh:
            for offset, line in complete_lines(fh):
                face_id = line_id(line)
                if face_id is not None:
                    index.add(face_id, rel, offset)
    return index


# -- records lines ----------------------------------------------------------------------------

def complete_lines(fh: BinaryIO, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` of every complete line of a file opened in binary mode, from byte
    ``start``; stops before a last line without its newline (one still being written)."""
    fh.seek(start)
    offset = start
    for line in fh:
        if not line.endswith(b"\n"):
            return
        yield offset, line
        offset += len(line)


def record_head(line: bytes) -> dict | None:
    """A records line parsed without its latent (the result has no ``latent`` key), or None
    for a line that is not a JSON object with a string ``id``.

    The latent — a list of numbers, most of the line — is cut out before parsing wherever it
    is; if what was cut was not the record's own latent (a nested key of that name), the line
    is parsed in full."""
    data = None
    span = _latent_span(line)
    if span is not None:
        try:
            data = json.loads(line[:span[0]] + b"null" + line[span[1]:])
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("latent", 0) is not None:
            data = None
    if data is None:
        try:
            data = json.loads(line)
        except ValueError:
            return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    data.pop("latent", None)
    return data


def _latent_span(line: bytes) -> tuple[int, int] | None:
    """Where the first ``"latent": [...]`` value of a line is, found with byte searches only.

    A list of numbers holds no quote, so it ends at the last "]" before the next quote (the
    next key) or before the object's closing brace. A quote inside a JSON string is escaped, so
    only a key can match; a nested key of that name, or a list that is not all numbers, gives a
    cut that :func:`record_head` detects (invalid JSON, or a top-level latent left)."""
    key = line.find(_LATENT_KEY)
    if key < 0:
        return None
    start = key + len(_LATENT_KEY)
    if line[start:start + 1] != b"[":
        return None
    stop = line.find(b'"', start)
    if stop < 0:
        stop = line.rfind(b"}")
    end = line.rfind(b"]", start, stop) + 1
    return (start, end) if end > start else None


def line_id(line: bytes) -> str | None:
    """The face id of a records line, or None when the line is not a face record."""
    data = record_head(line)
    face_id = data.get("id") if data is not None else None
    return face_id if isinstance(face_id, str) and FACE_ID.match(face_id) else None


def inside(root: Path, rel: str) -> bool:
    """Whether ``root/rel`` (symbolic links resolved) stays inside ``root``."""
    return (Path(root) / rel).resolve().is_relative_to(Path(root).resolve())


def read_line(root: str | os.PathLike, rel: str, offset: int) -> bytes | None:
    """The line at byte ``offset`` of records file ``root/rel``; None when the file is
    outside ``root`` or cannot be read."""
    root = Path(root)
    if not inside(root, rel):
        return None
    try:
        with open(root / rel, "rb") as fh:
            fh.seek(offset)
            return fh.readline()
    except OSError:
        return None


def image_path(rel: str, image: object) -> str | None:
    """A record's ``image`` (relative to its records file ``rel``) relative to the results
    folder; None when there is none or it would lead outside the folder."""
    if not isinstance(image, str) or not image:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(rel), image))
    if path.startswith(("/", "../")) or path == "..":
        return None
    return path


def read_record(root: str | os.PathLike, index: FaceIndex, face_id: str,
                latent: bool = True) -> dict | None:
    """The record of ``face_id`` as JSON (without the latent unless ``latent``), ``image``
    made relative to the results folder; None if it is not indexed or cannot be read."""
    entry = index.where.get(face_id)
    if entry is None:
        return None
    return record_at(root, entry[0], entry[1], face_id, latent)


def record_at(root: str | os.PathLike, rel: str, offset: int, face_id: str,
              latent: bool = True) -> dict | None:
    """The record of ``face_id`` on the line at ``offset`` of ``root/rel`` (see
    :func:`read_record`); None if that line is not this face's record."""
    line = read_line(root, rel, offset)
    if not line:
        return None
    if latent:
        try:
            data = json.loads(line)
        except ValueError:
            return None
    else:
        data = record_head(line)
    if not isinstance(data, dict) or data.get("id") != face_id:
        return None
    if data.get("image"):
        data["image"] = image_path(rel, data["image"])
    return data


# -- the writer -------------------------------------------------------------------------------

class FaceStore:
    """A session's face store, read and written: every face any task of the session made,
    looked up by id. The backend's; only one may write a results folder at a time."""

    def __init__(self, results_dir: str | os.PathLike) -> None:
        self.root = Path(results_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._index = FaceIndex()
        self._load()

    # -- reading ------------------------------------------------------------------------------

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def get(self, face_id: str) -> FaceRecord | None:
        """The record of ``face_id``, or None if this session never made it."""
        entry = self._index.where.get(face_id)
        if entry is None:
            return None
        rel, offset = entry
        line = read_line(self.root, rel, offset)
        try:
            if not line:
                raise OSError("no such line")
            record = FaceRecord.from_dict(json.loads(line))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("face %s: its record in %s at %d cannot be read (%s)", face_id, rel,
                        offset, exc)
            return None
        return record if record.id == face_id else None

    def folder_of(self, face_id: str) -> Path | None:
        """The folder holding the face's records file (its ``image`` is relative to it)."""
        entry = self._index.where.get(face_id)
        return (self.root / entry[0]).parent if entry else None

    def relative_image(self, face_id: str, record: FaceRecord) -> str | None:
        """The record's image relative to the results folder."""
        entry = self._index.where.get(face_id)
        return image_path(entry[0], record.image) if entry else None

    # -- writing ------------------------------------------------------------------------------

    def append(self, folder: str | os.PathLike, records: Iterable[FaceRecord]) -> None:
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
        end = start
        with open(path, "rb") as fh:
            for offset, line in complete_lines(fh, start):
                face_id = line_id(line)
                if face_id is not None and self._index.where.get(face_id) != (rel, offset):
                    self._index.add(face_id, rel, offset)
                    lines.append(index_line(face_id, rel, offset))
                end = offset + len(line)
        if lines:
            with open(self.root / INDEX_NAME, "a", encoding="utf-8") as idx:
                idx.writelines(lines)
        return end

    # -- start-up -----------------------------------------------------------------------------

    def _load(self) -> None:
        path = self.root / INDEX_NAME
        if path.exists():
            index = read_index(self.root)
            if not index.scanned and not index.damaged and not index.torn:
                self._index = index
                return
            log.warning("%s has %d damaged line(s)%s; rebuilding it from the records", path,
                        index.damaged, " and a torn last line" if index.torn else "")
        self._rebuild()

    def _rebuild(self) -> None:
        self._index = scan_records(self.root)
        tmp = self.root / (INDEX_NAME + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            for face_id in self._index.order:
                out.write(index_line(face_id, *self._index.where[face_id]))
        os.replace(tmp, self.root / INDEX_NAME)
        self._index.scanned = False
        if self._index:
            log.info("face store: indexed %d faces under %s", len(self._index), self.root)
