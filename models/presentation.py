"""Presentation parity: every lineup member is shown through one pipeline, and the members whose
low-level look stands out are named.

A witness must not be able to pick the suspect by the picture rather than the face: a sharp
photograph among upscaled generated faces, a brighter background or a colour cast singles a
member out. :func:`present` brings every member, suspect included, from the bundle's resolution
to the display size with the same resampling (optionally with the lineup's common brightness
and contrast, or in grey). :func:`parity_check` measures each member's sharpness, brightness,
contrast, saturation, colour balance and background and reports the members that are outliers
among the lineup, the suspect first.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

#: Robust z-score above which a member is an outlier on a measure.
OUTLIER_Z = 2.5


@dataclasses.dataclass(frozen=True)
class Measure:
    """One low-level statistic. ``log``: compared as ratios (sharpness spans decades).
    ``floor``: the smallest spread assumed, so that near-identical members raise no warning
    over differences nobody can see."""

    name: str
    label: str
    more: str
    less: str
    floor: float
    log: bool = False


MEASURES: tuple[Measure, ...] = (
    Measure("sharpness", "sharpness (variance of the Laplacian)", "sharper", "blurrier",
            floor=0.25, log=True),
    Measure("brightness", "brightness (mean luma, 0–255)", "brighter", "darker", floor=8.0),
    Measure("contrast", "contrast (luma standard deviation)", "more contrasted",
            "flatter", floor=5.0),
    Measure("saturation", "colour saturation (mean HSV saturation, 0–1)", "more colourful",
            "greyer", floor=0.04),
    Measure("warmth", "colour balance (mean red minus blue)", "warmer", "cooler", floor=6.0),
    Measure("background", "background brightness (mean luma of the outer border)",
            "has a brighter background", "has a darker background", floor=10.0),
)

#: Side of the square every member is measured at, so that sizes do not change the numbers.
MEASURE_SIDE = 128


def present(image: np.ndarray | Image.Image, resolution: int, cell: int, *,
            grayscale: bool = False) -> Image.Image:
    """``image`` as a lineup shows it: first at the bundle's ``resolution`` (a photo loses
    the detail a generated face never had), then resampled to ``cell`` × ``cell`` with Lanczos,
    the same for every member; grey if ``grayscale``."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(_rgb(image), "RGB")
    im = im.convert("RGB")
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.LANCZOS)
    if cell != resolution:
        im = im.resize((cell, cell), Image.LANCZOS)
    return _grey(im) if grayscale else im


def present_members(images: Sequence[np.ndarray | Image.Image], resolution: int, cell: int, *,
                    normalise: bool = False, grayscale: bool = False) -> list[Image.Image]:
    """Every member of a lineup as it is shown: :func:`present` each, then (``normalise``) one
    tone and sharpness for all, then grey for all (``grayscale``)."""
    shown = [present(im, resolution, cell) for im in images]
    if normalise:
        shown = match_sharpness(normalise_tone(shown))
    return [_grey(im) for im in shown] if grayscale else shown


def _grey(im: Image.Image) -> Image.Image:
    return im.convert("L").convert("RGB")


def normalise_tone(images: Sequence[Image.Image]) -> list[Image.Image]:
    """The members with one brightness and contrast: each image's luma is mapped linearly to
    the lineup's median mean and median standard deviation (colours keep their hue)."""
    arrays = [np.asarray(im.convert("RGB"), np.float32) for im in images]
    lumas = [_luma(a) for a in arrays]
    target_mean = float(np.median([y.mean() for y in lumas]))
    target_std = float(np.median([y.std() for y in lumas]))
    out = []
    for a, y in zip(arrays, lumas):
        scale = target_std / max(float(y.std()), 1e-3)
        shifted = (a - y.mean()) * scale + target_mean
        out.append(Image.fromarray(np.clip(np.rint(shifted), 0, 255).astype(np.uint8), "RGB"))
    return out


def match_sharpness(images: Sequence[Image.Image], tolerance: float = 1.25) -> list[Image.Image]:
    """The members with no one sharper than the rest: an image whose sharpness exceeds the
    lineup's median by more than ``tolerance``× is blurred (Gaussian, the smallest sigma found
    by bisection) down to the median. Blurrier members are left alone: detail cannot be
    added back."""
    values = [sharpness(im) for im in images]
    target = float(np.median(values))
    out = []
    for im, value in zip(images, values):
        if value <= target * tolerance:
            out.append(im)
            continue
        a = np.asarray(im.convert("RGB"))
        low, high = 0.0, 0.02 * max(a.shape[:2])
        while sharpness(_blur(a, high)) > target and high < max(a.shape):
            low, high = high, high * 2
        for _ in range(12):
            mid = (low + high) / 2
            if sharpness(_blur(a, mid)) > target:
                low = mid
            else:
                high = mid
        out.append(Image.fromarray(_blur(a, high), "RGB"))
    return out


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    return a if sigma <= 0 else cv2.GaussianBlur(a, (0, 0), sigmaX=sigma, sigmaY=sigma)


def sharpness(image: np.ndarray | Image.Image) -> float:
    """The variance of the Laplacian of the image's luma at :data:`MEASURE_SIDE` px (the
    ``sharpness`` of :func:`member_statistics`)."""
    return _laplacian_variance(_luma(_measured(image)))


def member_statistics(image: np.ndarray | Image.Image) -> dict[str, float]:
    """Every measure of :data:`MEASURES` for one RGB image, measured at
    :data:`MEASURE_SIDE` px."""
    a = _measured(image)
    y = _luma(a)
    border = max(2, MEASURE_SIDE // 10)
    ring = np.ones(y.shape, bool)
    ring[border:-border, border:-border] = False
    hsv = cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2HSV)
    return {
        "sharpness": _laplacian_variance(y),
        "brightness": float(y.mean()),
        "contrast": float(y.std()),
        "saturation": float(hsv[..., 1].mean() / 255.0),
        "warmth": float((a[..., 0] - a[..., 2]).mean()),
        "background": float(y[ring].mean()),
    }


@dataclasses.dataclass(frozen=True)
class ParityWarning:
    """Member ``position`` stands out on ``measure`` (``z``: its robust z-score)."""

    position: int
    role: str
    measure: str
    value: float
    median: float
    z: float
    message: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parity_check(members: Sequence[dict]) -> dict:
    """Outliers among ``members`` (each ``{"position", "role", "image"}``, ``role`` "suspect"
    or "filler"). Returns ``{"members": [{"position", "role", "statistics"}], "warnings":
    [...], "fair": bool}``, the suspect's warnings first. Needs at least three members to
    tell an outlier from a pair."""
    stats = [member_statistics(m["image"]) for m in members]
    warnings: list[ParityWarning] = []
    if len(members) >= 3:
        for measure in MEASURES:
            values = np.array([s[measure.name] for s in stats], np.float64)
            scores, median = _robust_z(values, measure)
            for m, value, z in zip(members, values, scores):
                if abs(z) > OUTLIER_Z:
                    warnings.append(_warning(m, measure, float(value), median, float(z)))
    warnings.sort(key=lambda w: (w.role != "suspect", w.position, -abs(w.z)))
    return {"members": [{"position": m["position"], "role": m["role"], "statistics": s}
                        for m, s in zip(members, stats)],
            "warnings": [w.to_dict() for w in warnings],
            "fair": not warnings,
            "measures": {m.name: m.label for m in MEASURES}}


def _robust_z(values: np.ndarray, measure: Measure) -> tuple[np.ndarray, float]:
    x = np.log(np.maximum(values, 1e-6)) if measure.log else values
    median = float(np.median(x))
    spread = max(1.4826 * float(np.median(np.abs(x - median))), measure.floor)
    typical = float(np.exp(median)) if measure.log else median
    return (x - median) / spread, typical


def _warning(member: dict, measure: Measure, value: float, median: float,
             z: float) -> ParityWarning:
    who = "the suspect" if member["role"] == "suspect" else "a filler"
    how = measure.more if z > 0 else measure.less
    if measure.log:
        ratio = value / median if z > 0 else median / max(value, 1e-9)
        amount = f"{ratio:.1f}× the lineup's median"
    else:
        amount = f"{value:.3g} against a median of {median:.3g}"
    verb = "" if how.startswith("has ") else "is "
    message = (f"Member {member['position']} ({who}) {verb}{how} than the others: "
               f"{measure.label} {amount}.")
    return ParityWarning(position=int(member["position"]), role=member["role"],
                         measure=measure.name, value=round(value, 4), median=round(median, 4),
                         z=round(z, 2), message=message)


def _measured(image: np.ndarray | Image.Image) -> np.ndarray:
    im = image if isinstance(image, Image.Image) else Image.fromarray(_rgb(image), "RGB")
    return np.asarray(im.convert("RGB").resize((MEASURE_SIDE, MEASURE_SIDE), Image.LANCZOS),
                      np.float32)


def _laplacian_variance(y: np.ndarray) -> float:
    return float(cv2.Laplacian(y.astype(np.float64), cv2.CV_64F).var())


def _luma(a: np.ndarray) -> np.ndarray:
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]
