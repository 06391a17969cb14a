"""Face records: what made every generated face, so that it can be reproduced bit for bit.

See DESIGN.md: a record names the bundle by hash, stores the latent itself (z, w or w+; never
only a seed), the noise mode and seed, truncation, the operation with its parameters, the parent
faces, the creation time and the owner.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence, TextIO

import numpy as np

LatentSpace = Literal["z", "w", "w+"]


def new_face_id() -> str:
    return uuid.uuid4().hex


@dataclasses.dataclass
class FaceRecord:
    """One generated face. ``latent`` is a nested list of floats in ``latent_space``."""

    bundle_hash: str
    latent_space: LatentSpace
    latent: list
    operation: str
    parameters: dict[str, Any]
    noise_mode: str = "const"
    noise_seed: int = 0
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    # What the generator rendered it in (models.precision); re-rendering uses the same.
    precision: str = "float32"
    parents: list[str] = dataclasses.field(default_factory=list)
    owner: str = ""
    image: str | None = None
    id: str = dataclasses.field(default_factory=new_face_id)
    created: str = dataclasses.field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def latent_array(self) -> np.ndarray:
        return np.asarray(self.latent, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON types. The latent's nested lists are shared with the
        record, not copied: ``dataclasses.asdict`` deep-copies them, which for a page of w+
        latents cost more than writing the page's PNGs."""
        d = {f.name: getattr(self, f.name) for f in _FIELDS}
        d["parameters"] = copy.deepcopy(self.parameters)
        d["parents"] = list(self.parents)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaceRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown face record field(s): {', '.join(unknown)}")
        if data.get("latent_space") not in ("z", "w", "w+"):
            raise ValueError(f"latent_space must be z, w or w+, got {data.get('latent_space')!r}")
        return cls(**data)


def face_record(bundle, **fields: Any) -> FaceRecord:
    """A new record of a face rendered now by ``bundle``'s generator: its hash and its
    rendering precision filled in."""
    return FaceRecord(bundle_hash=bundle.hash, precision=bundle.generator.precision, **fields)


def latent_to_list(latent: np.ndarray) -> list:
    """float32 values as Python floats; float32 → float64 → float32 round-trips exactly."""
    return np.asarray(latent, dtype=np.float32).astype(np.float64).tolist()


def write_faces(records: Sequence[FaceRecord], images: Iterable[np.ndarray],
                folder: str | os.PathLike,
                name: Callable[[int, FaceRecord], str] | None = None,
                log: TextIO | None = None) -> None:
    """Save each record's image as a PNG in ``folder`` and, given ``log`` (an open
    ``records.jsonl``), append the record to it as one JSON line, the PNG first so that no line
    points to a missing file. ``name(i, record)`` gives the i-th file name, kept in
    ``record.image``; without it the records' own ``image`` names are used."""
    from models.images import save_png

    folder = Path(folder)
    for i, (rec, img) in enumerate(zip(records, images)):
        if name is not None:
            rec.image = name(i, rec)
        save_png(img, folder / rec.image)
        if log is not None:
            log.write(rec.to_json() + "\n")


_FIELDS = dataclasses.fields(FaceRecord)
