"""Shared by the task types that start from faces: a face is either a face record of this
session (``<name>_face_id``) or a photo in the session's results folder (``<name>_photo``,
inverted through the bundle's encoder and/or the projector). Not a task type itself (the
leading underscore keeps it out of discovery)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from backend_server.validation import BadRequest, NotFound, Params, Unprocessable, results_path
from models.facestore import FACE_ID
from models.generate import record_ws
from models.images import save_png
from models.inversion import PHOTO_STEPS
from models.records import write_faces


def session_face(params: Params, env, param: str, required: bool = True):
    """Validate ``params.<param>``: the id of a face of this session made with this bundle.
    Returns the id (None when absent and not required)."""
    face_id = params.string(param, required=required, pattern=FACE_ID,
                            what="a face id (32 hexadecimal digits)")
    if face_id is None:
        return None
    record = env.faces.get(face_id)
    if record is None:
        raise NotFound(f"no face {face_id} in this session; use the id of a face that a task "
                       f"of this session made")
    if record.bundle_hash != env.bundle.hash:
        raise Unprocessable(f"face {face_id} was made with bundle {record.bundle_hash[:12]}, "
                            f"not with this backend's bundle {env.bundle.hash[:12]}")
    return face_id


def face_or_photo(params: Params, env, name: str, required: bool = True) -> dict | None:
    """Validate ``<name>_face_id`` / ``<name>_photo`` (exactly one when ``required``)."""
    photo = params.string(f"{name}_photo", what="a path relative to the results folder")
    if photo and params.raw.get(f"{name}_face_id") is not None:
        raise BadRequest(f"give either params.{name}_face_id or params.{name}_photo, not both")
    face_id = session_face(params, env, f"{name}_face_id", required=False)
    if not face_id and not photo:
        if required:
            raise BadRequest(f"params.{name}_face_id (a face of this session) or "
                             f"params.{name}_photo (an uploaded photo) is required")
        return None
    if face_id:
        return {"face_id": face_id}
    path = results_path(env.results_dir, photo, f"{name}_photo")
    if not path.is_file():
        raise NotFound(f"params.{name}_photo: no file {photo!r} in the session's results folder")
    return {"photo": photo}


def inversion_params(params: Params) -> dict:
    """How photos are inverted: projector ``steps`` (0 = the encoder alone), ``face_index``
    for photos with several faces, ``align`` (ffhq or padded)."""
    return {"steps": params.integer("steps", minimum=0, maximum=2000, default=PHOTO_STEPS),
            "face_index": params.integer("face_index", minimum=0, maximum=50),
            "align": params.string("align", choices=("ffhq", "padded"), default="ffhq")}


def resolve(ctx, source: dict, label: str, progress_span: tuple[float, float] = (0, 30)):
    """(w+, record) of a validated source; photos are inverted and their reconstruction saved
    as a face record of this task."""
    from models.inversion import invert_photo

    if "face_id" in source:
        record = ctx.faces.get(source["face_id"])
        if record is None:
            raise ValueError(f"the record of face {source['face_id']} can no longer be read")
        return record_ws(ctx.bundle, record), record
    lo, hi = progress_span
    p = ctx.params
    inv = invert_photo(
        ctx.bundle, str(ctx.results_dir / source["photo"]), face_index=p.get("face_index"),
        align_mode=p.get("align", "ffhq"), steps=p.get("steps", PHOTO_STEPS),
        source_name=source["photo"],
        progress=lambda pct, msg: ctx.progress(lo + (hi - lo) * pct / 100, f"{label}: {msg}"),
        should_stop=ctx.cancelled)
    ctx.check_cancelled()
    folder = ctx.task_dir()
    inv.record.image = f"{label}_{inv.record.id}.png"
    save_png(inv.projection.image, folder / inv.record.image)
    save_png(inv.aligned, folder / f"{label}_aligned.png")
    ctx.add_files([folder / f"{label}_aligned.png"])
    ctx.save_faces([inv.record], folder)
    if inv.warnings:
        ctx.annotate(warnings=list(inv.warnings))
    return np.asarray(inv.record.latent, np.float32), inv.record


def save_images(ctx, records: list, images, prefix: str, folder: Path | None = None) -> None:
    """PNG per record (named after it) and the records, in the task's folder."""
    folder = folder or ctx.task_dir()
    write_faces(records, images, folder, lambda _, rec: f"{prefix}_{rec.id}.png")
    ctx.save_faces(records, folder)
