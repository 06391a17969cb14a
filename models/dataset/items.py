"""What flows through the dataset pipeline: an :class:`Item` per photo, or a :class:`Drop`.

An item carries everything a later step or the output needs: the source path (reported and
written into the shards), the current image (the photo, later the aligned face), the labels
parsed from the file name (kept so attribute models can train on them), the identity embedding
when ``extract_face`` computed one, and free-form metadata (detected face, load warnings).
Items cross process boundaries (the worker pool), so they hold only picklable plain data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: UTKFace file names: ``AGE_GENDER_RACE_DATETIME.jpg[.chip.jpg]``; gender 0 male, 1 female;
#: race 0 white, 1 black, 2 asian, 3 indian, 4 others.
UTKFACE_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_\d+")

THUMB_SIDE = 96


@dataclass
class Item:
    """One photo on its way through the pipeline (see the module docstring)."""

    path: str
    image: np.ndarray | None = None
    labels: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None

    @property
    def name(self) -> str:
        """The file name, as reports and contact sheets show it."""
        return Path(self.path).name


@dataclass(frozen=True)
class Drop:
    """A step's decision to drop an item: ``reason`` is a short category that groups drops in the
    report and names the contact sheet ("corrupt", "no face", "too similar"); ``detail`` says
    what exactly was wrong with this file."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def parse_labels(path: str) -> dict[str, int]:
    """Labels encoded in a file name: UTKFace's ``age``, ``gender``, ``race`` (empty if none)."""
    m = UTKFACE_NAME.match(Path(path).name)
    if not m:
        return {}
    age, gender, race = (int(g) for g in m.groups())
    return {"age": age, "gender": gender, "race": race}


def thumbnail(image: np.ndarray | None, side: int = THUMB_SIDE) -> np.ndarray | None:
    """A small copy (longest side ``side``) of an image for contact sheets; None stays None."""
    if image is None:
        return None
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
