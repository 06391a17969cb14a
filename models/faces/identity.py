"""128-d identity embeddings (dlib's ResNet face recognition model) and distances between them.

dlib's model maps a face to a point in R^128 where photos of one person lie close together:
Euclidean distance below :data:`SAME_PERSON_THRESHOLD` (0.6) is dlib's usual "same person"
decision (99.38 % on the LFW benchmark by dlib's account). LiGAN uses the distance as a
*similarity scale*, not only as a yes/no: fillers should resemble the suspect (small distance)
without being near-clones of them.

The model's input chip is cut from 5-point landmarks; embeddings are always computed from
5-point landmarks (predicted here when the face carries none, or carries 68) so that embeddings
from different callers are comparable.
"""
from __future__ import annotations

import numpy as np

from . import dlib_models
from .detection import FaceBox, _check_image, _dlib_rect, choose_face, detect_faces, face_landmarks

#: dlib's same-person threshold on the Euclidean distance between two embeddings.
SAME_PERSON_THRESHOLD = 0.6

EMBEDDING_DIM = 128


def identity_embedding(image: np.ndarray, face: FaceBox | None = None,
                       jitters: int = 0) -> np.ndarray:
    """The 128-d identity embedding (float32) of ``face`` in an RGB uint8 image.

    Without ``face`` the largest detected face is used (:class:`~models.faces.errors.NoFaceError`
    if there is none) — convenient for generated images, which show one face. ``jitters`` > 0
    averages that many randomly jittered chips (dlib's option: slower, slightly more stable).
    """
    image = _check_image(image)
    if face is None:
        face = choose_face(detect_faces(image), min_size=0).face
    if face.landmarks is None or len(face.landmarks) != 5:
        face = face_landmarks(image, face, 5)
    dlib = dlib_models.dlib_module()
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
    shape = dlib.full_object_detection(_dlib_rect(face), parts)
    with dlib_models.use("identity") as model:
        descriptor = model.compute_face_descriptor(image, shape, int(jitters))
    return np.asarray(descriptor, dtype=np.float32)


def identity_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between embeddings along the last axis (broadcasts: one against many,
    or many against many). Below :data:`SAME_PERSON_THRESHOLD` means "same person" to dlib."""
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
    return float(d) if d.ndim == 0 else d


def same_person(a: np.ndarray, b: np.ndarray,
                threshold: float = SAME_PERSON_THRESHOLD) -> np.ndarray | bool:
    """dlib's same-person decision: ``identity_distance(a, b) < threshold``."""
    d = identity_distance(a, b)
    return bool(d < threshold) if isinstance(d, float) else d < threshold


#: Where the face sits in an aligned crop when the detector finds none (fractions of the side):
#: the centre 60 %, which holds the eyes, nose and mouth of FFHQ- and UTKFace-style crops.
ALIGNED_FACE_BOX = (0.2, 0.2, 0.8, 0.8)
_EMBED_SIDE = 256


def aligned_face_embedding(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Identity embedding of an already aligned face crop (a generated face or an aligned photo).

    The crop is enlarged to 256 px (dlib's detector scans 80-px windows, larger than a 64-px
    face) and searched for a face; when none is found — an unfinished or odd generated face —
    the embedding is taken from the centre box where alignment puts the face. Returns the
    embedding and whether a face was detected, so callers can count the undetected ones.
    """
    import cv2

    image = _check_image(image)
    side = max(image.shape[:2])
    if side < _EMBED_SIDE:
        image = cv2.resize(image, (_EMBED_SIDE, _EMBED_SIDE), interpolation=cv2.INTER_CUBIC)
    faces = detect_faces(image, upsample=0)
    detected = bool(faces)
    if detected:
        face = faces[0]
    else:
        h, w = image.shape[:2]
        l, t, r, b = ALIGNED_FACE_BOX
        face = FaceBox(left=l * w, top=t * h, right=r * w, bottom=b * h, score=0.0,
                       detector="aligned-crop")
    return identity_embedding(image, face), detected
