"""Lineups: saved per user, reopened, exported as composite PNG, ZIP and JSON record."""
from __future__ import annotations

import json
import secrets
import time

from flask import Blueprint, Response, jsonify

from frontend_server import export
from frontend_server import faces as face_records
from frontend_server.accounts import json_body
from frontend_server.context import current_user, frontend, login_required
from frontend_server.errors import ApiError
from frontend_server.simulation import simulate_lineup
from frontend_server.uploads import upload_info
from models.fairness import DEFAULT_LINEUP_SIZE

bp = Blueprint("lineups", __name__, url_prefix="/web/lineups")

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 2, 12, DEFAULT_LINEUP_SIZE
MAX_UI_STATE = 64 * 1024


def validate(body: dict, results_dir, previous: dict | None = None) -> dict:
    """A lineup from the browser's JSON, checked against the user's own uploads and faces."""
    size = body.get("size", DEFAULT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ApiError(422, f"size must be a whole number from {MIN_SIZE} to {MAX_SIZE} "
                            f"(usually 6 or 9), got {size!r}.")
    position = body.get("suspect_position")
    if position is None:
        position = secrets.randbelow(size) + 1   # random by default
    elif isinstance(position, bool) or not isinstance(position, int) \
            or not 1 <= position <= size:
        raise ApiError(422, f"suspect_position must be a number from 1 to {size} (or left out "
                            f"for a random position), got {position!r}.")
    name = body.get("name") or f"Lineup {time.strftime('%Y-%m-%d %H:%M')}"
    notes = body.get("notes") or ""
    if not isinstance(name, str) or len(name) > 200 or not isinstance(notes, str) \
            or len(notes) > 5000:
        raise ApiError(422, "name (up to 200 characters) and notes (up to 5000) must be text.")
    suspect = _suspect(body.get("suspect"), results_dir)
    fillers = body.get("fillers", [])
    if not isinstance(fillers, list):
        raise ApiError(422, "fillers must be a list of face ids.")
    if len(fillers) > size - 1:
        raise ApiError(422, f"A lineup of {size} has room for {size - 1} fillers, got "
                            f"{len(fillers)}; remove some or choose a larger size.")
    chosen = []
    for item in fillers:
        face_id = item.get("face_id") if isinstance(item, dict) else item
        record = face_records.find_record(results_dir, face_id) if isinstance(face_id, str) \
            else None
        if record is None:
            raise ApiError(404, f"No face {face_id!r} in your results.")
        if any(c["face_id"] == face_id for c in chosen):
            raise ApiError(422, "A face may appear only once in a lineup.")
        distance = item.get("distance") if isinstance(item, dict) else None
        chosen.append({"face_id": face_id, "image": record.get("image"),
                       "operation": record.get("operation"),
                       "distance": distance if isinstance(distance, (int, float)) else None})
    ui = body.get("ui", {})
    if not isinstance(ui, dict) or len(json.dumps(ui)) > MAX_UI_STATE:
        raise ApiError(422, "ui must be a JSON object of at most 64 KB.")
    return {"name": name, "notes": notes, "size": size, "suspect_position": position,
            "suspect": suspect, "fillers": chosen, "complete": len(chosen) == size - 1,
            "presentation": export.validate_presentation(body.get("presentation")), "ui": ui}


def _suspect(value, results_dir) -> dict:
    if not isinstance(value, dict):
        raise ApiError(422, "suspect must name the uploaded photo ({\"upload_id\", "
                            "\"face_index\"}) or a face ({\"face_id\"}).")
    if value.get("face_id"):
        record = face_records.find_record(results_dir, str(value["face_id"]))
        if record is None:
            raise ApiError(404, f"No face {value['face_id']!r} in your results.")
        return {"face_id": value["face_id"], "image": record.get("image")}
    info = upload_info(results_dir, str(value.get("upload_id") or ""))
    if info is None:
        raise ApiError(404, "No such uploaded photo for the suspect.")
    index = value.get("face_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < max(1, len(info.get("faces", []))):
        raise ApiError(422, f"face_index must pick one of the {len(info.get('faces', []))} "
                            "faces found in the photo.")
    return {"upload_id": info["upload_id"], "face_index": index, "photo": info["photo"]}


def _own(lineup_id: str) -> dict:
    lineup = frontend().store.lineup(current_user()["id"], lineup_id)
    if lineup is None:
        raise ApiError(404, "No such lineup.")
    return lineup


@bp.get("")
@login_required
def list_lineups():
    items = frontend().store.lineups(current_user()["id"])
    return jsonify(lineups=[{k: l[k] for k in ("id", "name", "size", "complete", "created",
                                                "updated")} for l in items])


@bp.post("")
@login_required
def create():
    user = current_user()
    data = validate(json_body(), frontend().results_dir(user))
    return jsonify(frontend().store.save_lineup(user["id"], data)), 201


@bp.get("/notice")
@login_required
def notice():
    """The configured bundle's research-only notice (null if none), which every lineup page
    shows."""
    return jsonify(notice=bundle_presentation().notice)


@bp.post("/simulation")
@login_required
def simulation():
    """Simulated mock witnesses on the lineup being built (the body of a lineup, unsaved and
    possibly short of fillers, plus ``description`` and ``n``): the live fairness panel."""
    body = json_body()
    results_dir = frontend().results_dir(current_user())
    lineup = validate({**body, "size": MAX_SIZE, "suspect_position": 1}, results_dir)
    return jsonify(simulate_lineup(lineup, results_dir, body.get("description"), body.get("n")))


@bp.get("/<lineup_id>")
@login_required
def get(lineup_id: str):
    return jsonify(_own(lineup_id))


@bp.put("/<lineup_id>")
@login_required
def update(lineup_id: str):
    user = current_user()
    _own(lineup_id)
    data = validate(json_body(), frontend().results_dir(user))
    return jsonify(frontend().store.save_lineup(user["id"], data, lineup_id))


@bp.delete("/<lineup_id>")
@login_required
def delete(lineup_id: str):
    _own(lineup_id)
    frontend().store.delete_lineup(current_user()["id"], lineup_id)
    return jsonify(deleted=lineup_id)


def _positions(lineup: dict) -> tuple[list[dict], export.BundlePresentation]:
    """The lineup's members as shown, and what the bundle says about showing them (its
    manifest read once per request)."""
    shown = bundle_presentation()
    return export.lineup_faces(lineup, frontend().results_dir(current_user()), shown.framing,
                               shown.resolution), shown


def bundle_presentation() -> export.BundlePresentation:
    """What the configured bundle says about showing its faces (``export.bundle_presentation``)."""
    return export.bundle_presentation(frontend().settings.bundle)


def _download(data: bytes, mimetype: str, filename: str) -> Response:
    return Response(data, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@bp.get("/<lineup_id>/composite.png")
@login_required
def composite(lineup_id: str):
    positions, shown = _positions(_own(lineup_id))
    data = export.png_bytes(export.composite(positions, shown.notice))
    return _download(data, "image/png", f"lineup-{lineup_id}.png")


@bp.get("/<lineup_id>/export.zip")
@login_required
def export_zip(lineup_id: str):
    lineup = _own(lineup_id)
    positions, shown = _positions(lineup)
    return _download(export.zip_bytes(lineup, positions, shown.notice), "application/zip",
                     f"lineup-{lineup_id}.zip")


@bp.get("/<lineup_id>/record.json")
@login_required
def record_json(lineup_id: str):
    lineup = _own(lineup_id)
    positions, shown = _positions(lineup)
    return jsonify(export.record(lineup, positions, shown.notice))


@bp.get("/<lineup_id>/report.pdf")
@login_required
def report_pdf(lineup_id: str):
    """The printable report for the case file (``frontend_server.report``)."""
    from frontend_server.report import lineup_report, report_filename

    lineup = _own(lineup_id)
    ctx = frontend()
    data = lineup_report(ctx.store, ctx.settings.results_root, ctx.settings.bundle,
                         current_user()["id"], lineup)
    return _download(data, "application/pdf", report_filename(lineup))


@bp.get("/<lineup_id>/parity")
@login_required
def parity(lineup_id: str):
    """The presentation-parity check of the lineup as it is shown, with the bundle's
    research-only notice: what the builder warns about before anyone is asked."""
    lineup = _own(lineup_id)
    positions, shown = _positions(lineup)
    return jsonify(parity=export.parity(positions),
                   presentation=export.presentation_options(lineup), notice=shown.notice)
