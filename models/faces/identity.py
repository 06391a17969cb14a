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
#: The two identity measures, as face records name them: dlib's descriptor and the bundle's
#: identity network (its distillation, :mod:`models.faces.identity_net`, in the bundle part
#: ``IDENTITY_PART``). Kept here, free of TensorFlow, for modules that only name them.
DLIB_MEASURE = "dlib"
NET_MEASURE = "identity-net"
IDENTITY_PART = "identity"


def identity_measure(bundle) -> str:
    """The measure LiGAN ranks faces by with this bundle: its identity network when it has
    one, dlib's descriptor otherwise (imported bundles, bundles made before the network)."""
    return NET_MEASURE if bundle.has_part(IDENTITY_PART) else DLIB_MEASURE

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
#: Side aligned crops are scaled to before dlib looks at them: its HOG detector scans 80-px
#: windows, so 64-px faces are enlarged, and large crops are reduced to the same scale.
ALIGNED_DETECT_SIDE = 256


def aligned_detection_scale(image: np.ndarray) -> np.ndarray:
    """An aligned crop scaled to :data:`ALIGNED_DETECT_SIDE` (bicubic up, area-averaged down)."""
    import cv2

    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    scale = ALIGNED_DETECT_SIDE / max(h, w)
    if abs(scale - 1) < 1e-6:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


def aligned_face_count(image: np.ndarray) -> int:
    """How many faces dlib finds in an aligned crop, at the scale its detector sees best."""
    return len(detect_faces(aligned_detection_scale(_check_image(image)), upsample=0))


def aligned_face_count_and_embedding(image: np.ndarray, embed_undetected: bool = True
                                     ) -> tuple[int, np.ndarray | None]:
    """How many faces dlib finds in an aligned crop (a generated face or an aligned photo), and
    the identity embedding of the largest — or, when it finds none (an unfinished or odd
    generated face), of the centre box where alignment puts the face, so that every image has
    an embedding and callers can count the undetected ones. ``embed_undetected`` False skips
    that (costly) embedding: (0, None)."""
    image = aligned_detection_scale(_check_image(image))
    faces = detect_faces(image, upsample=0)
    if faces:
        face = faces[0]
    elif not embed_undetected:
        return 0, None
    else:
        h, w = image.shape[:2]
        l, t, r, b = ALIGNED_FACE_BOX
        face = FaceBox(left=l * w, top=t * h, right=r * w, bottom=b * h, score=0.0,
                       detector="aligned-crop")
    return len(faces), identity_embedding(image, face)


def aligned_face_embedding(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Identity embedding of an already aligned face crop, and whether a face was detected
    (:func:`aligned_face_count_and_embedding`)."""
    count, embedding = aligned_face_count_and_embedding(image)
    return embedding, count > 0
