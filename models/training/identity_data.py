"""The distillation set of the identity network: aligned faces with dlib's embedding of each.

Three sources, each cut at the bundle's resolution and framing the way LiGAN meets faces:

- **UTKFace** chips (real photos; held out by the rule of the GAN's metrics split, 5 % by
  file-name hash), resized when the bundle's framing is UTKFace's, aligned otherwise;
- **CelebA** photos (real, aligned with our recipe; several photos per identity, so same-person
  pairs exist; held out by identity);
- **generated faces** of the bundle, in groups: a random face and neighbours drawn around it in
  the whitened PCA ball at filler radii, so the set holds the close look-alikes that fillers
  are made of, not only strangers.

The target of every face is :func:`models.faces.aligned_face_count_and_embedding` — exactly what
LiGAN measures on an aligned face with dlib (detection on the crop enlarged to 256 px; the
centre box where none is found). dlib costs about 0.15 s a face, so the set is written in
chunks (``OUT/chunk-K-of-N-IIII.npz``) that a rerun skips, and ``part``/``parts`` split the work
between processes.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np

log = logging.getLogger("ligan.train")

SOURCES = ("utkface", "celeba", "generated")
UTK_NAME = re.compile(r"^\d+_[01]_[0-4]_\d+")
#: The GAN's held-out share of UTKFace (jobs/default_model/split_utkface.py).
UTK_HOLDOUT = 0.05
CELEBA_HOLDOUT = 0.15
GENERATED_HOLDOUT = 0.1
CHUNK = 250


@dataclasses.dataclass(frozen=True)
class DistillationPlan:
    """How many faces of each source (a seeded choice: every process plans alike)."""

    utkface: int = 7000
    celeba: int = 2500
    groups: int = 2000  # generated groups: one random face and ``neighbours`` around it
    neighbours: int = 4
    psi_range: tuple[float, float] = (0.5, 1.0)
    radius_range: tuple[float, float] = (0.3, 1.4)  # × page 1's filler radius
    seed: int = 0


@dataclasses.dataclass
class Item:
    source: int  # index into SOURCES
    key: str  # file name, or "gen-GROUP-K"
    group: str  # who it shows: UTKFace file, CelebA identity, generated group
    test: bool
    path: str = ""
    ws: np.ndarray | None = None  # generated: w+ [num_ws, w_dim]


def plan_items(bundle, plan: DistillationPlan, utkface: str | os.PathLike | None,
               celeba: str | os.PathLike | None) -> list[Item]:
    """Every face of the set, in a fixed order."""
    from models.dataset.pipeline import held_out
    from models.attributes.data import held_out_by_key

    rng = np.random.default_rng(plan.seed)
    items: list[Item] = []
    if utkface is not None and plan.utkface:
        files = sorted(p for p in Path(utkface).iterdir() if UTK_NAME.match(p.name))
        pick = np.sort(rng.choice(len(files), min(plan.utkface, len(files)), replace=False))
        items += [Item(0, files[i].name, files[i].name, held_out(files[i].name, UTK_HOLDOUT),
                       path=str(files[i])) for i in pick]
    if celeba is not None and plan.celeba:
        import csv

        with open(Path(celeba) / "attributes.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        pick = np.sort(rng.choice(len(rows), min(plan.celeba, len(rows)), replace=False))
        for i in pick:
            identity = "celeba-identity-" + rows[i]["identity"]
            items.append(Item(1, rows[i]["file"], identity,
                              held_out_by_key(identity, CELEBA_HOLDOUT),
                              path=str(Path(celeba) / "images" / rows[i]["file"])))
    if plan.groups:
        items += _generated_items(bundle, plan, rng)
    return items


def _generated_items(bundle, plan: DistillationPlan, rng: np.random.Generator) -> list[Item]:
    from models.fillers import default_radius
    from models.latent import LatentPCA, apply_offset, sample_ball

    g = bundle.generator
    pca = LatentPCA.from_bundle(bundle)
    radius = default_radius(pca)
    z = rng.standard_normal((plan.groups, g.cfg.z_dim)).astype(np.float32)
    psi = rng.uniform(*plan.psi_range, size=plan.groups)
    w = g.map_compiled(z, truncation_psi=1.0).numpy()  # [G, num_ws, w_dim]
    w_avg = g.w_avg.numpy()
    items = []
    for k in range(plan.groups):
        centre = w_avg + psi[k] * (w[k] - w_avg)
        radii = radius * rng.uniform(*plan.radius_range, size=plan.neighbours)
        offsets = (np.concatenate([pca.offset(sample_ball(1, pca.num_components, r, rng))
                                   for r in radii]) if plan.neighbours
                   else np.zeros((0, w.shape[-1])))
        group = np.concatenate([centre[None], apply_offset(centre, offsets)])
        test = rng.uniform() < GENERATED_HOLDOUT
        items += [Item(2, f"gen-{k}-{j}", f"gen-{k}", bool(test), ws=ws.astype(np.float32))
                  for j, ws in enumerate(group)]
    return items


def chunk_path(out: Path, part: int, parts: int, index: int) -> Path:
    return out / f"chunk-{part}-of-{parts}-{index:04d}.npz"


def build_chunks(bundle, items: list[Item], out: str | os.PathLike, part: int = 0,
                 parts: int = 1) -> int:
    """Embed this process's share of ``items`` (every ``parts``-th, from ``part``) into chunk
    files, skipping chunks already written; returns how many faces this call embedded."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mine = items[part::parts]
    done = 0
    for index, start in enumerate(range(0, len(mine), CHUNK)):
        path = chunk_path(out, part, parts, index)
        if path.is_file():
            continue
        chunk = mine[start:start + CHUNK]
        _write_chunk(path, chunk, _faces(bundle, chunk))
        done += len(chunk)
        log.info("identity distillation: %s (%d faces)", path.name, len(chunk))
    return done


def _faces(bundle, chunk: list[Item]) -> list[np.ndarray | None]:
    """The aligned face of each item at the bundle's resolution (None: no face in the photo)."""
    from models.fillers import render

    res = bundle.resolution
    images: list[np.ndarray | None] = [None] * len(chunk)
    generated = [i for i, it in enumerate(chunk) if it.ws is not None]
    if generated:
        rendered = render(bundle.generator, np.stack([chunk[i].ws for i in generated]))
        for i, img in zip(generated, rendered):
            images[i] = img
    for i, it in enumerate(chunk):
        if it.ws is None:
            images[i] = aligned_photo_face(it.path, res, bundle.framing,
                                           already_aligned=(it.source == 0))
    return images


def aligned_photo_face(path: str, resolution: int, framing, already_aligned: bool
                       ) -> np.ndarray | None:
    """A photo cut like the bundle's faces: an already aligned chip in the same framing is only
    resized; anything else is detected and aligned (None when no face is found)."""
    import cv2

    from models.faces import UTKFACE_FRAMING, align_face, detect_faces

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    if already_aligned and framing == UTKFACE_FRAMING:
        return cv2.resize(rgb, (resolution, resolution), interpolation=cv2.INTER_AREA)
    faces = detect_faces(rgb, upsample=1, landmarks=68)
    if not faces:
        return None
    return align_face(rgb, faces[0], resolution, framing=framing).image


def _write_chunk(path: Path, chunk: list[Item], images: list[np.ndarray | None]) -> None:
    from models.faces import aligned_face_count_and_embedding

    rows = []
    for it, img in zip(chunk, images):
        if img is None:
            continue
        count, emb = aligned_face_count_and_embedding(img)
        rows.append((img, emb, count, it))
    if rows:
        arrays = {
            "images": np.stack([r[0] for r in rows]),
            "embeddings": np.stack([r[1] for r in rows]).astype(np.float32),
            "faces": np.array([r[2] for r in rows], np.int32),
            "source": np.array([r[3].source for r in rows], np.int32),
            "key": np.array([r[3].key for r in rows]),
            "group": np.array([r[3].group for r in rows]),
            "test": np.array([r[3].test for r in rows], bool)}
    else:
        arrays = {"images": np.zeros((0, 1, 1, 3), np.uint8)}
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


@dataclasses.dataclass
class DistillationSet:
    images: np.ndarray  # uint8 [N, R, R, 3]
    embeddings: np.ndarray  # float32 [N, 128], dlib's
    faces: np.ndarray  # int [N], faces dlib found
    source: np.ndarray  # int [N], index into SOURCES
    group: np.ndarray  # str [N], who the face shows
    test: np.ndarray  # bool [N], held out
    key: np.ndarray  # str [N]: file name (photos; UTKFace's holds the labels) or gen-GROUP-K

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, mask: np.ndarray) -> "DistillationSet":
        return DistillationSet(**{k: v[mask] for k, v in dataclasses.asdict(self).items()})


def load_set(folder: str | os.PathLike) -> DistillationSet:
    """Every chunk in ``folder``, concatenated (an error when there is none)."""
    paths = sorted(Path(folder).glob("chunk-*.npz"))
    paths = [p for p in paths if not p.name.endswith(".tmp.npz")]
    parts = []
    for p in paths:
        with np.load(p, allow_pickle=False) as data:
            if "embeddings" in data:
                parts.append({k: data[k] for k in ("images", "embeddings", "faces", "source",
                                                   "group", "test", "key")})
    if not parts:
        raise ValueError(f"no distillation chunks in {folder}")
    return DistillationSet(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
