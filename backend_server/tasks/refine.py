"""``refine``: fine-tune private copies of the models on a hard photo, then a page of fillers.

Parameters: ``photo`` (required, in the session's results folder); ``seconds`` (60–600, default
60); ``ratio`` (encoder steps per generator step, default 75); the page parameters of
``fillers``; ``face_index``, ``align``. The refined networks are saved as a bundle in the task's
folder (``refined_bundle/``, result ``refined_bundle`` and ``refined_bundle_hash``); the
fillers' records name that bundle. The backend's own bundle is never modified.
"""
from __future__ import annotations

from backend_server.tasks import TaskEnv, TaskType
from backend_server.tasks.fillers import filler_params, make_page
from backend_server.validation import NotFound, Params, results_path
from models.bundle import load_bundle
from models.images import save_png
from models.inversion import align_photo, photo_parameters
from models.records import face_record, latent_to_list
from models.refine import MAX_SECONDS, MIN_SECONDS, refine, save_refined


def validate(params: Params, env: TaskEnv) -> dict:
    photo = params.string("photo", required=True, what="a path relative to the results folder")
    if not results_path(env.results_dir, photo, "photo").is_file():
        raise NotFound(f"params.photo: no file {photo!r} in the session's results folder")
    return {"photo": photo,
            "seconds": params.number("seconds", minimum=MIN_SECONDS, maximum=MAX_SECONDS,
                                     default=60.0),
            "ratio": params.integer("ratio", minimum=1, maximum=1000, default=75),
            "face_index": params.integer("face_index", minimum=0, maximum=50),
            "align": params.string("align", choices=("ffhq", "padded"), default="ffhq"),
            **filler_params(params, env)}


# The task's progress bar: refining takes its time limit (60-600 s), aligning the photo
# before and the page of fillers after take seconds.
REFINING = (1.0, 90.0)


def run(ctx) -> None:
    p = ctx.params
    folder = ctx.task_dir()
    ctx.progress(0, "Finding the face in the photo")
    aligned, warnings = align_photo(str(ctx.results_dir / p["photo"]), ctx.bundle.resolution,
                                    p["face_index"], p["align"], ctx.bundle.framing)
    if warnings:
        ctx.annotate(warnings=warnings)
    lo, hi = REFINING
    result = refine(ctx.bundle, aligned, seconds=p["seconds"], ratio=p["ratio"],
                    progress=lambda pct, msg: ctx.progress(lo + (hi - lo) * pct / 100, msg),
                    should_stop=ctx.cancelled)
    ctx.check_cancelled()
    ctx.progress(hi, "Saving the adapted model")
    digest = save_refined(ctx.bundle, result, folder / "refined_bundle", note=p["photo"])
    refined = load_bundle(folder / "refined_bundle")
    refined.generator.use_precision(ctx.bundle.generator.precision)
    suspect = face_record(refined, latent_space="w+", latent=latent_to_list(result.ws),
                         operation="refine",
                         parameters={"photo": p["photo"], "seconds": round(result.seconds, 1),
                                     "encoder_steps": result.encoder_steps,
                                     "generator_steps": result.generator_steps,
                                     "error_before": result.initial_error,
                                     "error_after": result.final_error,
                                     **photo_parameters(ctx.bundle, aligned)})
    suspect.image = f"suspect_{suspect.id}.png"
    save_png(result.image, folder / suspect.image)
    ctx.save_faces([suspect], folder)
    ctx.annotate(refined_bundle=ctx.relative(folder / "refined_bundle"),
                 refined_bundle_hash=digest)
    make_page(ctx, refined, result.ws, suspect,
              progress=(hi + 2, "Making fillers with the adapted model"))


TASK = TaskType("refine", "fine-tune copies of the models on one photo, then fillers", validate,
                run)
