"""``attribute_edit``: a face edited along an attribute direction, as a strip of strengths.

Parameters: ``face_id`` (required); ``attribute`` (a direction key of the bundle's attribute
model, e.g. ``smiling`` or ``age_group=40-49``); ``strengths`` (1–21 numbers, each −10 – 10,
in units of the attribute's spread in W; default −3 … 3); ``styles`` (``all`` or any of coarse,
middle, fine: edit only those layers to keep identity and framing). Needs a bundle with an
attribute model and fitted directions.
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import save_images, session_face
from backend_server.validation import Params, Unprocessable
from models.research import style_layer_range


def validate(params: Params, env: TaskEnv) -> dict:
    from models.attributes.directions import Directions

    if not env.bundle.has_part("attributes"):
        raise Unprocessable("this backend's bundle has no attribute model; an operator adds one "
                            "with 'ligan train attributes'")
    face_id = session_face(params, env, "face_id")
    attribute = params.string("attribute", required=True, what="an attribute direction")
    try:
        Directions.from_bundle(env.bundle).get(attribute)
    except (KeyError, ValueError) as exc:
        raise Unprocessable(f"params.attribute: {exc}") from None
    strengths = params.number_list("strengths", minimum=-10.0, maximum=10.0, min_items=1,
                                   max_items=21, default=[-3.0, -1.5, 0.0, 1.5, 3.0])
    styles = params.string("styles", default="all", what="all or any of coarse, middle, fine")
    try:
        layers = None if styles == "all" else style_layer_range(env.bundle, styles)
    except ValueError as exc:
        raise Unprocessable(f"params.styles: {exc}") from None
    return {"face_id": face_id, "attribute": attribute, "strengths": strengths,
            "styles": styles, "layers": layers}


def run(ctx) -> None:
    from models.attributes.records import edit_strip

    p = ctx.params
    record = ctx.faces.get(p["face_id"])
    if record is None:
        raise ValueError(f"the record of face {p['face_id']} can no longer be read")
    ctx.progress(10, f"editing along {p['attribute']}")
    records, images = edit_strip(ctx.bundle, record, p["attribute"], p["strengths"],
                                 layers=p["layers"])
    ctx.check_cancelled()
    save_images(ctx, records, images, "edit")


TASK = TaskType("attribute_edit", "a face edited along an attribute direction (a strip)",
                validate, run)
