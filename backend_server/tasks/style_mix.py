"""``style_mix``: face A with some of face B's styles.

Parameters: ``target_face_id`` / ``target_photo`` and ``source_face_id`` / ``source_photo``
(required); ``styles``: ``coarse``, ``middle``, ``fine`` (comma-separated) or a w+ range such as
``4-7`` (default ``coarse``); photo inversion: ``steps``, ``face_index``, ``align``.
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import face_or_photo, inversion_params, resolve, save_images
from backend_server.validation import Params, Unprocessable
from models.research import style_layer_range, style_mix


def validate(params: Params, env: TaskEnv) -> dict:
    styles = params.string("styles", default="coarse",
                           what="coarse, middle, fine or a w+ range like 4-7")
    try:
        layers = style_layer_range(env.bundle, styles)
    except ValueError as exc:
        raise Unprocessable(f"params.styles: {exc}") from None
    return {"target": face_or_photo(params, env, "target"),
            "source": face_or_photo(params, env, "source"), "styles": styles, "layers": layers,
            **inversion_params(params)}


def run(ctx) -> None:
    p = ctx.params
    _, target = resolve(ctx, p["target"], "target")
    _, source = resolve(ctx, p["source"], "source", (30, 60))
    ctx.check_cancelled()
    record, image = style_mix(ctx.bundle, target, source, p["layers"])
    record.parameters["styles"] = p["styles"]
    save_images(ctx, [record], [image], "mix")


TASK = TaskType("style_mix", "take coarse, middle or fine styles of one face into another",
                validate, run)
