"""``random``: up to 30 000 random faces, streamed to disk in chunks.

Parameters: ``amount`` (1–30 000, required); ``seed`` (the sampler seed, 0 – 2**32−1; drawn at
random and recorded when left out); ``truncation_psi`` (−2 – 2, default 1),
``truncation_cutoff`` (0 – num_ws, default all), ``noise_mode`` (``const``, ``random``,
``none``); ``folder`` (a folder relative to the session's results folder; default
``tasks/<task id>``); ``attributes`` (true/false: keep the attribute model's predictions in
every record, as ``parameters["attributes"]``, so that the gallery can filter them; default:
true when the bundle has an attribute model).

The sampler seed draws one distinct face seed per face (``numpy.random.default_rng(seed)``), and
each face is rendered by ``models.generate`` from its seed, so the same request with the same
sampler seed makes the same faces. Faces are rendered ``chunk_size`` (64) at a time: each chunk's
PNGs and ``records.jsonl`` lines are on disk before the next starts, only the first
``result_faces`` records are kept for the result, so memory does not grow with the amount.
Cancellation and shutdown stop it between batches; what was made stays on disk and in the
result, and can be resumed: a task given the ``folder`` of an earlier one (its result names
it) with the same amount, seed, truncation and noise mode skips the faces already there and
makes the rest. Any other existing, non-empty folder is refused.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np

from backend_server.tasks import TaskEnv, TaskType
from backend_server.validation import Conflict, Params, Unprocessable, results_path
from models.attributes.model import ATTRIBUTES_PART, predict_attributes
from models.generate import generate_from_seeds
from models.records import FaceRecord
from models.stylegan2 import NOISE_MODES

SEED_LIMIT = 2 ** 32


RUN_KEYS = ("amount", "seed", "truncation_psi", "truncation_cutoff", "noise_mode", "attributes")


def validate(params: Params, env: TaskEnv) -> dict:
    num_ws = env.bundle.generator.num_ws
    amount = params.integer("amount", minimum=1, maximum=env.limits.max_random, required=True,
                            hint="; split larger sets into several tasks")
    seed = params.integer("seed", minimum=0, maximum=SEED_LIMIT - 1)
    psi = params.number("truncation_psi", minimum=-2.0, maximum=2.0, default=1.0,
                        hint=" (1 = no truncation, 0.7 typical)")
    cutoff = params.integer("truncation_cutoff", minimum=0, maximum=num_ws)
    noise = params.string("noise_mode", choices=NOISE_MODES, default="const")
    folder = params.string("folder", what="a folder path relative to the session's results "
                                          "folder")
    has_model = env.bundle.has_part(ATTRIBUTES_PART)
    attributes = params.boolean("attributes", default=has_model)
    if attributes and not has_model:
        raise Unprocessable("params.attributes: this backend's bundle has no attribute model "
                            "to predict with; leave it out or set it to false")
    clean = {"amount": amount, "seed": seed, "truncation_psi": psi,
             "truncation_cutoff": cutoff, "noise_mode": noise, "folder": None,
             "attributes": attributes}
    if folder is not None:
        root = env.results_dir.resolve()
        target = results_path(env.results_dir, folder, "folder")
        if target == root:
            raise Conflict("params.folder must name a folder inside the results folder, not "
                           "the results folder itself")
        clean["folder"] = rel = target.relative_to(root).as_posix()
        for type_, other in env.active():
            if type_ == "random" and other.get("folder") == rel:
                raise Conflict(f"another task is writing into folder {rel!r} now; wait for it "
                               f"to end or choose another folder")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            previous = _previous_run(target)
            if previous is None:
                raise Conflict(f"params.folder {folder!r} already holds other files; choose a "
                               f"new folder name (results are never mixed or overwritten)")
            if seed is None:
                clean["seed"] = previous["params"]["seed"]
            if previous.get("bundle_hash") != env.bundle.hash or any(
                    previous["params"].get(k) != clean[k] for k in RUN_KEYS):
                raise Conflict(f"params.folder {folder!r} holds a random task with other "
                               f"settings ({_settings(previous)}); to resume it send the same "
                               f"amount, seed, truncation and noise mode on a backend with the "
                               f"same bundle, or choose a new folder")
    if clean["seed"] is None:
        clean["seed"] = secrets.randbelow(SEED_LIMIT)
    return clean


def _previous_run(folder: Path) -> dict | None:
    """The task.json of an earlier random task in ``folder`` (that can be resumed), or None."""
    try:
        previous = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(previous, dict) or previous.get("type") != "random" or not isinstance(
            previous.get("params"), dict):
        return None
    return previous


def _settings(previous: dict) -> str:
    p = previous["params"]
    return ", ".join(f"{k} {p.get(k)}" for k in RUN_KEYS)


def face_seeds(sampler_seed: int):
    """An endless sequence of distinct face seeds drawn from the sampler seed."""
    rng = np.random.default_rng(sampler_seed)
    used: set[int] = set()
    while True:
        for s in rng.integers(0, SEED_LIMIT, size=256, dtype=np.uint64).tolist():
            if s not in used:
                used.add(s)
                yield int(s)


def run(ctx) -> None:
    p = ctx.params
    amount = p["amount"]
    if p["folder"]:
        folder = ctx.results_dir / p["folder"]
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = ctx.task_dir()
    records_file = folder / "records.jsonl"
    made = _resume(ctx, folder, records_file) if records_file.exists() else 0
    (folder / "task.json").write_text(json.dumps(
        {"task_id": ctx.task_id, "type": "random", "params": p,
         "bundle_hash": ctx.bundle.hash}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ctx.add_files([folder / "task.json"])
    ctx.annotate(seed=p["seed"], folder=ctx.relative(folder),
                 records=ctx.relative(records_file), resumed_at=made)
    offset = records_file.stat().st_size if records_file.exists() else 0
    seeds = face_seeds(p["seed"])
    for _ in range(made):  # the faces an earlier run of this task made
        next(seeds)

    def on_batch(batch) -> None:
        on_batch.count += len(batch)
        ctx.progress(100.0 * on_batch.count / amount,
                     f"{on_batch.count} of {amount} faces")
    on_batch.count = made

    while made < amount:
        ctx.check_cancelled()
        n = min(ctx.limits.chunk_size, amount - made)
        chunk = [next(seeds) for _ in range(n)]
        records = generate_from_seeds(
            ctx.bundle, chunk, folder, truncation_psi=p["truncation_psi"],
            truncation_cutoff=p["truncation_cutoff"], noise_mode=p["noise_mode"],
            batch_size=ctx.limits.batch_size, progress=False, should_stop=ctx.cancelled,
            on_batch=on_batch,
            predict=(lambda images: predict_attributes(ctx.bundle, images))
            if p["attributes"] else None)
        offset = ctx.faces_written(records, folder, records_file, offset)
        made += len(records)
        if len(records) < n:
            ctx.check_cancelled()
    return None


def _resume(ctx, folder: Path, records_file: Path) -> int:
    """Continue an interrupted or cancelled run in the same folder: keep its complete records
    (a torn last line is cut off), count them and put them in this task's result."""
    count = good = 0
    batch = []
    with open(records_file, "rb+") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            good += len(line)
            count += 1
            batch.append(FaceRecord.from_dict(json.loads(line)))
            if len(batch) == 256:
                ctx.add_faces(batch, folder)
                batch = []
        fh.truncate(good)
    ctx.add_faces(batch, folder)
    ctx.faces.index_appended(records_file, 0)  # in case the index missed some
    return count


TASK = TaskType("random", "random faces, streamed to disk in chunks", validate, run)
