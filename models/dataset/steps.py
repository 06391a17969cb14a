"""The pipeline's steps: plain functions with keyword parameters.

- *filter* steps ``f(item, **kw) -> Drop | None`` (None keeps the item);
- *apply* steps ``f(item, **kw) -> Item | Drop`` transform an item (and may drop it when the
  transformation is impossible, e.g. no face to extract);
- *window* steps ``f(item, window, **kw) -> Drop | None`` compare an item with the items kept
  just before it (``window``, oldest first); they run in the parent process, in input order.

Every photo goes through models.faces: :func:`load_item` uses ``load_image`` (so corrupt files
become a ``Drop("corrupt", …)`` from its typed errors, never an exception), ``extract_face``
uses the detector, the several-faces policy, FFHQ alignment and the dlib identity model.
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from models.faces import (DEFAULT_MIN_FACE_SIZE, FRAMINGS, FaceError, FaceTooSmallError,
                          NoFaceError, SeveralFacesError, align_face, aligned_face_embedding,
                          choose_face, detect_faces, face_landmarks, identity_distance, identity_embedding, load_image)

from .items import Drop, Item, parse_labels

#: Default near-duplicate threshold on the dlib identity distance. An exact or re-encoded copy
#: of a photo lies at ~0.0–0.05; two different photos of one person at 0.1–0.4 (London set:
#: 0.22 on average), different people at ~0.8. 0.1 removes copies and keeps other photos of
#: the same person, which are legitimate training data (other expression, light, age).
DEFAULT_SIMILARITY_THRESHOLD = 0.1


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot else "")


def load_item(path: str, max_pixels: int | None = None) -> Item | Drop:
    """Decode ``path`` with ``models.faces.load_image``; unreadable files become a
    ``Drop("corrupt", "<error code>: <what is wrong>")``."""
    try:
        kwargs = {"max_pixels": max_pixels} if max_pixels else {}
        image, warnings = load_image(path, **kwargs)
    except FaceError as e:
        return Drop("corrupt", f"{e.code}: {_first_sentence(str(e))}")
    except OSError as e:  # vanished or unreadable file (permissions, I/O error)
        return Drop("corrupt", f"unreadable: {e.strerror or e}")
    meta = {"source_size": [int(image.shape[1]), int(image.shape[0])]}
    if warnings:
        meta["warnings"] = warnings
    return Item(path=path, image=image, labels=parse_labels(path), meta=meta)


def size_filter(item: Item, min_size: int = 128) -> Drop | None:
    """Drop photos whose shorter side is below ``min_size`` pixels: too small to hold a face
    that survives alignment without being enlarged."""
    h, w = item.image.shape[:2]
    if min(h, w) < min_size:
        return Drop("too small", f"{w}×{h} px, shorter side below {min_size} px")
    return None


def colourfulness(image: np.ndarray) -> float:
    """Mean over pixels of max(R, G, B) − min(R, G, B), on a reduced copy: 0 for a grayscale
    image stored as RGB, ~10–20 for an indoor portrait, far more for saturated scenes."""
    step = max(1, max(image.shape[:2]) // 256)
    small = image[::step, ::step].astype(np.int16)
    return float((small.max(axis=2) - small.min(axis=2)).mean())


def color_filter(item: Item, min_colourfulness: float = 3.0) -> Drop | None:
    """Drop grayscale-looking photos (grayscale files, and colour files that hold gray pixels):
    a generator trained on a few of them learns to emit gray faces."""
    c = colourfulness(item.image)
    if c < min_colourfulness:
        return Drop("grayscale", f"colourfulness {c:.1f} < {min_colourfulness}")
    return None


def extract_face(item: Item, resolution: int = 256, min_face_size: float = DEFAULT_MIN_FACE_SIZE,
                 several_faces: Literal["largest", "drop"] = "largest", upsample: int = 1,
                 detector: Literal["hog", "cnn"] = "hog", mode: Literal["ffhq", "padded"] = "ffhq",
                 embedding: bool = True, framing: str = "ffhq") -> Item | Drop:
    """Detect, choose (models.faces' several-faces policy), align to ``resolution`` and, with
    ``embedding``, compute the dlib identity embedding (used by ``remove_too_similar``; doing it
    here, on the source photo, puts the cost in the parallel workers).

    ``several_faces="largest"`` keeps the largest face (group photos still yield one face),
    ``"drop"`` drops photos with several faces of at least ``min_face_size``. ``framing``: a
    name in :data:`models.faces.FRAMINGS` (the crop the generator will be trained on).
    """
    image = item.image
    faces = detect_faces(image, upsample=upsample, detector=detector)
    try:
        face, _ = choose_face(faces, strict=several_faces == "drop", min_size=min_face_size)
    except NoFaceError:
        return Drop("no face", f"{detector} detector found no face")
    except FaceTooSmallError as e:
        return Drop("face too small",
                    f"largest face {max(f.size for f in e.faces):.0f} px < {min_face_size:.0f} px")
    except SeveralFacesError as e:
        return Drop("several faces", f"{len(e.faces)} faces of at least {min_face_size:.0f} px")
    face = face_landmarks(image, face, 68)
    aligned = align_face(image, face, resolution, mode=mode, framing=FRAMINGS[framing])
    crop_side = float(np.linalg.norm(aligned.quad[3] - aligned.quad[0]))
    item.meta.update(face=face.to_dict(), faces_found=len(faces), crop_side=round(crop_side, 1))
    if embedding:
        item.embedding = identity_embedding(image, face)
    item.image = aligned.image
    return item


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the gray image: low for blurred or enlarged faces. It grows
    with detail per pixel, so thresholds depend on the resolution (see docs/dataset.md)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def quality_filter(item: Item, min_sharpness: float = 50.0, max_upscale: float | None = 2.0,
                   min_face_size: float = 0) -> Drop | None:
    """Drop blurred faces (variance of Laplacian of the aligned face below ``min_sharpness``),
    faces enlarged more than ``max_upscale`` times by alignment (FFHQ crop side in the photo
    smaller than resolution / max_upscale) and faces whose box is below ``min_face_size`` px.
    Run after ``extract_face``."""
    face_size = max(item.meta["face"]["box"][2] - item.meta["face"]["box"][0],
                    item.meta["face"]["box"][3] - item.meta["face"]["box"][1])
    if face_size < min_face_size:
        return Drop("face too small", f"face {face_size:.0f} px < {min_face_size:.0f} px")
    resolution = item.image.shape[0]
    crop_side = item.meta.get("crop_side")
    if max_upscale and crop_side and crop_side * max_upscale < resolution:
        return Drop("low resolution", f"face crop {crop_side:.0f} px enlarged to {resolution} px "
                                      f"(more than {max_upscale:g}×)")
    s = sharpness(item.image)
    if s < min_sharpness:
        return Drop("blurry", f"sharpness {s:.0f} < {min_sharpness:g}")
    return None


def remove_too_similar(item: Item, window: Sequence[Item],
                       similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD) -> Drop | None:
    """Drop an item whose dlib identity embedding lies closer than ``similarity_threshold`` to
    one of the recently kept items (``window``): duplicates and near-duplicates. Compares
    identities, not pixels, so resized, re-encoded or slightly cropped copies are caught too."""
    if item.embedding is None:  # extract_face(embedding=False) or a custom face step
        item.embedding = aligned_face_embedding(item.image)[0] if "crop_side" in item.meta \
            else identity_embedding(item.image)
    candidates = [w for w in window if w.embedding is not None]
    if not candidates:
        return None
    distances = identity_distance(item.embedding, np.stack([w.embedding for w in candidates]))
    nearest = int(np.argmin(distances))
    if distances[nearest] < similarity_threshold:
        return Drop("too similar", f"to {candidates[nearest].name} "
                                   f"(distance {distances[nearest]:.3f})")
    return None


def convert_to_rgb(item: Item) -> Item:
    """Make the image H×W×3 RGB uint8, whatever an earlier custom step left (gray, RGBA,
    floating point in [0, 1] or [0, 255]); images from load_image already are."""
    image = np.asarray(item.image)
    if image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        image = (image[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    item.image = np.ascontiguousarray(image)
    return item
