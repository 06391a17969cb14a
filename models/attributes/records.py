"""Attribute predictions and edits as face records.

Face records have fixed fields, so a face's predicted attributes are kept under
``parameters["attributes"]`` (the dict :func:`predict_attributes` returns for it). Matching
faces and edited faces are new records whose latent is their w / w+ (after truncation), so they
re-render bit for bit and can start the next operation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from models.attributes.directions import Directions, edit
from models.attributes.filter import FilterSpec, MatchResult
from models.attributes.model import predict_attributes
from models.fillers import render
from models.generate import record_ws, render_record
from models.records import FaceRecord, face_record, latent_to_list


def annotate(bundle, records: Sequence[FaceRecord], head_pose: bool = False) -> list[dict]:
    """Render each record (bit-identical to its image), predict (with the landmark head pose
    when asked), and store the prediction in ``record.parameters["attributes"]``; returns the
    predictions."""
    if not records:
        return []
    images = np.stack([render_record(bundle, r) for r in records])
    predictions = predict_attributes(bundle, images, head_pose=head_pose)
    for record, prediction in zip(records, predictions):
        record.parameters["attributes"] = prediction
    return predictions


def matching_records(bundle, result: MatchResult, spec: FilterSpec,
                     owner: str = "") -> list[FaceRecord]:
    """Records of the faces :func:`generate_matching` accepted (latent: their w)."""
    return [face_record(bundle, latent_space="w",
                       latent=latent_to_list(ws[0]), operation="generate_matching",
                       parameters={"filter": spec.text, "guided": result.guided,
                                   "candidates_tried": result.candidates,
                                   "attributes": prediction},
                       owner=owner)
            for ws, prediction in zip(result.ws, result.predictions)]


def edit_strip(bundle, record: FaceRecord, attribute: str, strengths: Sequence[float],
               layers: Sequence[int] | None = None,
               owner: str = "") -> tuple[list[FaceRecord], np.ndarray]:
    """The face of ``record`` edited along ``attribute``'s direction at each strength (the
    strip the UI shows); records carry their predictions, parent = ``record``."""
    if not strengths or len(strengths) > 64:
        raise ValueError(f"give 1 to 64 strengths, got {len(strengths)}")
    direction = Directions.from_bundle(bundle).get(attribute)
    base = record_ws(bundle, record)
    ws = np.stack([edit(base, direction, float(s), layers) for s in strengths])
    images = render(bundle.generator, ws)
    predictions = predict_attributes(bundle, images)
    chosen = None if layers is None else sorted(set(int(i) for i in layers))
    records = [face_record(bundle, latent_space="w+", latent=latent_to_list(w),
                          operation="attribute_edit",
                          parameters={"attribute": attribute, "strength": float(s),
                                      "layers": chosen, "attributes": p},
                          parents=[record.id], owner=owner)
               for w, s, p in zip(ws, strengths, predictions)]
    return records, images
