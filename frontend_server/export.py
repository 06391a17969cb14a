"""Lineup export: a numbered composite PNG, a ZIP of the single faces and a JSON record.

Every face is shown at the same size and framing: generated faces already share the alignment
of the bundle; the suspect's own photo is aligned with the same recipe and the bundle's
framing (``models.faces.align_face``, ``Bundle.framing``) before it is scaled. The JSON record
names for every position how the face was made (bundle hash, latent, operation, parameters,
parents' records) so the lineup can be reproduced.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from frontend_server import faces as face_records
from frontend_server.errors import ApiError

CELL = 256          # every face is scaled to CELL × CELL pixels
LABEL = 44          # height of the number band under each face
MARGIN = 16


def lineup_faces(lineup: dict, results_dir: Path, framing=None) -> list[dict]:
    """The lineup's positions in order: ``{"position", "role", "image" (PIL), "entry"}``.
    ``framing``: the bundle's (:class:`models.faces.Framing`; FFHQ's by default), so the
    suspect's photo is cut like the generated fillers."""
    size, position = lineup["size"], lineup["suspect_position"]
    fillers = list(lineup["fillers"])
    if len(fillers) != size - 1:
        raise ApiError(409, f"This lineup has {len(fillers)} of its {size - 1} fillers; select "
                            "the missing fillers and save it again before exporting.")
    out = []
    for number in range(1, size + 1):
        if number == position:
            image, entry = _suspect(lineup["suspect"], results_dir, framing)
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
    return _square(image), entry


def _suspect(suspect: dict, results_dir: Path, framing=None) -> tuple[Image.Image, dict]:
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
    aligned = align_face(pixels, face, CELL, framing=framing)
    entry = {"source": "photo", "upload_id": suspect["upload_id"], "face_index": index,
             "photo_sha256": hashlib.sha256(data).hexdigest(), "face_box": face.to_dict()["box"],
             "alignment": "ffhq",
             "framing": framing.name if framing.name != "custom" else framing.to_dict()}
    return Image.fromarray(aligned.image, "RGB"), entry


def _square(image: Image.Image) -> Image.Image:
    if image.size != (CELL, CELL):
        image = image.resize((CELL, CELL), Image.LANCZOS)
    return image


def grid_shape(size: int) -> tuple[int, int]:
    """(columns, rows) of the composite: 6 → 3×2, 9 → 3×3, 12 → 4×3."""
    cols = max(2, math.ceil(math.sqrt(size)))
    return cols, math.ceil(size / cols)


def composite(positions: list[dict]) -> Image.Image:
    """All faces at CELL × CELL in a grid, each numbered underneath."""
    cols, rows = grid_shape(len(positions))
    width = MARGIN + cols * (CELL + MARGIN)
    height = MARGIN + rows * (CELL + LABEL + MARGIN)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    try:
        font = ImageFont.load_default(size=30)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for i, pos in enumerate(positions):
        x = MARGIN + (i % cols) * (CELL + MARGIN)
        y = MARGIN + (i // cols) * (CELL + LABEL + MARGIN)
        sheet.paste(pos["image"], (x, y))
        draw.text((x + CELL / 2, y + CELL + LABEL / 2), str(pos["position"]), fill="black",
                  font=font, anchor="mm")
    return sheet


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def record(lineup: dict, positions: list[dict]) -> dict:
    """The JSON record of the lineup: who is where, and how every face was made."""
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
    }


def zip_bytes(lineup: dict, positions: list[dict]) -> bytes:
    """``composite.png``, ``faces/NN.png`` and ``lineup.json`` in one ZIP."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("composite.png", png_bytes(composite(positions)))
        for p in positions:
            zf.writestr(f"faces/{p['position']:02d}.png", png_bytes(p["image"]))
        zf.writestr("lineup.json", json.dumps(record(lineup, positions), indent=1))
    return buf.getvalue()
