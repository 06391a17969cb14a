"""A suspect's photo → an aligned face → a latent: the first step of the lineup workflow.

With an encoder in the bundle its output is the latent (the fast path) or the starting point
of the optimisation projector; without one the projector starts at ``w_avg``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from models.encoder import ENCODER_PART, shared_encoder
from models.faces import (FFHQ_FRAMING, Framing, align_face, aligned_face_embedding, find_face,
                          load_image)
from models.images import to_uint8
from models.projector import ProgressFn, ProjectionResult, project
from models.records import FaceRecord, face_record, latent_to_list


@dataclasses.dataclass
class Inversion:
    record: FaceRecord  # the reconstruction, as a face record (latent w+)
    aligned: np.ndarray  # uint8 [R, R, 3]: the photo's face, aligned like the training data
    projection: ProjectionResult
    warnings: list[str]


#: Projector steps for a photo when the caller names none: the web UI's and the API's. With the
#: default bundle and the photo radius set by each reconstruction (2026-12-06, docs/lineup.md),
#: 300 steps left 96.2 % of 26 London people's reconstructions within dlib's same-person
#: distance of their photos and 92.8 % of page 1 in the look-alike band (28 held-out UTKFace
#: adults: 92.9 % and 88.2 %); 200 steps 88.5 % (89.3 %); 400 steps 100 % and 94.2 % (92.9 % and
#: 88.1 %) for about 3.5 s more a photo on two CPU cores.
PHOTO_STEPS = 300


def align_photo(photo: str | os.PathLike | bytes, resolution: int, face_index: int | None = None,
                mode: Literal["ffhq", "padded"] = "ffhq",
                framing: Framing = FFHQ_FRAMING) -> tuple[np.ndarray, list[str]]:
    """Load a photo (guarded decoding), find the face (several-faces policy) and align it
    (``framing``: the bundle's, so the face is cut like its training faces)."""
    loaded = load_image(photo)
    choice = find_face(loaded.image, index=face_index)
    aligned = align_face(loaded.image, choice.face, resolution, mode=mode, framing=framing)
    return aligned.image, list(loaded.warnings) + list(choice.warnings)


def invert_photo(bundle, photo: str | os.PathLike | bytes, *, face_index: int | None = None,
                 align_mode: Literal["ffhq", "padded"] = "ffhq", steps: int = 300,
                 time_limit: float | None = None, space: Literal["w", "w+"] = "w+",
                 owner: str = "", source_name: str = "",
                 progress: ProgressFn | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Inversion:
    """Align the photo's face and find the latent that reproduces it.

    With an encoder in the bundle its output is the answer (``steps=0``) or the projector's
    starting point; without one the projector starts from ``w_avg`` (and needs ``steps`` ≥ 1).
    """
    aligned, warnings = align_photo(photo, bundle.resolution, face_index, align_mode,
                                    bundle.framing)
    init_ws = None
    method = "projector"
    if bundle.has_part(ENCODER_PART):
        init_ws = shared_encoder(bundle)(aligned[None])[0]
        method = "encoder+projector" if steps else "encoder"
    elif steps < 1:
        raise ValueError("this bundle has no encoder, so the projector needs at least 1 step")
    if steps:
        result = project(bundle, aligned, space=space, steps=steps, time_limit=time_limit,
                         init_ws=init_ws, progress=progress, should_stop=should_stop)
    else:
        image = to_uint8(bundle.generator.synthesize(init_ws[None]).numpy())[0]
        result = ProjectionResult(ws=init_ws, image=image, steps=0, seconds=0.0, losses=[],
                                  stopped="steps")
    record = face_record(bundle, latent_space="w+", latent=latent_to_list(result.ws),
                        operation="invert",
                        parameters={"method": method, "space": space, "steps": result.steps,
                                    "align": align_mode, "face_index": face_index,
                                    "photo": source_name, "stopped": result.stopped,
                                    **photo_parameters(bundle, aligned)},
                        owner=owner)
    return Inversion(record=record, aligned=aligned, projection=result, warnings=warnings)


# The parameter of a face record that holds the dlib identity embedding of the photo the face
# was made from (inversion, refine): fillers measure their likeness to the suspect against the
# photo itself, not against its reconstruction, whatever later task starts from the record.
PHOTO_IDENTITY = "photo_identity"


def photo_identity(aligned: np.ndarray) -> list | None:
    """The identity embedding of an aligned photo as a list for a record (None when dlib finds
    no face in it: then nothing can be measured against the photo)."""
    embedding, found = aligned_face_embedding(aligned)
    return latent_to_list(embedding) if found else None


def photo_parameters(bundle, aligned: np.ndarray) -> dict:
    """What a record made from a photo keeps of it: the identity embedding (fillers measure
    likeness against it) and, with an attribute model, the photo's trait reading (fillers
    match it; :mod:`models.filler_traits`), its gender, ethnicity and age group by the bundle's
    trait probe on that embedding where it has one (:mod:`models.attributes.identity_probe`)."""
    from models.attributes.identity_probe import read_photo
    from models.filler_traits import PHOTO_ATTRIBUTES, read_traits

    identity = photo_identity(aligned)
    out: dict = {PHOTO_IDENTITY: identity}
    readings = read_traits(bundle, aligned[None])
    reading = read_photo(bundle, readings[0] if readings else None, identity)
    if reading:
        out[PHOTO_ATTRIBUTES] = reading
    return out


def record_photo_identity(record: FaceRecord) -> np.ndarray | None:
    """The embedding of the photo ``record`` was made from, or None (not from a photo)."""
    value = record.parameters.get(PHOTO_IDENTITY)
    return np.asarray(value, np.float32) if value else None


def read_record(reference: str) -> FaceRecord:
    """``RECORDS.jsonl#FACE_ID`` → that face record (clear errors for a missing file or id)."""
    path, _, face_id = reference.partition("#")
    if not face_id:
        raise ValueError(f"a face reference is RECORDS.jsonl#FACE_ID, got {reference!r}")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no records file {file}")
    with open(file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{file}:{number} is not a JSON face record") from None
            if data.get("id") == face_id:
                return FaceRecord.from_dict(data)
    raise ValueError(f"no face {face_id} in {file}")
