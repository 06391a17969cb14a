"""Typed errors for face input: every message says what is wrong and what the user can do.

All of them derive from :class:`FaceError` (itself a ``ValueError``: the input, not the program,
is at fault), so a server can catch one type and show ``str(error)`` to the person who uploaded
the photo; ``code`` is a stable machine-readable name for APIs and the web UI.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .detection import FaceBox


class FaceError(ValueError):
    """Base class: a photo that cannot be used as it is."""

    code = "face_error"

    def __init__(self, message: str):
        super().__init__(message[:1].upper() + message[1:])  # messages may start with a name


class NotAnImageError(FaceError):
    """The bytes are not in any image format we read (whatever the file name says)."""

    code = "not_an_image"


class CorruptImageError(FaceError):
    """The file starts like an image but cannot be decoded to the end (truncated, damaged)."""

    code = "corrupt_image"


class ImageTooLargeError(FaceError):
    """More pixels than allowed: refused before decoding, as a guard against decompression bombs."""

    code = "image_too_large"

    def __init__(self, message: str, width: int | None, height: int | None, max_pixels: int):
        # width/height are None when Pillow refused the header before reporting the size
        super().__init__(message)
        self.width, self.height, self.max_pixels = width, height, max_pixels


class UnsupportedImageModeError(FaceError):
    """A pixel format we do not convert (floating point, unusual colour spaces)."""

    code = "unsupported_image_mode"

    def __init__(self, message: str, mode: str):
        super().__init__(message)
        self.mode = mode


class NoFaceError(FaceError):
    """The detector found no face in the photo."""

    code = "no_face"


class FaceTooSmallError(FaceError):
    """Faces were found, but all of them are smaller than the minimum size."""

    code = "face_too_small"

    def __init__(self, message: str, faces: Sequence["FaceBox"], min_size: int):
        super().__init__(message)
        self.faces, self.min_size = list(faces), min_size


class SeveralFacesError(FaceError):
    """More than one face and the caller asked not to guess; ``faces`` holds all of them."""

    code = "several_faces"

    def __init__(self, message: str, faces: Sequence["FaceBox"]):
        super().__init__(message)
        self.faces = list(faces)


class FaceModelsMissingError(RuntimeError):
    """The dlib model files are not installed: an installation problem, not the user's photo."""
