"""``attribute_filter``: generate faces that match a description ("men, 40-49, beard, no
glasses, not smiling"), sampling along the bundle's attribute directions.

Parameters: ``filter`` (required, the phrases of ``models.attributes.parse_filter``);
``amount`` (1–500); ``max_candidates`` (1–20 000, default 100 × amount); ``guided`` (default
true; false = blind rejection, for comparison); ``truncation_psi``; ``seed``. Needs a bundle
with an attribute model (``ligan train attributes``). The result says how many candidates were
rendered (``candidates``) and which constraints could only be checked by rejection.
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import save_images
from backend_server.validation import Params, Unprocessable


def validate(params: Params, env: TaskEnv) -> dict:
    from models.attributes.filter import FilterError, parse_filter

    if not env.bundle.has_part("attributes"):
        raise Unprocessable("this backend's bundle has no attribute model; an operator adds one "
                            "with 'ligan train attributes'")
    text = params.string("filter", required=True,
                         what='a description such as "men, 40-49, beard, not smiling"')
    try:
        parse_filter(text)
    except FilterError as exc:
        raise Unprocessable(f"params.filter: {exc}") from None
    amount = params.integer("amount", minimum=1, maximum=500, default=8)
    guided = params.boolean("guided", default=True)
    return {"filter": text, "amount": amount,
            "max_candidates": params.integer("max_candidates", minimum=1, maximum=20_000,
                                             default=100 * amount),
            "guided": guided,
            "truncation_psi": params.number("truncation_psi", minimum=-2.0, maximum=2.0,
                                            default=1.0),
            "seed": params.integer("seed", minimum=0, maximum=2 ** 31 - 1, default=0)}


def run(ctx) -> None:
    from models.attributes.filter import generate_matching, parse_filter
    from models.attributes.records import matching_records

    p = ctx.params
    spec = parse_filter(p["filter"])
    ctx.progress(5, f"sampling faces matching: {p['filter']}")
    result = generate_matching(ctx.bundle, spec, p["amount"], guided=p["guided"],
                               max_candidates=p["max_candidates"], psi=p["truncation_psi"],
                               seed=p["seed"])
    ctx.check_cancelled()
    records = matching_records(ctx.bundle, result, spec)
    save_images(ctx, records, result.images, "match")
    ctx.annotate(candidates=result.candidates, accepted=result.accepted,
                 guided=result.guided, unguided_constraints=list(result.unguided),
                 labelled_constraints=list(result.labelled))


TASK = TaskType("attribute_filter", "faces matching an attribute description", validate, run)
