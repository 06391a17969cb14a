"""The Research area's API (``/web/research/...``): the user's gallery of faces and research tasks.

The gallery reads the backend's face store read-only, through ``models.facestore`` (the
format's one reader and writer) and ``frontend_server.faces`` (the cached index). Nothing here
writes to the results folder, so a running backend is never disturbed.

Speed with thousands of faces: the index is parsed once and then only its appended tail is
read (cached by size and mtime); a listing that only pages or searches by id prefix touches the
records of the page's faces alone. Filtering by operation or attributes needs every record's
small part, so each ``records.jsonl`` is summarised once (again incrementally as it grows):
the latent — most of a line's bytes — is cut out of the line before JSON parsing.

``POST /web/research/tasks`` is ``work.post_task`` (one implementation for both task URLs).
"""
from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from flask import Blueprint, jsonify, request, send_from_directory

from frontend_server.context import current_user, frontend, login_required
from frontend_server.daemon import session_id
from frontend_server.errors import ApiError
from frontend_server.faces import clear_cache as clear_index_cache
from frontend_server.faces import read_index
from models import facestore
from models.attributes.filter import FilterError, FilterSpec, matches, parse_filter
from models.facestore import FACE_ID, FaceIndex

bp = Blueprint("research", __name__, url_prefix="/web/research")
WEB_UI = Path(__file__).resolve().parent.parent / "web_ui"


def _research_page():
    """The Research area's page (its JS redirects to /login when logged out)."""
    return send_from_directory(WEB_UI, "research.html")


# The page lives at /research, beside / and /admin, but is registered with this blueprint so
# that the app needs only the blueprint.
bp.record_once(lambda state: state.app.add_url_rule("/research", "research_page",
                                                      _research_page))

HEX_PREFIX = re.compile(r"^[0-9a-f]{1,32}$")
MAX_PER_PAGE = 200
#: Operations the gallery's operation filter offers (any other value is accepted too).
OPERATIONS = ("generate", "face", "transition", "style_mix", "generate_matching",
              "attribute_edit", "fillers", "interpolate", "invert")


# -- reading the face store ------------------------------------------------------------------
# The format is models.facestore's; the index is frontend_server.faces' cached view of it.

@dataclass
class _Summaries:
    """The small part of every record of one ``records.jsonl`` (by byte offset)."""

    size: int = -1
    mtime: int = -1
    end: int = 0
    by_offset: dict[int, dict] = field(default_factory=dict)


_lock = threading.Lock()
_summaries: "OrderedDict[Path, _Summaries]" = OrderedDict()
_MAX_SUMMARY_FILES = 256


def _summary(data: dict, rel: str) -> dict:
    """What the gallery shows and filters on, from a record without its latent."""
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    attributes = params.get("attributes")
    labels = None
    if isinstance(attributes, dict):
        labels = {k: v.get("label") for k, v in attributes.items() if isinstance(v, dict)}
    return {
        "id": data["id"],
        "image": facestore.image_path(rel, data.get("image")),
        "operation": data.get("operation"),
        "parents": [p for p in data.get("parents") or [] if isinstance(p, str)],
        "created": data.get("created"),
        "truncation_psi": data.get("truncation_psi"),
        "bundle_hash": data.get("bundle_hash"),
        "attributes": labels,
    }


def _file_summaries(root: Path, rel: str) -> dict[int, dict]:
    """Summaries of every complete line of ``root/rel`` by offset (cached, read incrementally)."""
    path = (root / rel)
    try:
        st = path.stat()
    except OSError:
        return {}
    with _lock:
        cached = _summaries.get(path)
        if cached and (cached.size, cached.mtime) == (st.st_size, st.st_mtime_ns):
            _summaries.move_to_end(path)
            return cached.by_offset
        if cached is None or st.st_size < cached.end:
            cached = _Summaries()
        else:
            cached = _Summaries(cached.size, cached.mtime, cached.end, dict(cached.by_offset))
        end = cached.end
        with open(path, "rb") as fh:
            for offset, line in facestore.complete_lines(fh, cached.end):
                data = facestore.record_head(line)
                if data is not None:
                    cached.by_offset[offset] = _summary(data, rel)
                end = offset + len(line)
        cached.end, cached.size, cached.mtime = end, st.st_size, st.st_mtime_ns
        _summaries[path] = cached
        _summaries.move_to_end(path)
        while len(_summaries) > _MAX_SUMMARY_FILES:
            _summaries.popitem(last=False)
        return cached.by_offset


def face_summary(root: Path, index: FaceIndex, face_id: str) -> dict | None:
    """One face's summary, read from its own line only (no cache needed for a page)."""
    entry = index.where.get(face_id)
    if entry is None:
        return None
    rel, offset = entry
    cached = _summaries.get(root / rel)
    if cached is not None and offset in cached.by_offset and facestore.inside(root, rel):
        return cached.by_offset[offset]
    line = facestore.read_line(root, rel, offset)
    data = facestore.record_head(line) if line else None
    if data is None or data.get("id") != face_id:
        return None
    return _summary(data, rel)


def full_record(root: Path, index: FaceIndex, face_id: str, latent: bool = False) -> dict | None:
    """The face's whole record (``image`` relative to the results folder)."""
    return facestore.read_record(root, index, face_id, latent=latent)


def all_summaries(root: Path, index: FaceIndex) -> list[dict]:
    """Every indexed face's summary, newest first."""
    files: dict[str, dict[int, dict]] = {}
    out = []
    for fid in reversed(index.order):
        rel, offset = index.where[fid]
        if rel not in files:
            files[rel] = _file_summaries(root, rel) if facestore.inside(root, rel) else {}
        summary = files[rel].get(offset)
        if summary is not None and summary["id"] == fid:
            out.append(summary)
    return out


def attribute_match(summary: dict, spec: FilterSpec) -> bool:
    """Whether a face's stored predictions meet the filter; no predictions: no match."""
    labels = summary.get("attributes")
    if not labels:
        return False
    try:
        return matches({k: {"label": v} for k, v in labels.items()}, spec)
    except (ValueError, KeyError, TypeError):
        return False     # e.g. a head-pose filter on faces predicted without head pose


# -- the API --------------------------------------------------------------------------------

def _root() -> Path:
    return frontend().results_dir(current_user()).resolve()


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number from {lo} to {hi}.") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be from {lo} to {hi}, not {value}.")
    return value


def _item(summary: dict) -> dict:
    return {
        "id": summary["id"],
        "image": f"/web/files/{summary['image']}" if summary.get("image") else None,
        "operation": summary.get("operation"),
        "parents": summary.get("parents", []),
        "created": summary.get("created"),
        "truncation_psi": summary.get("truncation_psi"),
        "attributes": summary.get("attributes"),
    }


@bp.get("/faces")
@login_required
def list_faces():
    """``page`` (1-based), ``per_page`` (1–200, 24), ``q`` (id prefix), ``operation``,
    ``where`` (an attribute filter such as "men, 40-49, beard, no glasses"): the user's faces,
    newest first."""
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", 24, 1, MAX_PER_PAGE)
    q = request.args.get("q", "").strip().lower()
    operation = request.args.get("operation", "").strip()
    where = request.args.get("where", "").strip()
    if q and not HEX_PREFIX.match(q):
        raise ApiError(400, "Search by the start of a face id: up to 32 characters 0-9 and a-f.")
    spec = None
    if where:
        try:
            spec = parse_filter(where)
        except FilterError as exc:
            raise ApiError(400, f"Attribute filter: {exc}.") from None
    root = _root()
    index = read_index(root)
    if operation or spec is not None:
        faces = all_summaries(root, index)
        if q:
            faces = [f for f in faces if f["id"].startswith(q)]
        if operation:
            faces = [f for f in faces if f.get("operation") == operation]
        if spec is not None:
            faces = [f for f in faces if attribute_match(f, spec)]
        total = len(faces)
        chosen = faces[(page - 1) * per_page: page * per_page]
    else:
        ids = [fid for fid in reversed(index.order) if fid.startswith(q)] if q \
            else index.order[::-1]
        total = len(ids)
        chosen = [s for s in (face_summary(root, index, fid)
                              for fid in ids[(page - 1) * per_page: page * per_page]) if s]
    return jsonify(faces=[_item(s) for s in chosen], total=total, page=page,
                   per_page=per_page, pages=max(1, math.ceil(total / per_page)),
                   all_faces=len(index.order),
                   filter=spec.describe() if spec is not None else None)


@bp.get("/faces/<face_id>")
@login_required
def get_face(face_id: str):
    """A face's record (``?latent=1`` includes the latent), its parents and its children."""
    root = _root()
    index = read_index(root)
    if not FACE_ID.match(face_id) or face_id not in index.where:
        raise ApiError(404, f"You have no face {face_id}.")
    record = full_record(root, index, face_id, latent=request.args.get("latent") == "1")
    if record is None:
        raise ApiError(404, f"The record of face {face_id} cannot be read.")
    parents = [_item(s) for s in (face_summary(root, index, p)
                                  for p in record.get("parents") or [] if isinstance(p, str))
               if s]
    children = [_item(s) for s in all_summaries(root, index) if face_id in s["parents"]]
    summary = face_summary(root, index, face_id) or {}
    return jsonify(face=_item(summary) if summary else None, record=record, parents=parents,
                   children=children[:200], children_total=len(children))


@bp.get("/capabilities")
@login_required
def capabilities():
    """Whether the session's model has an attribute model: ``attributes`` true, false or null
    (not known yet), and a sentence saying why."""
    try:
        status, session = frontend().daemon.session(session_id(current_user()["id"]))
    except ApiError:                 # no daemon now: decide from what is on disk
        status, session = 503, {}
    backend = (session or {}).get("backend") if status == 200 else None
    bundle_hash = backend.get("bundle_hash") if isinstance(backend, dict) else None
    return jsonify(attribute_capability(_root(), bundle_hash))


def attribute_capability(root: Path, bundle_hash: str | None) -> dict:
    """Decide from the configured bundle's manifest (when it is the session's model) or else
    from the newest random faces of the session's model (they carry predictions exactly when
    the model has an attribute model)."""
    manifest = _manifest()
    if manifest is not None and (bundle_hash is None or manifest[0] == bundle_hash):
        has = "attributes" in manifest[1]
        return {"attributes": has, "reason": "" if has else NO_MODEL}
    index = read_index(root)
    for fid in reversed(index.order[-300:]):      # the newest faces suffice; lines are big
        s = face_summary(root, index, fid)
        if s is None or s.get("operation") not in ("generate", "generate_matching"):
            continue
        if bundle_hash and s.get("bundle_hash") != bundle_hash:
            continue
        has = s.get("attributes") is not None
        return {"attributes": has, "reason": "" if has else NO_MODEL}
    return {"attributes": None,
            "reason": "Not known yet whether this model has an attribute model: make some "
                      "random faces first (they carry attribute predictions when it has one)."}


NO_MODEL = ("This model has no attribute model, so attribute filters and edits are not "
            "available. An operator adds one with 'ligan train attributes'.")
_manifest_cache: dict[str, tuple[int, tuple[str, set[str]] | None]] = {}


def _manifest() -> tuple[str, set[str]] | None:
    """(bundle hash, part names) of the configured bundle, or None when it is not here."""
    from models.bundle import manifest_hash, read_manifest

    path = Path(frontend().settings.bundle) / "manifest.json"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _manifest_cache.get(str(path))
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        manifest = read_manifest(path.parent)
        value = (manifest_hash(manifest), set(manifest["parts"]))
    except Exception:  # noqa: BLE001 — an unreadable bundle simply tells us nothing
        value = None
    _manifest_cache[str(path)] = (mtime, value)
    return value


@bp.get("/operations")
@login_required
def operations():
    """The operations the gallery's filter offers."""
    return jsonify(operations=list(OPERATIONS))


def clear_caches() -> None:
    """Forget every cached index and summary (tests)."""
    clear_index_cache()
    with _lock:
        _summaries.clear()
    _manifest_cache.clear()

