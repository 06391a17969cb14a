"""Guarded decoding of uploaded photos into RGB uint8 arrays.

A suspect's photo arrives from a browser upload or a file on disk and may be anything: a PDF
renamed ``.jpg``, a half-uploaded JPEG, a 100 000 × 100 000 PNG that would take tens of
gigabytes to decode, a scanned CMYK or 16-bit grayscale file. :func:`load_image` sniffs the
format from the content (never the extension), refuses oversize images from the header alone,
decodes fully (so truncation is caught here, not later), honours EXIF orientation and converts
every supported pixel format to RGB, returning human-readable warnings where information is lost.
"""
from __future__ import annotations

import io
import os
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptImageError, ImageTooLargeError, NotAnImageError, UnsupportedImageModeError

#: Default limit on width × height: 50 megapixels, above any ordinary camera photo and below
#: Pillow's own decompression-bomb threshold (~89 MP), decoded to ~150 MB of RGB.
DEFAULT_MAX_PIXELS = 50_000_000

#: Formats we decode. Restricting Pillow's format list keeps rarely used decoders (and their
#: bugs) away from uploaded files. (Multi-picture phone JPEGs, MPO, open through "JPEG".)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

_GRAY_MODES = {"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I"}
_SUPPORTED_MODES = _GRAY_MODES | {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}


class LoadedImage(NamedTuple):
    """A decoded photo: ``image`` is H×W×3 RGB uint8 (C-contiguous); ``warnings`` lists, in plain
    words, every lossy conversion that was made (empty for an ordinary RGB photo)."""

    image: np.ndarray
    warnings: list[str]


def load_image(source: str | os.PathLike | bytes | bytearray | memoryview,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode a photo from a path or from bytes into RGB uint8, with typed errors.

    Raises :class:`NotAnImageError`, :class:`CorruptImageError`, :class:`ImageTooLargeError`
    (checked from the header, before any pixel is decoded) or
    :class:`UnsupportedImageModeError`. A missing file raises ``FileNotFoundError`` as usual.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, fp = "the uploaded file", io.BytesIO(bytes(source))
    else:
        name, fp = f"'{os.fspath(source)}'", open(source, "rb")
    with fp:
        im = _open(fp, name, max_pixels)
        with im:
            return _decode(im, name)


def _open(fp, name: str, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(fp, formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"{name} is not an image in a format we read ({', '.join(ACCEPTED_FORMATS)}), "
            "whatever its file name says. Export or save the photo as JPEG or PNG and upload "
            "it again.") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(
            f"{name} declares more pixels than Pillow will decode safely ({e}). Resize the "
            "photo to at most a few thousand pixels on its longest side and upload it again.",
            None, None, max_pixels) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptImageError(
            f"{name} looks like an image but its header is damaged ({e}). Open it in an image "
            "viewer; if it shows, save it again as JPEG or PNG, otherwise use another copy of "
            "the photo.") from None
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise ImageTooLargeError(
            f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), more "
            f"than the limit of {max_pixels / 1e6:.0f} megapixels. Resize it (a face needs only "
            "a few hundred pixels) and upload it again.", width, height, max_pixels)
    if width == 0 or height == 0:
        im.close()
        raise CorruptImageError(f"{name} has no pixels ({width}×{height}). Use another copy "
                                "of the photo.")
    return im


def _decode(im: Image.Image, name: str) -> LoadedImage:
    warnings: list[str] = []
    if getattr(im, "n_frames", 1) > 1:
        warnings.append(f"{name} has {im.n_frames} frames (an animation or multi-page file); "
                        "only the first is used.")
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptImageError(
            f"{name} is damaged or incomplete and cannot be decoded ({e}). If it was "
            "uploaded, the upload may have been cut off: upload it again, or use another copy "
            "of the photo.") from None
    try:
        transposed = ImageOps.exif_transpose(im)
    except Exception as e:  # malformed EXIF must not make an otherwise good photo unusable
        warnings.append(f"the EXIF orientation of {name} could not be read ({e}); the photo is "
                        "used as stored and may be rotated.")
        transposed = im
    rgb = _to_rgb(transposed, name, warnings)
    return LoadedImage(np.ascontiguousarray(rgb), [w[:1].upper() + w[1:] for w in warnings])


def _to_rgb(im: Image.Image, name: str, warnings: list[str]) -> np.ndarray:
    mode = im.mode
    if mode not in _SUPPORTED_MODES:
        raise UnsupportedImageModeError(
            f"{name} uses the pixel format '{mode}', which we do not convert. Save the photo as "
            "an 8-bit RGB JPEG or PNG and upload it again.", mode)
    if mode == "RGB":
        return np.asarray(im)
    if mode.startswith("I"):
        pixels = _sixteen_to_eight(np.asarray(im), name, mode)
        warnings.append(f"{name} is a 16-bit grayscale image; it was reduced to 8 bits and "
                        "converted to RGB. Identity matching works best on colour photos.")
        return np.repeat(pixels[..., None], 3, axis=2)
    if mode in _GRAY_MODES:
        warnings.append(f"{name} is a grayscale photo; it was converted to RGB. Fillers are "
                        "generated in colour and identity matching works best on colour "
                        "photos.")
    elif mode == "CMYK":
        warnings.append(f"{name} is a CMYK (print) image; it was converted to RGB without its "
                        "colour profile, so colours may be slightly off.")
    if mode == "P":
        im = im.convert("RGBA")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa", "LA", "La"):
        return _flatten_alpha(im, name, warnings)
    return np.asarray(im.convert("RGB"))


def _flatten_alpha(im: Image.Image, name: str, warnings: list[str]) -> np.ndarray:
    """Composite over white: transparent backgrounds of cut-out portraits become white."""
    rgba = np.asarray(im.convert("RGBA"))
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    if np.all(alpha == 1.0):
        return np.ascontiguousarray(rgba[..., :3])
    warnings.append(f"{name} has transparent areas; they were filled with white.")
    flat = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(flat + 0.5, 0, 255).astype(np.uint8)


def _sixteen_to_eight(pixels: np.ndarray, name: str, mode: str) -> np.ndarray:
    pixels = pixels.astype(np.int64)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
        raise UnsupportedImageModeError(
            f"{name} holds 32-bit integer pixels outside the 16-bit range; we do not convert "
            "these. Save the photo as an 8-bit RGB JPEG or PNG and upload it again.", mode)
    if mode == "I" and pixels.max(initial=0) <= 255:
        return pixels.astype(np.uint8)  # 8-bit values widened to 32-bit by an earlier tool
    return (pixels >> 8).astype(np.uint8)
