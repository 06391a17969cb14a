"""Calibrating filler sampling for one generator: page 1's radius and the largest norm of W.

Both depend on the generator, so they are measured once per bundle (``ligan bundle fit-pca``,
``ligan bundle calibrate-fillers``) and stored with its PCA (``models.latent.LatentPCA``):

* **Page 1's radius**: the smallest radius around a face at which at most a given share of the
  candidates are near-clones of it (dlib identity distance below the near-clone threshold).
  Every near-clone costs an identity embedding (~80 ms on a CPU core) and is dropped, so the
  share sets a page's cost: about ``per_page / (1 − share)`` embeddings.
* **The largest norm**: how far from the mean of W, in whitened units, faces still come out as
  faces (dlib finds exactly one in all but a given share). Random w of the generator lie near
  norm √k (k components); beyond about 1.2 √k faces start to break up. Later filler pages
  never sample beyond it (``models.fillers.page_radius``).

Centres are generated faces (ψ = 0.7 for the radius); the measured shares are stored with the
result so an operator can see what the numbers rest on.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from models.faces import aligned_face_count, aligned_face_embedding, identity_distance
from models.fillers import NEAR_CLONE_THRESHOLD, render
from models.latent import LatentPCA, apply_offset, sample_ball

#: Share of page-1 candidates that may be near-clones at the calibrated radius.
NEAR_CLONE_SHARE = 0.25
#: Share of faces that may break up (dlib finds no face, or several) at the largest norm.
BROKEN_SHARE = 0.10
#: Random faces the largest norm is measured with. At 64, one face moves the share by 1.6
#: points and the result by about a whitened unit: the same generator read 18.7 with seed 0's
#: 64 faces and 17.76 with 256 (a second generator 17.19 and 18.52), enough to change how
#: tightly the projector's prior holds a photo's latent.
NORM_SAMPLES = 256


@dataclasses.dataclass
class FillerCalibration:
    """The outcome of :func:`calibrate_fillers`, with every measurement behind it."""

    radius: float
    radius_met: bool  # False: even the largest radius tried left too many near-clones
    max_norm: float | None  # None: even the generator's own samples break up too often
    near_clone_share: float
    near_clone_threshold: float
    broken_share: float
    centres: int
    samples_per_centre: int
    seed: int
    radius_table: list[dict]  # {"radius", "near_clone_share", "mean_distance"}, by radius
    norm_table: list[dict]  # {"norm", "broken_share"}, by norm

    def config(self) -> dict:
        """What is stored with the PCA (``filler_calibration``), the two results aside."""
        cfg = dataclasses.asdict(self)
        del cfg["radius"], cfg["max_norm"]
        cfg["centres_from"] = "generated faces at psi 0.7"
        return cfg

    def apply(self, pca: LatentPCA) -> None:
        pca.filler_radius, pca.filler_max_norm = self.radius, self.max_norm
        pca.calibration = self.config()


def bisect(measure: Callable[[float], dict], ok: Callable[[dict], bool], good: float,
           bad: float, steps: int, log_scale: bool) -> tuple[float, list[dict]]:
    """Narrow the boundary between a ``good`` value (``ok``) and a ``bad`` one in ``steps``
    halvings; returns the good end and the rows measured."""
    rows = []
    for _ in range(steps):
        mid = math.sqrt(good * bad) if log_scale else (good + bad) / 2
        row = measure(mid)
        rows.append(row)
        if ok(row):
            good = mid
        else:
            bad = mid
    return good, rows


def calibrate_fillers(bundle, pca: LatentPCA, *, near_clone_share: float = NEAR_CLONE_SHARE,
                      near_clone_threshold: float = NEAR_CLONE_THRESHOLD,
                      broken_share: float = BROKEN_SHARE, centres: int = 12, samples: int = 8,
                      steps: int = 6, radius_bounds: tuple[float, float] = (1.0, 40.0),
                      norm_samples: int = NORM_SAMPLES, seed: int = 0,
                      progress: bool = False) -> FillerCalibration:
    """Measure page 1's radius and the largest norm for ``bundle``'s generator.

    Radius: around ``centres`` generated faces, ``samples`` offsets are fixed once in the unit
    ball and scaled to each radius tried, so every radius is judged on the same draws; bisection
    in log scale within ``radius_bounds``. Norm: ``norm_samples`` random w are scaled away from
    the mean (whitened coordinates × s for s in 1–2.5) until more than ``broken_share`` of their
    faces break up; bisection on s.
    """
    from tqdm import tqdm

    for name, share in (("near-clone share", near_clone_share), ("broken share", broken_share)):
        if not 0.0 < share < 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {share}")
    if centres < 1 or samples < 1 or steps < 0 or norm_samples < 1:
        raise ValueError("calibration needs at least one centre, sample and norm sample, and "
                         "0 or more bisection steps")
    lo, hi = (float(b) for b in radius_bounds)
    if not 0.0 < lo < hi or not math.isfinite(hi):
        raise ValueError(f"radius bounds must satisfy 0 < low < high, got {radius_bounds}")
    g = bundle.generator
    rng = np.random.default_rng(seed)
    bar = tqdm(total=centres * (1 + samples * (steps + 1)) + norm_samples * (steps + 1),
               desc="calibrate fillers", unit="face", disable=not progress)

    # -- page 1's radius ------------------------------------------------------------------------
    z = rng.standard_normal((centres, g.cfg.z_dim)).astype(np.float32)
    centre_ws = g.map_compiled(z, 0.7, reproducible=False).numpy()
    references = []
    for image in render(g, centre_ws):
        references.append(aligned_face_embedding(image)[0])
        bar.update()
    unit_offsets = sample_ball(centres * samples, pca.num_components, 1.0, rng)
    unit_offsets = unit_offsets.reshape(centres, samples, -1)

    def measure_radius(radius: float) -> dict:
        distances = []
        for centre, offsets, reference in zip(centre_ws, unit_offsets, references):
            for image in render(g, apply_offset(centre, pca.offset(offsets * radius))):
                distances.append(identity_distance(aligned_face_embedding(image)[0], reference))
                bar.update()
        d = np.asarray(distances)
        return {"radius": round(radius, 3),
                "near_clone_share": round(float(np.mean(d < near_clone_threshold)), 4),
                "mean_distance": round(float(d.mean()), 4)}

    def few_clones(row: dict) -> bool:
        return row["near_clone_share"] <= near_clone_share

    radius_table = [measure_radius(hi)]
    radius_met = few_clones(radius_table[0])
    radius = hi
    if radius_met:
        radius, rows = bisect(measure_radius, few_clones, hi, lo, steps, log_scale=True)
        radius_table += rows

    # -- the largest norm -----------------------------------------------------------------------
    z = rng.standard_normal((norm_samples, g.cfg.z_dim)).astype(np.float32)
    w = g.map_compiled(z, reproducible=False).numpy()[:, 0]
    coords = pca.to_whitened(w)
    residual = w - (pca.mean + pca.offset(coords))  # the part of w outside the k components

    def measure_norm(scale: float) -> dict:
        scaled = (pca.mean + pca.offset(coords * scale) + residual).astype(np.float32)
        images = render(g, np.repeat(scaled[:, None], g.num_ws, axis=1))
        broken = [aligned_face_count(image) != 1 for image in images]
        bar.update(len(images))
        return {"scale": round(scale, 3),
                "norm": round(float(np.mean(np.linalg.norm(coords * scale, axis=1))), 3),
                "broken_share": round(float(np.mean(broken)), 4)}

    def faces_hold(row: dict) -> bool:
        return row["broken_share"] <= broken_share

    norm_table = [measure_norm(1.0)]
    max_norm = None
    if faces_hold(norm_table[0]):
        top = measure_norm(2.5)
        norm_table.append(top)
        if faces_hold(top):
            max_norm = top["norm"]
        else:
            scale, rows = bisect(measure_norm, faces_hold, 1.0, 2.5, steps - 1, log_scale=False)
            norm_table += rows
            max_norm = next(r["norm"] for r in norm_table if r["scale"] == round(scale, 3))
    bar.close()
    return FillerCalibration(
        radius=round(radius, 3), radius_met=radius_met, max_norm=max_norm,
        near_clone_share=near_clone_share, near_clone_threshold=near_clone_threshold,
        broken_share=broken_share, centres=centres, samples_per_centre=samples, seed=seed,
        radius_table=sorted(radius_table, key=lambda r: r["radius"]),
        norm_table=sorted(norm_table, key=lambda r: r["scale"]))
