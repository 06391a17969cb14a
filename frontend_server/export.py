"""Lineup export: a numbered composite PNG, a ZIP of the single faces and a JSON record.

Every member goes through one pipeline (``models.presentation``): generated faces already share
the alignment of the bundle; the suspect's own photo is aligned with the same recipe and the
bundle's framing (``models.faces.align_face``, ``Bundle.framing``) at the bundle's resolution,
and then every face is resampled to the display size the same way, optionally with one tone and
sharpness for all and in grey (the lineup's ``presentation`` options). The JSON record names
for every position how the face was made (bundle hash, latent, operation, parameters, parents'
records) so the lineup can be reproduced, and carries the presentation-parity check.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from frontend_server import faces as face_records
from frontend_server.errors import ApiError
from models.presentation import parity_check, present_members

CELL = 256          # every face is scaled to CELL × CELL pixels
LABEL = 44          # height of the number band under each face
MARGIN = 16


#: The presentation options a lineup may set, all off by default.
PRESENTATION_OPTIONS = {
    "normalise": "one brightness, contrast and sharpness for every member",
    "grayscale": "every member in grey",
}


@dataclasses.dataclass(frozen=True)
class BundlePresentation:
    """What the bundle says about showing its faces: the framing to cut a photo with, the
    resolution every member is brought to, and a notice every lineup must carry (or None)."""

    framing: Any
    resolution: int | None
    notice: str | None


def bundle_presentation(bundle: str | Path) -> BundlePresentation:
    """Framing, resolution and research-only notice of the bundle at ``bundle`` (defaults
    when its manifest cannot be read: FFHQ's framing, the faces' own size, no notice)."""
    from models.bundle import BundleError, manifest_framing, read_manifest, research_only_notice

    try:
        manifest = read_manifest(bundle)
        return BundlePresentation(manifest_framing(manifest), int(manifest["resolution"]),
                                  research_only_notice(manifest))
    except (BundleError, OSError, KeyError, TypeError, ValueError):
        return BundlePresentation(None, None, None)


def presentation_options(lineup: dict) -> dict[str, bool]:
    """The lineup's presentation options, every one named (off when not set)."""
    options = lineup.get("presentation") or {}
    return {k: bool(options.get(k)) for k in PRESENTATION_OPTIONS}


def validate_presentation(value: Any) -> dict[str, bool]:
    """A lineup body's ``presentation`` (absent: all off); unknown keys or non-booleans are
    refused with the choices."""
    if value is None:
        return presentation_options({})
    if not isinstance(value, dict) or any(k not in PRESENTATION_OPTIONS or
                                          not isinstance(v, bool) for k, v in value.items()):
        choices = "; ".join(f"{k}: {v}" for k, v in PRESENTATION_OPTIONS.items())
        raise ApiError(422, f"presentation must be an object of true/false options ({choices}).")
    return presentation_options({"presentation": value})


def lineup_faces(lineup: dict, results_dir: Path, framing=None,
                 resolution: int | None = None) -> list[dict]:
    """The lineup's positions in order, as they are shown: ``{"position", "role", "image"
    (PIL, CELL × CELL), "entry"}``. ``framing`` and ``resolution``: the bundle's
    (:class:`models.faces.Framing`, FFHQ's by default; the resolution of the generated faces
    when not given), so the suspect's photo is cut and sized like the generated fillers."""
    positions = _sources(lineup, results_dir, framing, resolution)
    generated = [p["image"].size[0] for p in positions if p["entry"]["source"] == "generated"]
    side = resolution or (max(generated) if generated else CELL)
    options = presentation_options(lineup)
    images = present_members([p["image"] for p in positions], side, CELL, **options)
    for p, image in zip(positions, images):
        p["image"] = image
        p["entry"]["presentation"] = {"resolution": side, "display": CELL, **options}
    return positions


def parity(positions: list[dict]) -> dict:
    """The presentation-parity check of shown positions (``models.presentation``)."""
    return parity_check([{"position": p["position"], "role": p["role"], "image": p["image"]}
                         for p in positions])


def _sources(lineup: dict, results_dir: Path, framing, resolution: int | None) -> list[dict]:
    size, position = lineup["size"], lineup["suspect_position"]
    fillers = list(lineup["fillers"])
    if len(fillers) != size - 1:
        raise ApiError(409, f"This lineup has {len(fillers)} of its {size - 1} fillers; select "
                            "the missing fillers and save it again before exporting.")
    out = []
    for number in range(1, size + 1):
        if number == position:
            image, entry = _suspect(lineup["suspect"], results_dir, framing, resolution)
            role = "suspect"
        else:
            face_id = fillers.pop(0)["face_id"]
            image, entry = _generated(face_id, results_dir)
            role = "filler"
        out.append({"position": number, "role": role, "image": image, "entry": entry})
    return out


def _generated(face_id: str, results_dir: Path) -> tuple[Image.Image, dict]:
    record = face_records.find_record(results_dir, face_id)
    if record is None or not record.get("image"):
        raise ApiError(404, f"Face {face_id} is no longer in your results folder; replace it "
                            "in the lineup.")
    with Image.open(results_dir / record["image"]) as im:
        image = im.convert("RGB")
    entry = {"source": "generated", "face_id": face_id, "record": record,
             "ancestors": face_records.lineage(results_dir, record)}
    return image, entry


def _suspect(suspect: dict, results_dir: Path, framing=None,
             resolution: int | None = None) -> tuple[Image.Image, dict]:
    if suspect.get("face_id"):
        image, entry = _generated(suspect["face_id"], results_dir)
        return image, entry
    from models.faces import FFHQ_FRAMING, align_face, detect_faces, face_landmarks

    framing = framing or FFHQ_FRAMING

    path = results_dir / "uploads" / f"{suspect['upload_id']}.png"
    if not path.is_file():
        raise ApiError(404, "The suspect's photo is no longer in your results folder; upload "
                            "it again.")
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        pixels = np.asarray(im.convert("RGB"))
    found = detect_faces(pixels)
    index = int(suspect.get("face_index") or 0)
    if index >= len(found):
        raise ApiError(422, "The chosen face is not found in the suspect's photo any more.")
    face = face_landmarks(pixels, found[index], 68)
    aligned = align_face(pixels, face, resolution or CELL, framing=framing)
    entry = {"source": "photo", "upload_id": suspect["upload_id"], "face_index": index,
             "photo_sha256": hashlib.sha256(data).hexdigest(), "face_box": face.to_dict()["box"],
             "alignment": "ffhq",
             "framing": framing.name if framing.name != "custom" else framing.to_dict()}
    return Image.fromarray(aligned.image, "RGB"), entry


def grid_shape(size: int) -> tuple[int, int]:
    """(columns, rows) of the composite: 6 → 3×2, 9 → 3×3, 12 → 4×3."""
    cols = max(2, math.ceil(math.sqrt(size)))
    return cols, math.ceil(size / cols)


def composite(positions: list[dict], notice: str | None = None) -> Image.Image:
    """All faces at CELL × CELL in a grid, each numbered underneath; ``notice`` (the bundle's
    research-only notice) in red across the bottom."""
    cols, rows = grid_shape(len(positions))
    width = MARGIN + cols * (CELL + MARGIN)
    font, small = _font(30), _font(15)
    notice_lines = _wrap(notice, small, width - 2 * MARGIN) if notice else []
    notice_height = 20 * len(notice_lines) + (MARGIN if notice_lines else 0)
    height = MARGIN + rows * (CELL + LABEL + MARGIN) + notice_height
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for k, line in enumerate(notice_lines):
        draw.text((MARGIN, height - notice_height + 20 * k), line, fill=(170, 0, 0), font=small)
    for i, pos in enumerate(positions):
        x = MARGIN + (i % cols) * (CELL + MARGIN)
        y = MARGIN + (i // cols) * (CELL + LABEL + MARGIN)
        sheet.paste(pos["image"], (x, y))
        draw.text((x + CELL / 2, y + CELL + LABEL / 2), str(pos["position"]), fill="black",
                  font=font, anchor="mm")
    return sheet


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _wrap(text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def record(lineup: dict, positions: list[dict], notice: str | None = None) -> dict:
    """The JSON record of the lineup: who is where, how every face was made and shown, the
    presentation-parity check and the bundle's research-only notice (null if none)."""
    hashes = sorted({p["entry"]["record"]["bundle_hash"] for p in positions
                     if p["entry"].get("record") and p["entry"]["record"].get("bundle_hash")})
    return {
        "format": "ligan-lineup/1",
        "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "lineup": {k: lineup.get(k) for k in ("id", "name", "size", "suspect_position",
                                              "created", "updated", "notes")},
        "bundle_hashes": hashes,
        "positions": [{"position": p["position"], "role": p["role"],
                       "image": f"faces/{p['position']:02d}.png", **p["entry"]}
                      for p in positions],
        "presentation": presentation_options(lineup),
        "presentation_parity": parity(positions),
        "notice": notice,
        "synthetic_fillers": "Every filler is a synthetic face of a person who does not exist.",
    }


def zip_bytes(lineup: dict, positions: list[dict], notice: str | None = None) -> bytes:
    """``composite.png``, ``faces/NN.png`` and ``lineup.json`` in one ZIP, and ``NOTICE.txt``
    when the bundle has a research-only notice."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("composite.png", png_bytes(composite(positions, notice)))
        for p in positions:
            zf.writestr(f"faces/{p['position']:02d}.png", png_bytes(p["image"]))
        zf.writestr("lineup.json", json.dumps(record(lineup, positions, notice), indent=1))
        if notice:
            zf.writestr("NOTICE.txt", notice + "\n")
    return buf.getvalue()
