"""Suspect photo uploads: guarded decoding, face detection, a clean PNG copy.

The upload is decoded by ``models.faces.load_image`` (format sniffed from the content, size
checked from the header before decoding, truncation caught, EXIF orientation applied), faces
are found with dlib (``models.faces.detect_faces``), and the stored copy is a fresh PNG made
from the pixels alone, so no EXIF, GPS or other metadata of the original is kept.
"""
from __future__ import annotations

import io
import json
import re
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

from frontend_server.errors import ApiError
from models.faces import (CorruptImageError, FaceError, ImageTooLargeError, NotAnImageError,
                          UnsupportedImageModeError, detect_faces, load_image)

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOADS = "uploads"


def save_upload(data: bytes, results_dir: Path, max_pixels: int = 50_000_000) -> dict:
    """Check, decode and store one photo; the answer for the browser.

    Returns ``{"upload_id", "photo", "width", "height", "faces": [{"box", "score"}…],
    "warnings"}``, where ``photo`` is the path relative to the results folder that tasks take.
    Raises :class:`ApiError` 415/413/422 with a message for the user (no face: 422).
    """
    if not data:
        raise ApiError(400, "The upload is empty: choose a photo file.")
    try:
        loaded = load_image(data, max_pixels=max_pixels)
    except NotAnImageError as exc:
        raise ApiError(415, str(exc)) from None
    except ImageTooLargeError as exc:
        raise ApiError(413, str(exc)) from None
    except (CorruptImageError, UnsupportedImageModeError, FaceError) as exc:
        raise ApiError(422, str(exc)) from None
    image = loaded.image
    faces = detect_faces(image)
    height, width = image.shape[:2]
    if not faces:
        raise ApiError(422, "No face was found in this photo. Use a photo in which the "
                            "suspect's face is clearly visible, looking roughly at the camera.",
                       faces=[], width=width, height=height)
    upload_id = secrets.token_hex(16)
    folder = results_dir / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buf, "PNG")
    (folder / f"{upload_id}.png").write_bytes(buf.getvalue())
    boxes = [{"box": f.to_dict()["box"], "score": f.to_dict()["score"]} for f in faces]
    meta = {"width": width, "height": height, "faces": boxes, "warnings": loaded.warnings}
    (folder / f"{upload_id}.json").write_text(json.dumps(meta))
    return {"upload_id": upload_id, "photo": f"{UPLOADS}/{upload_id}.png", **meta}


def upload_info(results_dir: Path, upload_id: str) -> dict | None:
    """What :func:`save_upload` answered for ``upload_id`` in this results folder, or None."""
    if not UPLOAD_ID.match(upload_id or ""):
        return None
    folder = results_dir / UPLOADS
    if not (folder / f"{upload_id}.png").is_file():
        return None
    try:
        meta = json.loads((folder / f"{upload_id}.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return {"upload_id": upload_id, "photo": f"{UPLOADS}/{upload_id}.png", **meta}
