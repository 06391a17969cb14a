"""Face alignment: the FFHQ recipe, and the thesis's padded crop for passport-style photos.

**FFHQ** (how the training faces of StyleGAN2 were cut, so an uploaded photo must be cut the
same way before it is encoded): from the 68 landmarks take the eye centres (means of points
36–41 and 42–47) and the mouth corners (48, 54). With ``e`` the eye-to-eye vector and ``m`` the
vector from the eyes' midpoint to the mouth's midpoint, the crop's x axis is ``e`` turned by the
perpendicular of ``m`` (so both the eye line and the eyes-to-mouth line set the roll), its
half-side is ``max(2·|e|, 1.8·|m|)``, and its centre is ``eyes' midpoint + 0.1·m``. The square
is mapped to ``resolution × resolution``; parts outside the photo are filled by reflection,
blurred and faded towards the median colour (FFHQ's padding, which the generator has learned).

**Padded** (the thesis's crop for frontal, upright passport-style photos): the detector's box,
made square around its centre, grown by the same margin on every side up to twice the face size
(less where the photo ends, so no pixels are invented), resized to ``resolution``.

**Framing** moves and scales the FFHQ square (:class:`Framing`), for generators trained on
crops framed differently: :data:`UTKFACE_FRAMING` reproduces UTKFace's "aligned & cropped"
chips (a tight crop, forehead to chin), on which the bundled default model was trained. A
bundle names its framing in its manifest (``models.bundle.Bundle.framing``), so photos are cut
the way its training faces were.

Both return the 2×3 affine matrix from source to aligned pixel coordinates, so boxes and
landmarks can be mapped either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .detection import FaceBox

AlignMode = Literal["ffhq", "padded"]
Border = Literal["ffhq", "reflect", "black"]


@dataclass(frozen=True)
class Framing:
    """Where an aligned crop lies relative to the FFHQ square: that square scaled by ``scale``
    about its centre, the centre then moved by (``dx``, ``dy``) FFHQ half-sides along the
    crop's own axes (``dy`` > 0: towards the chin)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.scale) and 0.1 <= self.scale <= 4.0):
            raise ValueError(f"framing scale must be from 0.1 to 4, got {self.scale}")
        if not (np.isfinite(self.dx) and np.isfinite(self.dy) and abs(self.dx) <= 1.0
                and abs(self.dy) <= 1.0):
            raise ValueError(f"framing offsets must be within ±1 half-side, got "
                             f"({self.dx}, {self.dy})")

    def to_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "dx": self.dx, "dy": self.dy}

    @property
    def name(self) -> str:
        """Its name in :data:`FRAMINGS`, or ``"custom"``."""
        return next((n for n, f in FRAMINGS.items() if f == self), "custom")

    @classmethod
    def from_dict(cls, data: dict | None) -> "Framing":
        """The framing a manifest records; FFHQ's when it records none (imported networks)."""
        if not data:
            return FFHQ_FRAMING
        unknown = set(data) - {"scale", "dx", "dy"}
        if unknown:
            raise ValueError(f"unknown framing keys: {', '.join(sorted(unknown))}")
        return cls(float(data.get("scale", 1.0)), float(data.get("dx", 0.0)),
                   float(data.get("dy", 0.0)))


#: FFHQ's own crop (StyleGAN2's published networks).
FFHQ_FRAMING = Framing()
#: UTKFace's aligned & cropped chips, measured on 301 of them (median over chips of dlib's
#: landmarks: the chip is the FFHQ square at 0.64 of its size, centred 0.2 half-sides lower;
#: spread across chips ±0.04 in scale, ±0.025 in offset).
UTKFACE_FRAMING = Framing(scale=0.64, dx=0.0, dy=0.2)
#: Framings by name, for command lines and manifests written by hand.
FRAMINGS = {"ffhq": FFHQ_FRAMING, "utkface": UTKFACE_FRAMING}


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """An aligned face and the transform that made it.

    ``matrix`` maps source pixel-centre coordinates (x, y, 1) to aligned ones; ``quad`` is the
    crop in the source photo as 4 corners (top-left, bottom-left, bottom-right, top-right of
    the aligned image).
    """

    image: np.ndarray
    matrix: np.ndarray
    quad: np.ndarray
    mode: str

    @property
    def resolution(self) -> int:
        return self.image.shape[0]

    def to_aligned(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) source coordinates into the aligned image."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return points @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) aligned coordinates back into the source photo."""
        inverse = np.linalg.inv(np.vstack([self.matrix, [0.0, 0.0, 1.0]]))[:2]
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return points @ inverse[:, :2].T + inverse[:, 2]


def eye_and_mouth_points(landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(left eye centre, right eye centre, left mouth corner, right mouth corner) — "left"
    as seen in the image."""
    lm = _landmarks68(landmarks68)
    return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0), lm[48], lm[54]


def ffhq_quad(landmarks68: np.ndarray, framing: Framing = FFHQ_FRAMING) -> np.ndarray:
    """The FFHQ crop (moved and scaled by ``framing``) as 4 source-image corners (top-left,
    bottom-left, bottom-right, top-right)."""
    eye_l, eye_r, mouth_l, mouth_r = eye_and_mouth_points(landmarks68)
    eye_mid = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (mouth_l + mouth_r) / 2 - eye_mid
    # x axis: the eye line plus the eyes-to-mouth line turned a quarter to point the same way
    # (for an upright face, m = (0, k) becomes (k, 0)): both lines set the roll.
    x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])  # x turned by +90° (image y points down)
    c = eye_mid + eye_to_mouth * 0.1 + framing.dx * x + framing.dy * y
    x, y = x * framing.scale, y * framing.scale
    return np.array([c - x - y, c - x + y, c + x + y, c + x - y])


def padded_quad(box: FaceBox, image_shape: tuple[int, ...], max_factor: float = 2.0) -> np.ndarray:
    """The thesis's padded crop: the box made square, grown symmetrically up to ``max_factor``
    times the face size but never past the photo's edge (a face at the edge gets less margin)."""
    cx, cy = box.center
    half = box.size / 2
    h, w = image_shape[:2]
    room = min(cx - half, cy - half, w - (cx + half), h - (cy + half))
    pad = float(np.clip(room, 0.0, half * (max_factor - 1.0)))
    r = half + pad
    # Edge coordinates → pixel-centre coordinates (the image spans −0.5 … w − 0.5).
    left, top, right, bottom = cx - r - 0.5, cy - r - 0.5, cx + r - 0.5, cy + r - 0.5
    return np.array([[left, top], [left, bottom], [right, bottom], [right, top]])


def align_face(image: np.ndarray, face: FaceBox | np.ndarray, resolution: int,
               mode: AlignMode = "ffhq", border: Border = "ffhq",
               framing: Framing = FFHQ_FRAMING) -> AlignedFace:
    """Cut and resize one face to ``resolution × resolution``.

    ``face``: a :class:`FaceBox` (with 68 landmarks for ``mode="ffhq"``; see
    :func:`~models.faces.detection.face_landmarks`) or a (68, 2) landmark array. ``border``:
    how parts of the crop outside the photo are filled — ``"ffhq"`` (reflect, blur, fade to the
    median colour), ``"reflect"`` or ``"black"``. ``framing``: for ``mode="ffhq"``, the crop
    of the generator's training faces (``bundle.framing``).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise TypeError(f"expected an H×W×3 RGB uint8 array, got {image.dtype} {image.shape}")
    if int(resolution) != resolution or resolution < 8:
        raise ValueError(f"resolution must be an integer ≥ 8, got {resolution}")
    resolution = int(resolution)
    if mode == "ffhq":
        lm = face.landmarks if isinstance(face, FaceBox) else face
        if lm is None:
            raise ValueError("FFHQ alignment needs 68 landmarks: use face_landmarks(image, face)")
        quad = ffhq_quad(lm, framing)
    elif mode == "padded":
        if not isinstance(face, FaceBox):
            lm = _landmarks68(face)
            (l, t), (r, b) = lm.min(axis=0), lm.max(axis=0) + 1
            face = FaceBox(l, t, r, b, 0.0, "landmarks")
        quad = padded_quad(face, image.shape)
    else:
        raise ValueError(f"unknown alignment mode {mode!r}; use 'ffhq' or 'padded'")
    out, matrix = _warp_quad(image, quad, resolution, border)
    return AlignedFace(out, matrix, quad, mode)


def _landmarks68(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got shape {lm.shape}")
    return lm


def _quad_matrix(quad: np.ndarray, resolution: int) -> np.ndarray:
    """Affine map sending the quad's corners to the corners of the output image."""
    import cv2

    lo, hi = -0.5, resolution - 0.5
    src = np.float32([quad[0], quad[1], quad[3]])
    dst = np.float32([[lo, lo], [lo, hi], [hi, lo]])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2×3 affine ``a ∘ b`` (apply b, then a)."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]


def _warp_quad(image: np.ndarray, quad: np.ndarray, resolution: int,
               border: Border) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    matrix = _quad_matrix(quad, resolution)
    h, w = image.shape[:2]
    # Work on the part of the photo under the crop, shrunk with area averaging when the crop is
    # larger than the output: a rotation-only warp then does not alias.
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the crop lies entirely outside the image")
    source = image[y0:y1, x0:x1]
    to_source = np.array([[1.0, 0, -x0], [0, 1.0, -y0]])
    scale = resolution / np.hypot(*(quad[3] - quad[0]))
    if scale < 1.0:
        sw, sh = max(1, round(source.shape[1] * scale)), max(1, round(source.shape[0] * scale))
        sx, sy = sw / source.shape[1], sh / source.shape[0]
        source = cv2.resize(source, (sw, sh), interpolation=cv2.INTER_AREA)
        # pixel centres: x' = (x + 0.5)·s − 0.5
        to_source = _compose(np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]]),
                             to_source)
    warp = _compose(matrix, np.linalg.inv(np.vstack([to_source, [0, 0, 1]]))[:2])
    size = (resolution, resolution)
    mode = cv2.BORDER_CONSTANT if border == "black" else cv2.BORDER_REFLECT_101
    out = cv2.warpAffine(np.ascontiguousarray(source), warp, size, flags=cv2.INTER_CUBIC,
                         borderMode=mode, borderValue=(0, 0, 0))
    if border == "ffhq":
        valid = cv2.warpAffine(np.ones(source.shape[:2], np.float32), warp, size,
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        if valid.min() < 0.999:
            out = _ffhq_fill(out, valid, resolution)
    return out, matrix


def _ffhq_fill(out: np.ndarray, valid: np.ndarray, resolution: int) -> np.ndarray:
    """Blur the reflected padding (fading the blur ~1/3 of the pad width into the photo) and
    blend it towards the photo's median colour with distance, as FFHQ's recipe does."""
    import cv2

    inside = (valid >= 0.5).astype(np.uint8)
    outside_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    inside_dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    pad = 0.3 * resolution
    mask = np.where(inside.astype(bool), -inside_dist, outside_dist) / pad
    img = out.astype(np.float32)
    blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=max(resolution * 0.02, 0.5))
    img += (blurred - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)[..., None]
    median = np.median(out[inside.astype(bool)], axis=0) if inside.any() else img.mean((0, 1))
    img += (median - img) * np.clip(mask, 0.0, 1.0)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
