"""``fillers``: a page of faces that resemble a suspect (a photo or any face of the session).

Likeness is measured against the suspect's *photo* when the suspect is a photo or a face made
from one (its record keeps the photo's identity); ``identity_distances`` are those distances,
``identity_distances_reconstruction`` the distances to the suspect's reconstruction.

Parameters: ``suspect_face_id`` or ``suspect_photo`` (required); ``page`` (0–99; later pages
sample a wider ball and are less similar); ``per_page`` (1–60, default 24); ``radius`` (0–100
standard deviations of W's PCA axes; default: the bundle's calibrated page-1 radius, or 6);
``radius_growth`` (0–10, default 0.5);
``near_clone_threshold`` (0–2 identity distance, default 0.4); ``styles`` (``all`` or any of
coarse, middle, fine); ``seed`` (page sampler seed, default 0); ``traits`` (what every filler
shares with the suspect: ``auto``, the default, matches gender, ethnicity, age group (the read
decade and its likelier neighbour), hair colour ± one shade, beard and glasses as the bundle
reads the suspect's photo, see
``models.filler_traits``; ``none``; or an
object of trait → ``auto`` | ``any`` | a value, see ``models.filler_traits``); photo
inversion: ``steps``, ``face_index``, ``align``. Needs a bundle with a PCA part
(``ligan bundle fit-pca``).
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks._sources import face_or_photo, inversion_params, resolve, save_images
from backend_server.validation import Params, Unprocessable
from models.attributes.model import ATTRIBUTES_PART
from models.filler_traits import parse_trait_request, suspect_reading, trait_match
from models.fillers import NEAR_CLONE_THRESHOLD, filler_page, render
from models.inversion import record_photo_identity
from models.latent import PCA_PART, LatentPCA
from models.research import style_layer_range


def filler_params(params: Params, env: TaskEnv) -> dict:
    """The page-sampling parameters, shared with ``refine``."""
    if not env.bundle.has_part(PCA_PART):
        raise Unprocessable("this backend's bundle has no PCA part, which fillers sample in; "
                            "an operator adds it with 'ligan bundle fit-pca'")
    styles = params.string("styles", default="all", what="all or any of coarse, middle, fine")
    try:
        layers = None if styles == "all" else style_layer_range(env.bundle, styles)
    except ValueError as exc:
        raise Unprocessable(f"params.styles: {exc}") from None
    traits = params.parsed("traits", parse_trait_request)
    fixed = [t for t, v in (traits or {}).items() if v not in ("auto", "any")]
    if fixed and not env.bundle.has_part(ATTRIBUTES_PART):
        raise Unprocessable(f"params.traits: this backend's bundle has no attribute model to "
                            f"read {', '.join(fixed)} with; use auto or none")
    return {"page": params.integer("page", minimum=0, maximum=99, default=0),
            "per_page": params.integer("per_page", minimum=1, maximum=60, default=24),
            "radius": params.number("radius", minimum=0.0, maximum=100.0, default=None),
            "radius_growth": params.number("radius_growth", minimum=0.0, maximum=10.0,
                                           default=0.5),
            "near_clone_threshold": params.number("near_clone_threshold", minimum=0.0,
                                                  maximum=2.0, default=NEAR_CLONE_THRESHOLD),
            "styles": styles, "layers": layers, "traits": traits,
            "seed": params.integer("seed", minimum=0, maximum=2 ** 31 - 1, default=0)}


def make_page(ctx, bundle, center, suspect,
              progress: tuple[float, str] | None = None) -> None:
    """Render, rank and save one page around ``center`` (w+) with ``bundle``; ``progress``:
    the task's percent and message meanwhile."""
    p = ctx.params
    ctx.progress(*(progress or (40, f"sampling and ranking page {p['page'] + 1}")))
    traits = None
    if p["traits"] is not None:
        reading = suspect_reading(bundle, suspect, render(bundle.generator, center[None])[0])
        traits = trait_match(reading, p["traits"])
    page = filler_page(bundle, LatentPCA.from_bundle(bundle), center,
                       reference_embedding=record_photo_identity(suspect), page=p["page"],
                       per_page=p["per_page"], radius=p["radius"],
                       radius_growth=p["radius_growth"],
                       near_clone_threshold=p["near_clone_threshold"], layers=p["layers"],
                       seed=p["seed"], parents=[suspect.id], traits=traits,
                       should_stop=ctx.cancelled)
    ctx.check_cancelled()
    save_images(ctx, page.records, page.images, f"page{p['page'] + 1:02d}")
    ctx.annotate(page=p["page"], radius=page.radius, candidates=page.candidates,
                 near_clones=page.near_clones, undetected=page.undetected,
                 identity_reference=page.reference, identity_measure=page.measure,
                 reconstruction_photo_distance=page.reconstruction_photo_distance,
                 identity_distances=[round(float(d), 4) for d in page.distances],
                 identity_distances_reconstruction=[round(float(d), 4)
                                                    for d in page.reconstruction_distances],
                 traits=page.traits, trait_rejected=page.trait_rejected,
                 trait_rejections=page.trait_rejections)
    if traits is not None and len(page.records) < p["per_page"]:
        ctx.annotate(warnings=[traits.shortfall_warning(len(page.records), p["per_page"],
                                                        page.candidates, page.trait_rejections)])


def validate(params: Params, env: TaskEnv) -> dict:
    return {"suspect": face_or_photo(params, env, "suspect"), **filler_params(params, env),
            **inversion_params(params)}


def run(ctx) -> None:
    center, suspect = resolve(ctx, ctx.params["suspect"], "suspect")
    make_page(ctx, ctx.bundle, center, suspect)


TASK = TaskType("fillers", "a page of faces resembling a suspect, most similar first",
                validate, run)
