"""Face detection, landmarks and the several-faces policy, on dlib.

Boxes are in pixel-edge coordinates of the full image: ``left``/``top`` inclusive,
``right``/``bottom`` exclusive, so ``width = right - left``; they may reach past the image edge
when a face is cut off. Landmarks are pixel-centre (x, y) coordinates, in the order of dlib's
predictors: 68 points in the iBUG 300-W layout (jaw 0–16, brows 17–26, nose 27–35, eyes 36–47,
mouth 48–67) or 5 points (eye corners 0–3, under the nose 4).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple, Sequence

import numpy as np

from . import dlib_models
from .errors import FaceTooSmallError, NoFaceError, SeveralFacesError

#: Default minimum face size (box side, pixels) for a usable suspect photo. dlib's HOG detector
#: scans 80-pixel windows; a smaller face gives an aligned FFHQ crop under ~180 pixels, i.e. an
#: enlarged, blurry input even for a 256-pixel bundle.
DEFAULT_MIN_FACE_SIZE = 80

#: Detection runs on a copy no larger than this (longest side, pixels); boxes are scaled back and
#: landmarks are found on the full image. A 12-megapixel phone photo would otherwise cost seconds.
DEFAULT_MAX_DETECT_SIDE = 1280

Detector = Literal["hog", "cnn"]


@dataclass(frozen=True, eq=False)
class FaceBox:
    """One detected face: its box, the detector's score and (on demand) landmarks.

    ``score`` is the HOG detector's SVM margin (about 0 at the threshold, ~1–3 for clear faces)
    or the CNN detector's confidence; they are not comparable across detectors.
    """

    left: float
    top: float
    right: float
    bottom: float
    score: float
    detector: str = "hog"
    landmarks: np.ndarray | None = None  # (68, 2) or (5, 2) float64, x then y

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def size(self) -> float:
        """Side of the box (its larger dimension), the measure used by ``min_size``."""
        return max(self.width, self.height)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def describe(self) -> str:
        """Short human-readable position, e.g. ``'120×120 px at (35, 80)'``."""
        return f"{self.width:.0f}×{self.height:.0f} px at ({self.left:.0f}, {self.top:.0f})"

    def to_dict(self) -> dict:
        """JSON-ready form for APIs and the web UI (box as [left, top, right, bottom])."""
        out = {"box": [round(float(v), 2) for v in (self.left, self.top, self.right, self.bottom)],
               "score": round(float(self.score), 4), "detector": self.detector}
        if self.landmarks is not None:
            out["landmarks"] = np.round(self.landmarks, 2).tolist()
        return out


class FaceChoice(NamedTuple):
    """The face :func:`choose_face` picked, and warnings for the user (e.g. other faces seen)."""

    face: FaceBox
    warnings: list[str]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an H×W×3 RGB uint8 array (see load_image), got "
                        f"{image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def detect_faces(image: np.ndarray, upsample: int = 1, min_size: float = 0,
                 landmarks: Literal[5, 68] | None = None, detector: Detector = "hog",
                 max_side: int | None = DEFAULT_MAX_DETECT_SIDE) -> list[FaceBox]:
    """All faces in an RGB uint8 image, largest first (an empty list when there are none).

    ``upsample``: how many times dlib doubles the image before scanning; each doubling halves
    the smallest detectable face (HOG: ~80 px at 0, ~40 px at 1) and costs ~4× the time.
    ``min_size`` drops smaller boxes (use :func:`choose_face` to turn "only small faces" into an
    error). ``landmarks`` adds 5- or 68-point landmarks to every face. ``detector``: ``"hog"``
    (dlib's frontal HOG + SVM; ~0.1 s for a 512-px photo on one CPU core) or ``"cnn"`` (dlib's
    MMOD CNN; more robust to pose and blur but several seconds per photo on a CPU).
    """
    image = _check_image(image)
    h, w = image.shape[:2]
    scale = 1.0
    small = image
    if max_side and max(h, w) > max_side:
        import cv2

        scale = max_side / max(h, w)
        small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    faces = []
    for (l, t, r, b), score in _run_detector(small, upsample, detector):
        face = FaceBox(l / scale, t / scale, r / scale, b / scale, float(score), detector)
        if face.size >= min_size:
            faces.append(face)
    faces.sort(key=lambda f: (f.area, f.score), reverse=True)
    if landmarks is not None:
        faces = [face_landmarks(image, f, landmarks) for f in faces]
    return faces


def _run_detector(image: np.ndarray, upsample: int, detector: Detector):
    if detector == "hog":
        with dlib_models.use("hog_detector") as hog:
            rects, scores, _ = hog.run(image, upsample, 0.0)
        return [((r.left(), r.top(), r.right() + 1, r.bottom() + 1), s)
                for r, s in zip(rects, scores)]
    if detector == "cnn":
        with dlib_models.use("cnn_detector") as cnn:
            found = cnn(image, upsample)
        return [((d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1),
                 d.confidence) for d in found]
    raise ValueError(f"unknown detector {detector!r}; use 'hog' or 'cnn'")


def _dlib_rect(face: FaceBox):
    dlib = dlib_models.dlib_module()
    return dlib.rectangle(int(round(face.left)), int(round(face.top)),
                          int(round(face.right)) - 1, int(round(face.bottom)) - 1)


def face_landmarks(image: np.ndarray, face: FaceBox, points: Literal[5, 68] = 68) -> FaceBox:
    """``face`` with 5- or 68-point landmarks predicted inside its box (a new FaceBox)."""
    if points not in (5, 68):
        raise ValueError("points must be 5 or 68")
    image = _check_image(image)
    with dlib_models.use(f"landmarks{points}") as predictor:
        shape = predictor(image, _dlib_rect(face))
    coords = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    return replace(face, landmarks=coords)


def choose_face(faces: Sequence[FaceBox], index: int | None = None, strict: bool = False,
                min_size: float = DEFAULT_MIN_FACE_SIZE) -> FaceChoice:
    """Apply the several-faces policy to the output of :func:`detect_faces`.

    - no face → :class:`NoFaceError`; only faces smaller than ``min_size`` →
      :class:`FaceTooSmallError`;
    - ``index`` given → that face (an index into ``faces``, as shown to the user);
    - several faces of at least ``min_size``: the largest, with a warning listing the others,
      or :class:`SeveralFacesError` carrying all of them when ``strict``.
    """
    faces = list(faces)
    if not faces:
        raise NoFaceError(
            "No face was found in the photo. Use a photo in which one face is clearly visible, "
            "looking roughly towards the camera, not covered (sunglasses, mask, hands) and at "
            f"least {min_size:.0f} pixels wide.")
    if index is not None:
        if not -len(faces) <= index < len(faces):
            raise IndexError(f"face index {index} is out of range: {len(faces)} face(s) found")
        usable = [faces[index]]
    else:
        usable = [f for f in faces if f.size >= min_size]
    if not usable or usable[0].size < min_size:
        largest = usable[0] if usable else max(faces, key=lambda f: f.area)
        raise FaceTooSmallError(
            f"The face in the photo is too small: {largest.size:.0f} pixels wide, the minimum "
            f"is {min_size:.0f}. Use a larger or closer photo of the face (cropping a larger "
            "photo is fine; enlarging a small one is not).", faces, int(min_size))
    if len(usable) == 1:
        return FaceChoice(usable[0], [])
    listing = "; ".join(f"#{faces.index(f)}: {f.describe()}" for f in usable)
    if strict:
        raise SeveralFacesError(
            f"The photo shows {len(usable)} faces ({listing}). Choose one of them, or crop the "
            "photo to the suspect's face.", usable)
    chosen = max(usable, key=lambda f: (f.area, f.score))
    return FaceChoice(chosen, [
        f"The photo shows {len(usable)} faces ({listing}); the largest, "
        f"#{faces.index(chosen)}, was used. Choose another one if that is not the suspect."])


def find_face(image: np.ndarray, index: int | None = None, strict: bool = False,
              min_size: float = DEFAULT_MIN_FACE_SIZE, upsample: int = 1,
              detector: Detector = "hog", landmarks: Literal[5, 68] = 68) -> FaceChoice:
    """Detect, choose (see :func:`choose_face`) and add landmarks to the chosen face only."""
    faces = detect_faces(image, upsample=upsample, detector=detector)
    face, warnings = choose_face(faces, index=index, strict=strict, min_size=min_size)
    return FaceChoice(face_landmarks(image, face, landmarks), warnings)
