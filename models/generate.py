"""Faces from seeds: the ``ligan generate`` workflow as a library function.

A seed picks z the way NVIDIA's releases do (``RandomState(seed).randn(z_dim)``), so "seed 42"
means the same face here as in their tools for the same network. Every face is saved as a PNG
with a face record (the z itself, not only the seed) in ``records.jsonl``.
"""
from __future__ import annotations

import getpass
import os
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from models.images import make_grid, save_png, to_uint8
from models.records import FaceRecord, face_record, latent_to_list
from models.stylegan2 import NOISE_MODES

MAX_SEEDS = 100_000
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+))?\s*$")


def parse_seeds(spec: str) -> list[int]:
    """``"0-9,42"`` → [0, …, 9, 42]. Seeds are integers in [0, 2**32); ranges are inclusive."""
    seeds: list[int] = []
    for item in spec.split(","):
        m = _RANGE.match(item)
        if not m:
            raise ValueError(f"bad seed {item.strip()!r}: use integers and ranges like 0-9,42")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"bad seed range {item.strip()!r}: the end is before the start")
        if hi >= 2 ** 32:
            raise ValueError(f"seed {hi} is too large: seeds are below 2**32")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f"too many seeds (more than {MAX_SEEDS}); split the request")
        seeds.extend(range(lo, hi + 1))
    return seeds


def z_from_seed(seed: int, z_dim: int) -> np.ndarray:
    return np.random.RandomState(seed).randn(z_dim).astype(np.float32)


def seed_record(bundle, seed: int) -> FaceRecord:
    """The record (not rendered) of the face that ``seed`` draws from z, with the bundle's
    fixed noise and no truncation: a random face to start from or to move toward."""
    return face_record(bundle, latent_space="z",
                       latent=latent_to_list(z_from_seed(seed, bundle.generator.cfg.z_dim)),
                       operation="generate", parameters={"seed": seed}, noise_seed=seed)


def check_generation_args(truncation_psi: float, truncation_cutoff: int | None, noise_mode: str,
                          num_ws: int) -> None:
    """Reject out-of-range settings with a message that says what to change."""
    if not np.isfinite(truncation_psi) or not -2.0 <= truncation_psi <= 2.0:
        raise ValueError(f"truncation psi must be a number from -2 to 2 (1 = none, 0.7 typical), "
                         f"got {truncation_psi}")
    if truncation_cutoff is not None and not 0 <= truncation_cutoff <= num_ws:
        raise ValueError(f"truncation cutoff must be from 0 to {num_ws} (the number of w+ "
                         f"entries), got {truncation_cutoff}")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")


def generate_from_seeds(bundle, seeds: Iterable[int], outdir: str | os.PathLike, *,
                        truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                        noise_mode: str = "const", batch_size: int = 8, grid: bool = False,
                        grid_cols: int | None = None, grid_zoom: int = 1,
                        owner: str | None = None,
                        progress: bool = True,
                        should_stop: Callable[[], bool] | None = None,
                        on_batch: Callable[[list[FaceRecord]], None] | None = None,
                        predict: Callable[[np.ndarray], list[dict]] | None = None,
                        ) -> list[FaceRecord]:
    """Render one face per seed into ``outdir`` and return their records.

    Writes ``seed<N>.png`` per face, appends one JSON line per face to ``records.jsonl`` as each
    batch finishes (an interrupted run keeps what it made), and ``grid.png`` when asked
    (``grid_cols`` faces a row, enlarged ``grid_zoom`` times).
    ``should_stop`` is asked before each batch; ``on_batch`` is called with each batch's records
    once they are on disk (progress reporting). ``predict`` (e.g. a bundle's attribute model,
    see :func:`models.attributes.predict_attributes`) gets each batch's uint8 images and its
    per-face dicts are kept in the records as ``parameters["attributes"]``, so that a gallery
    can be filtered without rendering the faces again.
    """
    g = bundle.generator
    seeds = list(seeds)
    check_generation_args(truncation_psi, truncation_cutoff, noise_mode, g.num_ws)
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if grid_zoom < 1:
        raise ValueError(f"grid zoom must be at least 1, got {grid_zoom}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    owner = owner if owner is not None else _current_user()
    records: list[FaceRecord] = []
    thumbs: list[np.ndarray] = []
    bar = tqdm(total=len(seeds), unit="face", desc="generate", disable=not progress)
    with open(outdir / "records.jsonl", "a", encoding="utf-8") as log:
        for start in range(0, len(seeds), batch_size):
            if should_stop is not None and should_stop():
                break
            batch = seeds[start:start + batch_size]
            z = np.stack([z_from_seed(s, g.cfg.z_dim) for s in batch])
            ws = g.map_compiled(z, truncation_psi, truncation_cutoff)
            images = to_uint8(g.synthesize(ws, noise_mode, noise_seeds=batch).numpy())
            predictions = predict(images) if predict is not None else [None] * len(batch)
            for seed, zi, img, prediction in zip(batch, z, images, predictions):
                name = f"seed{seed:010d}.png"
                save_png(img, outdir / name)
                rec = face_record(bundle, latent_space="z",
                                 latent=latent_to_list(zi), operation="generate",
                                 parameters={"seed": seed}, noise_mode=noise_mode,
                                 noise_seed=seed % (2 ** 31), truncation_psi=truncation_psi,
                                 truncation_cutoff=truncation_cutoff, owner=owner, image=name)
                if prediction is not None:
                    rec.parameters["attributes"] = prediction
                log.write(rec.to_json() + "\n")
                records.append(rec)
                if grid:
                    thumbs.append(img)
            log.flush()
            bar.update(len(batch))
            if on_batch is not None:
                on_batch(records[-len(batch):])
    bar.close()
    if grid and thumbs:
        save_png(make_grid(np.stack(thumbs), cols=grid_cols, zoom=grid_zoom),
                 outdir / "grid.png")
    return records


def record_ws(bundle, record: FaceRecord) -> np.ndarray:
    """The w+ [num_ws, w_dim] of any face record of this bundle (z records are mapped with
    their truncation; w and w+ records are stored after truncation)."""
    if record.bundle_hash != bundle.hash:
        raise ValueError(f"face {record.id} was made with bundle {record.bundle_hash[:12]}, "
                         f"not with the loaded bundle {bundle.hash[:12]}")
    g = bundle.generator
    latent = record.latent_array()
    if record.latent_space == "z":
        return g.map_compiled(latent[None], record.truncation_psi,
                              record.truncation_cutoff).numpy()[0]
    return np.broadcast_to(latent, (g.num_ws, g.cfg.w_dim)).astype(np.float32)


def render_record(bundle, record: FaceRecord) -> np.ndarray:
    """Re-render a face record from its latent in the precision it was made in; the result is
    bit-identical to the original."""
    ws = record_ws(bundle, record)
    images = bundle.generator.synthesize(ws[None], record.noise_mode,
                                         noise_seeds=[record.noise_seed],
                                         precision=record.precision)
    return to_uint8(images.numpy())[0]


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
