"""Fillers: faces that resemble a suspect without being the suspect.

Around the suspect's w+ (from the encoder or the projector) offsets are drawn uniformly inside a
ball in the whitened PCA space of W (radius in standard deviations; see ``models.latent``), the
faces are rendered, and each is scored by its identity distance to the suspect: by the bundle's
identity network (dlib's descriptor distilled, every candidate in one batched call;
:mod:`models.faces.identity_net`) or, for a bundle without one, by dlib itself. Faces so close
that they would pass for the suspect (distance below ``near_clone_threshold``) are left out and
counted. Page ``p`` samples a ball of radius ``radius · (1 + radius_growth · p)`` and
is sorted by distance, so page 1 holds the most similar faces and later pages less similar
ones (:func:`page_radius`). Everything is seeded by (seed, page): a page can be regenerated
exactly.

With ``traits`` (:mod:`models.filler_traits`) every candidate is first read by the bundle's
attribute model, and one whose reading contradicts a matched trait (the suspect's gender, say)
is left out and counted before its identity is measured. Where the bundle has attribute directions,
each round draws ``guide_pool`` offsets per candidate and renders those whose latents the
directions rank most likely to match, so fewer are rendered in vain.

How far a face must move in W before dlib sees another person, and how far W can be left
before faces break up, differ from one generator to the next: ``models.filler_calibration``
measures both once per bundle and stores them with the PCA (page 1's radius and the largest
norm). Too small a radius makes a page slow (most candidates are near-clones, drawn, embedded
and dropped); too large a one makes page 1 less similar than it could be.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np

from models.faces import (aligned_face_count, aligned_face_count_and_embedding,
                          aligned_face_embedding, identity_distance)
from models.faces.identity import DLIB_MEASURE, NET_MEASURE, identity_measure
from models.filler_traits import TraitMatch, read_traits
from models.images import to_uint8
from models.latent import LatentPCA, apply_offset, sample_ball
from models.records import FaceRecord, face_record, latent_to_list

#: Identity distance under which a filler counts as a near-clone of the suspect. Photos of the
#: same person (London set, neutral vs smiling) lie at 0.22 on average and at most 0.41 apart;
#: different people at least 0.54 (docs/faces.md). 0.4 leaves out faces that dlib would place
#: among a person's own photos, and keeps the close look-alikes a fair lineup needs.
NEAR_CLONE_THRESHOLD = 0.4
#: Page 1's radius for a bundle whose PCA has no calibrated one.
DEFAULT_RADIUS = 6.0
#: Around a photo, page 1 aims its fillers at this dlib distance to the photo: inside the
#: look-alike band 0.45–0.68 (``models.lineup_evaluation.LOOKALIKE_BAND``), a little below its
#: middle because a page's spread reaches further out than in.
PHOTO_FILLER_DISTANCE = 0.55
#: Fillers' median dlib distance to the reconstruction they are drawn around, per unit of the
#: calibrated radius, around photos (page 1, trait-matched; 53 London and held-out UTKFace
#: people projected 300 steps: 0.215 at 0.5, 0.247 at 0.6, 0.272 at 0.7 of it). The calibrated
#: radius is set by a share of near-clones, so this should hold roughly for other generators
#: too (measured on this one only).
PHOTO_DISTANCE_PER_RADIUS = 0.41
#: Page 1's radius around a photo, as shares of the calibrated radius: never below the first
#: (a reconstruction far from its photo gains nothing from fillers still nearer to it, and they
#: would be near-clones of each other), never above the second: around projected photos, which
#: sit near the largest norm, the default model's faces turn patchy from about 0.9 × (looked at
#: 0.5–1.1 × around two London reconstructions). Capped at 1.2 × instead, the look-alike band
#: rose by under 2 points (93.6 / 90.1 % against 92.8 / 88.2 %, London / held-out).
PHOTO_RADIUS_SCALE = 0.5
PHOTO_RADIUS_MAX_SCALE = 0.85
MAX_ROUNDS = 4
#: Offsets drawn per rendered candidate when the attribute directions pick the candidates
#: most likely to share the suspect's traits: around a hard London photo 16 instead of 4 cut
#: the candidates rendered for a page by a third (rendering is ~14 ms a face on a CPU core).
GUIDE_POOL = 16
#: Later rounds draw need / keep-rate candidates; the keep rate is floored so that one odd
#: round cannot ask for an unbounded number.
MIN_KEEP_RATE = 0.2


@dataclasses.dataclass
class FillerPage:
    page: int
    radius: float
    records: list[FaceRecord]
    images: np.ndarray  # uint8 [n, R, R, 3], in the order of records
    distances: np.ndarray  # identity distance to the suspect, ascending (faces found first)
    candidates: int
    near_clones: int
    undetected: int  # candidates in which dlib found no face (they fill a page only as a last
    # resort, after every face, embedded from the box where the face should be)
    seconds: float
    # each filler's distance to the suspect's reconstruction (the face at the centre)
    reconstruction_distances: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0))
    reference: str = "face"  # what ``distances`` measure against: "photo" or "face"
    measure: str = DLIB_MEASURE  # the identity measure of the distances
    trait_rejected: int = 0  # candidates left out because a matched trait read otherwise
    trait_rejections: dict = dataclasses.field(default_factory=dict)  # trait → candidates whose
    # reading contradicted it (a candidate may count under several)
    traits: dict | None = None  # the matched traits (TraitMatch.describe), None: unmatched
    # the reconstruction's dlib distance to the suspect's photo, which sets the photo radius
    # (None: the suspect is not a photo)
    reconstruction_photo_distance: float | None = None


def check_filler_args(per_page: int, page: int, radius: float | None, radius_growth: float,
                      near_clone_threshold: float) -> None:
    if not 1 <= per_page <= 200:
        raise ValueError(f"faces per page must be from 1 to 200, got {per_page}")
    if page < 0:
        raise ValueError(f"page must be 0 or more, got {page}")
    for name, value in (("radius", radius), ("radius growth", radius_growth),
                        ("near-clone threshold", near_clone_threshold)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")


def render(generator, ws: np.ndarray, noise_mode: str = "const",
           batch_size: int = 8) -> np.ndarray:
    """w+ [N, num_ws, w_dim] → uint8 images, in batches."""
    out = [to_uint8(generator.synthesize(ws[i:i + batch_size], noise_mode).numpy())
           for i in range(0, len(ws), batch_size)]
    return np.concatenate(out)


def filler_page(bundle, pca: LatentPCA, center_ws: np.ndarray, *,
                reference_embedding: np.ndarray | None = None, measure: str | None = None,
                page: int = 0, per_page: int = 24, radius: float | None = None,
                radius_growth: float = 0.5, oversample: float = 1.25,
                near_clone_threshold: float = NEAR_CLONE_THRESHOLD,
                layers: Sequence[int] | None = None, seed: int = 0,
                parents: Sequence[str] = (), owner: str = "", traits: TraitMatch | None = None,
                guide_pool: int = GUIDE_POOL,
                should_stop: Callable[[], bool] | None = None) -> FillerPage:
    """One page of fillers around ``center_ws`` ([num_ws, w_dim]), most similar first.

    ``measure``: the identity measure that ranks and guards the page, ``"identity-net"`` (the
    bundle's identity network: every candidate embedded in one batched call) or ``"dlib"``
    (one descriptor a candidate); by default the bundle's (:func:`identity_measure`).
    ``reference_embedding``: dlib's embedding of the suspect's photo
    (:func:`models.inversion.record_photo_identity`): ranking, the near-clone guard and each
    filler's ``identity_distance`` measure against it (the network estimates where dlib puts
    each candidate), and ``identity_distance_reconstruction`` against the face rendered at
    ``center_ws`` beside it. None (a generated suspect): both are
    the face at ``center_ws``. ``layers``: the w+ entries the offsets move (all by default).
    ``radius``: page 1's radius; by default the bundle's calibrated one, or around a photo's
    reconstruction a share of it set by how far the reconstruction is from the photo
    (:func:`photo_radius_scale`; see :func:`page_radius`).
    ``traits``: what every filler must share with the suspect (see the module docstring).
    """
    check_filler_args(per_page, page, radius, radius_growth, near_clone_threshold)
    started = time.monotonic()
    g = bundle.generator
    center = np.asarray(center_ws, np.float32)
    if center.shape != (g.num_ws, g.cfg.w_dim):
        raise ValueError(f"the suspect's latent must be [{g.num_ws}, {g.cfg.w_dim}], got "
                         f"{list(center.shape)}")
    measure = measure or identity_measure(bundle)
    scorer = _Scorer(bundle, measure)
    centre_face = render(g, center[None])
    reconstruction = scorer.embed(centre_face)[0]
    to_photo = reference_embedding is not None
    reference = np.asarray(reference_embedding, np.float32) if to_photo else reconstruction
    photo_distance = None
    if to_photo:  # by dlib whatever ranks the page: the photo radius is measured with it
        by_dlib = reconstruction if scorer.net is None else \
            aligned_face_embedding(centre_face[0])[0]
        photo_distance = float(identity_distance(by_dlib, reference))
    radius_here = page_radius(pca, center, page, radius, radius_growth, layers,
                              photo_distance=photo_distance)
    rng = np.random.default_rng([seed, page])
    guides = _trait_guides(bundle, traits) if traits is not None and guide_pool > 1 else []
    kept: list[tuple] = []  # (distance, w+, image, embedding, reading): faces
    faceless: list[tuple] = []  # (w+, image, reading) where dlib found no face
    candidates = near_clones = trait_rejected = 0
    rejections: dict[str, int] = {}
    for _ in range(MAX_ROUNDS):
        need = per_page - len(kept)
        if need <= 0 or (should_stop is not None and should_stop()):
            break
        # Size each later round by the share kept so far, so that one more round usually fills
        # the page instead of several small ones.
        keep_rate = max(MIN_KEEP_RATE, len(kept) / candidates) if candidates else 1.0
        n = max(1, math.ceil(need * oversample / keep_rate))
        pool = n * guide_pool if guides else n
        offsets = pca.offset(sample_ball(pool, pca.num_components, radius_here, rng))
        ws = apply_offset(center, offsets, layers)
        if guides:
            ws = ws[_most_likely_to_match(ws, guides, n)]
        images = render(g, ws)
        readings = read_traits(bundle, images) if traits is not None else [None] * len(ws)
        keep = []
        for i, reading in enumerate(readings):
            failed = traits.contradicted(reading) if reading is not None else []
            for trait in failed:
                rejections[trait] = rejections.get(trait, 0) + 1
            if not failed:
                keep.append(i)
        trait_rejected += len(ws) - len(keep)
        for i, (emb, found) in zip(keep, scorer.score(images[keep])):
            if found is False:
                faceless.append((ws[i], images[i], readings[i]))
                continue
            dist = float(identity_distance(emb, reference))
            if dist < near_clone_threshold:
                near_clones += 1
                continue
            if found is None and not aligned_face_count(images[i]):
                faceless.append((ws[i], images[i], readings[i]))
                continue
            kept.append((dist, ws[i], images[i], emb, readings[i]))
        candidates += n
    kept.sort(key=lambda item: item[0])
    kept = kept[:per_page]
    found = len(kept)
    # Faces dlib cannot find (half-formed, or an untrained generator's) only fill a page that
    # the rounds could not fill with faces, ranked by the identity of where the face should be.
    for w, img, reading in faceless:
        if len(kept) >= per_page:
            break
        emb = scorer.embed(img[None])[0]
        dist = float(identity_distance(emb, reference))
        if dist < near_clone_threshold:
            near_clones += 1
        else:
            kept.append((dist, w, img, emb, reading))
    kept = kept[:found] + sorted(kept[found:], key=lambda item: item[0])
    recon_distances = [float(identity_distance(item[3], reconstruction)) for item in kept]
    records = []
    for rank, ((dist, w, _, _, reading), recon) in enumerate(zip(kept, recon_distances)):
        parameters = {"page": page, "radius": radius_here, "rank": rank,
                      "sampler_seed": seed, "identity_distance": dist,
                      "identity_reference": "photo" if to_photo else "face",
                      "identity_measure": measure,
                      "identity_distance_reconstruction": round(recon, 4),
                      "face_detected": rank < found,
                      "near_clone_threshold": near_clone_threshold,
                      "layers": list(layers) if layers is not None else None}
        if traits is not None:
            parameters["traits"] = traits.record(reading)
        records.append(face_record(bundle, latent_space="w+", latent=latent_to_list(w),
                                   operation="fillers", parameters=parameters,
                                   parents=list(parents), owner=owner))
    images = np.stack([item[2] for item in kept]) if kept else \
        np.zeros((0, g.cfg.resolution, g.cfg.resolution, 3), np.uint8)
    return FillerPage(page=page, radius=radius_here, records=records, images=images,
                      distances=np.asarray([item[0] for item in kept]),
                      reconstruction_distances=np.asarray(recon_distances),
                      reference="photo" if to_photo else "face", measure=measure,
                      candidates=candidates, near_clones=near_clones, undetected=len(faceless),
                      trait_rejected=trait_rejected, trait_rejections=rejections,
                      traits=traits.describe() if traits is not None else None,
                      reconstruction_photo_distance=photo_distance,
                      seconds=time.monotonic() - started)


class _Scorer:
    """Identity embeddings of candidates by one measure.

    dlib: each candidate is detected and embedded in one call. The identity network: every
    candidate is embedded in one batched call, and dlib's detector (about 10 ms, no
    descriptor) checks only those that pass the near-clone guard."""

    def __init__(self, bundle, measure: str) -> None:
        if measure not in (NET_MEASURE, DLIB_MEASURE):
            raise ValueError(f"identity measure must be {NET_MEASURE} or {DLIB_MEASURE}, got "
                             f"{measure!r}")
        from models.faces.identity_net import load_identity_net

        self.net = load_identity_net(bundle) if measure == NET_MEASURE else None

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Embeddings of ``images`` (dlib: of the face it finds, else of the box where
        alignment puts the face)."""
        if self.net is not None:
            return self.net.embed(images)
        return np.stack([aligned_face_embedding(img)[0] for img in images])

    def score(self, images: np.ndarray) -> list[tuple[np.ndarray | None, bool | None]]:
        """(embedding, whether dlib finds a face) per image; None: not checked yet (the
        network's, whose caller detects only the candidates it keeps)."""
        if self.net is not None:
            return [(emb, None) for emb in self.net.embed(images)] if len(images) else []
        out = []
        for img in images:
            count, emb = aligned_face_count_and_embedding(img, embed_undetected=False)
            out.append((emb, count > 0))
        return out


def _trait_guides(bundle, traits: TraitMatch) -> list:
    """The attribute directions that can rank candidates for ``traits`` ([] without any)."""
    from models.attributes.directions import Directions
    from models.attributes.filter import guides_for
    from models.bundle import BundleFileMissingError

    try:
        directions = Directions.from_bundle(bundle)
    except BundleFileMissingError:
        return []
    return guides_for(traits.spec, directions)[0]


def _most_likely_to_match(ws: np.ndarray, guides: list, n: int) -> np.ndarray:
    """Indices of the ``n`` of ``ws`` (w+ [N, num_ws, w_dim]) that the directions rank most
    likely to match, in their drawn order (so a page stays a seeded draw)."""
    from models.attributes.filter import match_log_prob

    score = match_log_prob(ws.mean(axis=1), guides)
    return np.sort(np.argsort(-score, kind="stable")[:n])

def default_radius(pca: LatentPCA, photo_distance: float | None = None) -> float:
    """Page 1's radius for fillers with this PCA: its calibrated one (else DEFAULT_RADIUS), or
    around a photo's reconstruction, ``photo_distance`` from the photo by dlib, the share of
    it given by :func:`photo_radius_scale`."""
    radius = float(pca.filler_radius) if pca.filler_radius is not None else DEFAULT_RADIUS
    return radius if photo_distance is None else radius * photo_radius_scale(photo_distance)


def photo_radius_scale(photo_distance: float) -> float:
    """The share of the calibrated radius that page 1 samples around a photo's reconstruction
    ``photo_distance`` (dlib) from the photo.

    A filler drawn around the reconstruction moves in a direction nearly orthogonal to the one
    from the photo to the reconstruction, so its distance to the photo is about
    √(photo_distance² + moved²). Page 1 moves far enough (``moved`` =
    PHOTO_DISTANCE_PER_RADIUS × scale) to put that at PHOTO_FILLER_DISTANCE: further from a
    close reconstruction, whose fillers would otherwise all be closer to the photo than the
    look-alike band (up to PHOTO_RADIUS_MAX_SCALE, beyond which faces break up), and no
    further than PHOTO_RADIUS_SCALE from a distant one. Measured (default bundle, 300 projector
    steps): a reconstruction 0.31 from its photo put 4 % of a fixed 0.5 × page in the band, 42 %
    at 0.8 ×, 96 % at 1.1 ×.
    """
    moved = math.sqrt(max(PHOTO_FILLER_DISTANCE ** 2 - photo_distance ** 2, 0.0))
    return min(max(moved / PHOTO_DISTANCE_PER_RADIUS, PHOTO_RADIUS_SCALE), PHOTO_RADIUS_MAX_SCALE)


def page_radius(pca: LatentPCA, center_ws: np.ndarray, page: int, radius: float | None = None,
                radius_growth: float = 0.5, layers: Sequence[int] | None = None,
                photo_distance: float | None = None) -> float:
    """The radius page ``page`` samples around ``center_ws`` (w+ [num_ws, w_dim]).

    Page 1 uses ``radius`` (by default :func:`default_radius`, scaled around a photo's
    reconstruction ``photo_distance`` from the photo). Without a calibrated largest
    norm, page p uses ``radius · (1 + radius_growth · p)``. With one (``pca.filler_max_norm``,
    beyond which this generator's faces break up), later pages approach the largest radius that
    keeps the candidates within that norm, ``cap = √(max_norm² − |centre|²)``, as
    ``radius + (top − radius) · g·p / (1 + g·p)`` with ``top = max(cap, calibrated radius)``:
    every page less similar than the one before, none beyond the faces. (A random offset of
    length r from a centre of whitened norm c lands at norm √(c² + r²): in high dimensions it is
    almost orthogonal to the centre.) The calibrated radius is a floor of ``top`` because it
    draws faces wherever a centre lies: around photos, whose projected centres sit near the
    largest norm, it found faces in 98 % of page-1 candidates.
    """
    r1 = default_radius(pca, photo_distance) if radius is None else float(radius)
    grown = radius_growth * page
    if pca.filler_max_norm is None:
        return r1 * (1.0 + grown)
    moved = center_ws if layers is None else center_ws[list(layers)]
    centre_norm = float(np.max(np.linalg.norm(pca.to_whitened(moved), axis=-1)))
    cap = math.sqrt(max(pca.filler_max_norm ** 2 - centre_norm ** 2, 0.0))
    top = max(cap, default_radius(pca))
    if top <= r1:  # near the edge and already at the calibrated radius: stay there
        return r1
    return r1 + (top - r1) * grown / (1.0 + grown)
