"""Fillers: faces that resemble a suspect without being the suspect.

Around the suspect's w+ (from the encoder or the projector) offsets are drawn uniformly inside a
ball in the whitened PCA space of W (radius in standard deviations; see ``models.latent``), the
faces are rendered, and each is scored by its dlib identity distance to the suspect. Faces so
close that they would pass for the suspect (distance below ``near_clone_threshold``) are left
out and counted. Page ``p`` samples a ball of radius ``radius · (1 + radius_growth · p)`` and
is sorted by distance, so page 1 holds the most similar faces and later pages less similar
ones. Everything is seeded by (seed, page): a page can be regenerated exactly.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np

from models.faces import aligned_face_embedding, identity_distance
from models.images import to_uint8
from models.latent import LatentPCA, apply_offset, sample_ball
from models.records import FaceRecord, latent_to_list

#: Identity distance under which a filler counts as a near-clone of the suspect. Photos of the
#: same person (London set, neutral vs smiling) lie at 0.22 on average and at most 0.41 apart;
#: different people at least 0.54 (docs/faces.md). 0.4 leaves out faces that dlib would place
#: among a person's own photos, and keeps the close look-alikes a fair lineup needs.
NEAR_CLONE_THRESHOLD = 0.4
MAX_ROUNDS = 4


@dataclasses.dataclass
class FillerPage:
    page: int
    radius: float
    records: list[FaceRecord]
    images: np.ndarray  # uint8 [n, R, R, 3], in the order of records
    distances: np.ndarray  # identity distance to the suspect, ascending
    candidates: int
    near_clones: int
    undetected: int  # candidates whose face dlib did not find (embedded from the aligned box)
    seconds: float


def check_filler_args(per_page: int, page: int, radius: float, radius_growth: float,
                      near_clone_threshold: float) -> None:
    if not 1 <= per_page <= 200:
        raise ValueError(f"faces per page must be from 1 to 200, got {per_page}")
    if page < 0:
        raise ValueError(f"page must be 0 or more, got {page}")
    for name, value in (("radius", radius), ("radius growth", radius_growth),
                        ("near-clone threshold", near_clone_threshold)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")


def render(generator, ws: np.ndarray, noise_mode: str = "const",
           batch_size: int = 8) -> np.ndarray:
    """w+ [N, num_ws, w_dim] → uint8 images, in batches."""
    out = [to_uint8(generator.synthesize(ws[i:i + batch_size], noise_mode).numpy())
           for i in range(0, len(ws), batch_size)]
    return np.concatenate(out)


def filler_page(bundle, pca: LatentPCA, center_ws: np.ndarray, *,
                reference_embedding: np.ndarray | None = None, page: int = 0,
                per_page: int = 24, radius: float = 6.0, radius_growth: float = 0.5,
                oversample: float = 1.25, near_clone_threshold: float = NEAR_CLONE_THRESHOLD,
                layers: Sequence[int] | None = None, seed: int = 0,
                parents: Sequence[str] = (), owner: str = "",
                should_stop: Callable[[], bool] | None = None) -> FillerPage:
    """One page of fillers around ``center_ws`` ([num_ws, w_dim]), most similar first.

    ``reference_embedding``: the suspect's identity (from the photo); by default that of the
    face rendered at ``center_ws``. ``layers``: the w+ entries the offsets move (all by default).
    """
    check_filler_args(per_page, page, radius, radius_growth, near_clone_threshold)
    started = time.monotonic()
    g = bundle.generator
    center = np.asarray(center_ws, np.float32)
    if center.shape != (g.num_ws, g.cfg.w_dim):
        raise ValueError(f"the suspect's latent must be [{g.num_ws}, {g.cfg.w_dim}], got "
                         f"{list(center.shape)}")
    if reference_embedding is None:
        reference_embedding, _ = aligned_face_embedding(render(g, center[None])[0])
    page_radius = radius * (1.0 + radius_growth * page)
    rng = np.random.default_rng([seed, page])
    kept_ws, kept_images, kept_dist = [], [], []
    candidates = near_clones = undetected = 0
    for _ in range(MAX_ROUNDS):
        need = per_page - len(kept_ws)
        if need <= 0 or (should_stop is not None and should_stop()):
            break
        n = max(1, math.ceil(need * oversample))
        offsets = pca.offset(sample_ball(n, pca.num_components, page_radius, rng))
        ws = apply_offset(center, offsets, layers)
        images = render(g, ws)
        for w, img in zip(ws, images):
            emb, found = aligned_face_embedding(img)
            dist = float(identity_distance(emb, reference_embedding))
            undetected += not found
            if dist < near_clone_threshold:
                near_clones += 1
                continue
            kept_ws.append(w)
            kept_images.append(img)
            kept_dist.append(dist)
        candidates += n
    order = np.argsort(kept_dist, kind="stable")[:per_page]
    records = [FaceRecord(bundle_hash=bundle.hash, latent_space="w+",
                          latent=latent_to_list(kept_ws[i]), operation="fillers",
                          parameters={"page": page, "radius": page_radius, "rank": rank,
                                      "sampler_seed": seed, "identity_distance": kept_dist[i],
                                      "near_clone_threshold": near_clone_threshold,
                                      "layers": list(layers) if layers is not None else None},
                          parents=list(parents), owner=owner)
               for rank, i in enumerate(order)]
    images = np.stack([kept_images[i] for i in order]) if len(order) else \
        np.zeros((0, g.cfg.resolution, g.cfg.resolution, 3), np.uint8)
    return FillerPage(page=page, radius=page_radius, records=records, images=images,
                      distances=np.asarray([kept_dist[i] for i in order]),
                      candidates=candidates, near_clones=near_clones, undetected=undetected,
                      seconds=time.monotonic() - started)
