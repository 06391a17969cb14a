"""Labelled faces for the attribute model: UTKFace and the CelebA attribute subset.

Both datasets are read in place (never copied into the repository) and converted once per run
into a cache of aligned uint8 arrays at the model's working resolution (``RUN/cache/*.npz``), so
training steps never decode JPEGs or run face alignment. UTKFace faces are already aligned and
only resized. CelebA photos are loose crops: each is aligned with our FFHQ recipe
(:func:`models.faces.align_face` on dlib's 68 landmarks, framed like the bundle's training
faces) so it looks like a generated face;
photos where no face is found are skipped and counted.

Held-out splits: CelebA by identity (every identity on one side), UTKFace by a hash of the file
name (it has no identities). Both datasets are for non-commercial research only.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.attributes.heads import CELEBA_HEADS, age_group

log = logging.getLogger("ligan.train")
UTK_NAME = re.compile(r"^(\d+)_([01])_([0-4])_\d+")
#: The held-out share of UTKFace for the attribute model (and the trait probe measured beside
#: it), by file-name hash.
UTK_TEST_FRACTION = 0.1
LICENCE = ("UTKFace and CelebA: non-commercial research purposes only; photo copyrights stay "
           "with their owners (see ../shared/data/README.md)")


@dataclass
class LabelledFaces:
    """Images [N, r, r, 3] uint8 with labels; -1 (class) or NaN-free 0/1 with a mask (binary)."""

    images: np.ndarray
    age: np.ndarray        # [N] age group index, -1 = unknown
    gender: np.ndarray     # [N] 0 male / 1 female, -1 = unknown
    ethnicity: np.ndarray  # [N] 0–4, -1 = unknown
    celeba: np.ndarray     # [N, len(CELEBA_HEADS)] 0/1
    celeba_mask: np.ndarray  # [N] 1 where the CelebA labels are known
    test: np.ndarray       # [N] bool, held out

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, mask: np.ndarray) -> "LabelledFaces":
        return LabelledFaces(**{k: v[mask] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: list["LabelledFaces"]) -> "LabelledFaces":
        keys = LabelledFaces.__dataclass_fields__
        return LabelledFaces(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in keys})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        with open(tmp, "wb") as f:
            np.savez(f, **self.__dict__)
        os.replace(tmp, path)

    @staticmethod
    def load(path: Path) -> "LabelledFaces":
        with np.load(path, allow_pickle=False) as data:
            return LabelledFaces(**{k: data[k] for k in LabelledFaces.__dataclass_fields__})


def held_out_by_key(key: str, fraction: float) -> bool:
    """Whether the face named by ``key`` (a UTKFace file name, or a CelebA identity) is in the
    attribute model's held-out share: a hash of the key, so every run splits alike."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2 ** 32 < fraction


def _resize(image: np.ndarray, resolution: int) -> np.ndarray:
    import cv2

    if image.shape[0] == resolution and image.shape[1] == resolution:
        return image
    return cv2.resize(image, (resolution, resolution), interpolation=cv2.INTER_AREA)


def _read_rgb(path: Path) -> np.ndarray | None:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else bgr[:, :, ::-1].copy()


def utkface_faces(folder: str | os.PathLike, resolution: int, limit: int | None = None,
                  test_fraction: float = UTK_TEST_FRACTION, seed: int = 0) -> LabelledFaces:
    """UTKFace ``AGE_GENDER_RACE_*.jpg`` files → labelled faces (malformed names are skipped
    with a warning; ``limit`` takes a seeded random subset)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"UTKFace folder {root} does not exist")
    files, labels, bad = [], [], []
    for path in sorted(root.iterdir()):
        m = UTK_NAME.match(path.name)
        if not m or path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            bad.append(path.name)
            continue
        files.append(path)
        labels.append((age_group(int(m.group(1))), int(m.group(2)), int(m.group(3))))
    if bad:
        log.warning("UTKFace: skipped %d file(s) whose names do not match AGE_GENDER_RACE_*: %s",
                    len(bad), ", ".join(bad[:5]) + (" …" if len(bad) > 5 else ""))
    if not files:
        raise ValueError(f"no UTKFace images (AGE_GENDER_RACE_*.jpg) in {root}")
    order = np.arange(len(files))
    if limit is not None and limit < len(files):
        order = np.sort(np.random.default_rng(seed).choice(len(files), limit, replace=False))
    images, keep = [], []
    for i in order:
        img = _read_rgb(files[i])
        if img is None:
            log.warning("UTKFace: cannot decode %s; skipped", files[i].name)
            continue
        images.append(_resize(img, resolution))
        keep.append(i)
    lab = np.array([labels[i] for i in keep], np.int64).reshape(-1, 3)
    n = len(keep)
    return LabelledFaces(
        images=np.stack(images), age=lab[:, 0], gender=lab[:, 1], ethnicity=lab[:, 2],
        celeba=np.zeros((n, len(CELEBA_HEADS)), np.float32), celeba_mask=np.zeros(n, np.float32),
        test=np.array([held_out_by_key(files[i].name, test_fraction) for i in keep]))


def celeba_faces(folder: str | os.PathLike, resolution: int, limit: int | None = None,
                 test_fraction: float = 0.15, seed: int = 0, framing=None) -> LabelledFaces:
    """CelebA ``images/`` + ``attributes.csv`` → faces aligned with our FFHQ recipe (moved and
    scaled by ``framing``, default FFHQ's); the held-out split is by identity."""
    from models.faces import FFHQ_FRAMING, align_face, detect_faces

    framing = framing or FFHQ_FRAMING
    root = Path(folder)
    table = root / "attributes.csv"
    if not table.is_file():
        raise ValueError(f"CelebA folder {root} has no attributes.csv")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in (*CELEBA_HEADS, "file", "identity") if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{table} lacks the column(s) {', '.join(missing)}")
    if limit is not None and limit < len(rows):
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), limit, replace=False))
        rows = [rows[i] for i in pick]
    images, attrs, test, skipped = [], [], [], 0
    for row in rows:
        img = _read_rgb(root / "images" / row["file"])
        faces = detect_faces(img, upsample=1, landmarks=68) if img is not None else []
        if not faces:
            skipped += 1
            continue
        images.append(align_face(img, faces[0], resolution, framing=framing).image)
        attrs.append([float(row[c]) for c in CELEBA_HEADS])
        test.append(held_out_by_key("celeba-identity-" + row["identity"], test_fraction))
    if skipped:
        log.warning("CelebA: no face found in %d of %d photos; skipped", skipped, len(rows))
    if not images:
        raise ValueError(f"no usable CelebA faces in {root}")
    n = len(images)
    unknown = np.full(n, -1, np.int64)
    return LabelledFaces(images=np.stack(images), age=unknown, gender=unknown.copy(),
                         ethnicity=unknown.copy(), celeba=np.array(attrs, np.float32),
                         celeba_mask=np.ones(n, np.float32), test=np.array(test))


def cached(path: Path, build) -> LabelledFaces:
    """Load ``path`` if a previous run (or attempt) wrote it; else build and save it."""
    if path.is_file():
        return LabelledFaces.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = build()
    faces.save(path)
    return faces
