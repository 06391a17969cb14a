"""``interpolate``: faces between two faces (or photos), linear in w+, ends included.

Parameters: ``a_face_id`` / ``a_photo`` and ``b_face_id`` / ``b_photo`` (required); ``count``
(2–100 faces, default 8); photo inversion: ``steps``, ``face_index``, ``align``.
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import face_or_photo, inversion_params, resolve, save_images
from backend_server.validation import Params
from models.fillers import render
from models.latent import interpolate_ws
from models.records import face_record, latent_to_list


def validate(params: Params, env: TaskEnv) -> dict:
    return {"a": face_or_photo(params, env, "a"), "b": face_or_photo(params, env, "b"),
            "count": params.integer("count", minimum=2, maximum=100, default=8),
            **inversion_params(params)}


def run(ctx) -> None:
    p = ctx.params
    ws_a, rec_a = resolve(ctx, p["a"], "a")
    ws_b, rec_b = resolve(ctx, p["b"], "b", (30, 60))
    ctx.check_cancelled()
    ctx.progress(70, "rendering")
    ws, ts = interpolate_ws(ws_a, ws_b, p["count"])
    records = [face_record(ctx.bundle, latent_space="w+", latent=latent_to_list(w),
                          operation="interpolate",
                          parameters={"t": float(t), "index": i, "count": p["count"]},
                          parents=[rec_a.id, rec_b.id])
               for i, (w, t) in enumerate(zip(ws, ts))]
    save_images(ctx, records, render(ctx.bundle.generator, ws), "step")


TASK = TaskType("interpolate", "faces between two faces or photos", validate, run)
