"""``transition``: faces from face A toward face B in W.

Parameters: ``start_face_id`` or ``start_photo`` (required); ``end_face_id`` or ``end_photo``
(default: a new random face, its seed ``seed`` recorded); ``distance`` (0–1, how far toward B
to stop, default 1); ``amount`` (1–1000 faces, default 8); photo inversion: ``steps``,
``face_index``, ``align``. Every frame is a face record that can start another transition.
"""
from __future__ import annotations

import secrets

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import face_or_photo, inversion_params, resolve, save_images
from backend_server.validation import Params
from models.generate import seed_record
from models.research import transition


def validate(params: Params, env: TaskEnv) -> dict:
    out = {"start": face_or_photo(params, env, "start"),
           "end": face_or_photo(params, env, "end", required=False),
           "distance": params.number("distance", minimum=0.0, maximum=1.0, default=1.0,
                                     hint=" (0 = stay at A, 1 = reach B)"),
           "amount": params.integer("amount", minimum=1, maximum=1000, default=8),
           "seed": params.integer("seed", minimum=0, maximum=2 ** 31 - 1),
           **inversion_params(params)}
    if out["end"] is None and out["seed"] is None:
        out["seed"] = secrets.randbelow(2 ** 31)
    return out


def run(ctx) -> None:
    p = ctx.params
    _, start = resolve(ctx, p["start"], "start")
    if p["end"] is None:
        end = seed_record(ctx.bundle, p["seed"])
        ctx.save_faces([end], ctx.task_dir())
    else:
        _, end = resolve(ctx, p["end"], "end", (30, 60))
    ctx.check_cancelled()
    ctx.progress(70, "rendering the transition")
    records, images = transition(ctx.bundle, start, end, p["distance"], p["amount"])
    save_images(ctx, records, images, "frame")


TASK = TaskType("transition", "faces from one face toward another in W", validate, run)
