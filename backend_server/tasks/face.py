"""``face``: re-render a face record of this session, optionally at another truncation ψ.

Parameters: ``face_id`` (the id of any face a task of this session made, required);
``truncation_psi`` (−2 – 2; default: the face's own). z faces are mapped again at the new ψ;
w/w+ faces are first brought back to ψ = 1 with the ψ they were made at (see
``models.research.at_truncation``), which a face made at ψ 0 — the average face — cannot.

The result is a new face record (operation ``face``, parent: the source face) and its PNG in
``tasks/<task id>/``. With the face's own ψ the image is bit-identical to the original.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import session_face
from backend_server.validation import Params, Unprocessable
from models.generate import render_record
from models.images import save_png
from models.records import new_face_id
from models.research import at_truncation


def validate(params: Params, env: TaskEnv) -> dict:
    face_id = session_face(params, env, "face_id")
    psi = params.number("truncation_psi", minimum=-2.0, maximum=2.0,
                        hint=" (1 = no truncation, 0.7 typical)")
    record = env.faces.get(face_id)
    if (psi is not None and psi != record.truncation_psi and record.latent_space != "z"
            and record.truncation_psi == 0):
        raise Unprocessable(f"face {face_id} was made at psi 0 (the average face), so it has no "
                            f"identity left to re-truncate; leave truncation_psi out to "
                            f"re-render it as it is")
    return {"face_id": face_id,
            "truncation_psi": record.truncation_psi if psi is None else psi}


def run(ctx) -> None:
    face_id = ctx.params["face_id"]
    source = ctx.faces.get(face_id)
    if source is None:  # the index said it exists when the task was accepted
        raise ValueError(f"the record of face {face_id} can no longer be read")
    ctx.progress(10, "rendering")
    psi = ctx.params["truncation_psi"]
    new_id = new_face_id()
    if source.latent_space != "z" and psi != source.truncation_psi:
        record, image = at_truncation(ctx.bundle, source, psi)
        record.id = new_id
        record.parameters = {"source": face_id, "truncation_psi": psi}
        record.image = f"face_{new_id}.png"
    else:
        record = dataclasses.replace(
            source, id=new_id, truncation_psi=psi, operation="face",
            parameters={"source": face_id, "truncation_psi": psi},
            parents=[face_id], image=f"face_{new_id}.png",
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        image = render_record(ctx.bundle, record)
    ctx.check_cancelled()
    folder = ctx.task_dir()
    save_png(image, folder / record.image)
    ctx.save_faces([record], folder)
    return None


TASK = TaskType("face", "re-render a face record (optionally at another truncation psi)",
                validate, run)
