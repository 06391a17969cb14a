"""models.faces on real photographs (../shared/faces): typed errors with their messages,
FFHQ and padded alignment, identity embeddings."""
from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
if not FACES.is_dir():
    pytest.skip(f"face photographs not found at {FACES} (see shared/faces/README.md); "
                "models.faces tests need them", allow_module_level=True)

from models.faces import (CorruptImageError, FaceTooSmallError, ImageTooLargeError,  # noqa: E402
                          NoFaceError, NotAnImageError, SAME_PERSON_THRESHOLD, SeveralFacesError,
                          UnsupportedImageModeError, align_face, choose_face, detect_faces,
                          face_landmarks, find_face, identity_distance, identity_embedding,
                          load_image)
from models.faces.alignment import eye_and_mouth_points  # noqa: E402

LONDON = FACES / "london"
POSE = sorted((FACES / "pose").glob("*.jpg"))


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _photo(name: str) -> np.ndarray:
    image, warnings = load_image(LONDON / name)
    assert warnings == []
    return image


# --- loading -------------------------------------------------------------------------------

def test_ordinary_photo_loads_as_rgb_uint8():
    image, warnings = load_image(LONDON / "001_03.jpg")
    assert image.dtype == np.uint8 and image.shape == (512, 512, 3) and warnings == []
    same, _ = load_image((LONDON / "001_03.jpg").read_bytes())
    assert np.array_equal(image, same)


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    fake = tmp_path / "suspect.jpg"
    fake.write_text("this is not a photograph\n" * 20)
    with pytest.raises(NotAnImageError, match="is not an image in a format we read") as e:
        load_image(fake)
    assert "save the photo as JPEG or PNG" in str(e.value)
    assert e.value.code == "not_an_image"


def test_png_content_named_jpg_is_sniffed_by_content(tmp_path):
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(_png_bytes(Image.open(LONDON / "001_03.jpg")))
    image, warnings = load_image(path)
    assert image.shape == (512, 512, 3) and warnings == []


def test_truncated_jpeg_is_corrupt(tmp_path):
    data = (LONDON / "005_03.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match="damaged or incomplete") as e:
        load_image(path)
    assert "upload it again" in str(e.value)


def test_decompression_bomb_header_is_refused_before_decoding():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    # A valid PNG header declaring 100 000 × 100 000 RGB pixels (30 GB decoded), no pixel data.
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2,
                                                            0, 0, 0)) + chunk(b"IEND", b""))
    with pytest.raises(ImageTooLargeError, match="Resize the photo"):
        load_image(bomb)


def test_image_over_our_pixel_limit_is_refused():
    data = _png_bytes(Image.new("RGB", (1200, 1000)))
    with pytest.raises(ImageTooLargeError, match=r"1200×1000 pixels .* more than the limit") as e:
        load_image(data, max_pixels=1_000_000)
    assert (e.value.width, e.value.height, e.value.max_pixels) == (1200, 1000, 1_000_000)


def test_grayscale_photo_is_converted_with_a_warning_and_still_works():
    gray = Image.open(LONDON / "009_03.jpg").convert("L")
    buf = io.BytesIO()
    gray.save(buf, format="JPEG", quality=95)
    image, warnings = load_image(buf.getvalue())
    assert image.shape == (512, 512, 3)
    assert np.array_equal(image[..., 0], image[..., 2])
    assert len(warnings) == 1 and "grayscale photo; it was converted to RGB" in warnings[0]
    assert len(detect_faces(image)) == 1


def test_sixteen_bit_grayscale_is_reduced_with_a_warning():
    ramp = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16")
    pixels, warnings = load_image(_png_bytes(image))
    assert pixels[0, :, 0].tolist() == [0, 1, 128, 255]
    assert "16-bit grayscale image; it was reduced to 8 bits" in warnings[0]


def test_cmyk_is_converted_with_a_warning():
    buf = io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(buf, format="JPEG")
    pixels, warnings = load_image(buf.getvalue())
    assert pixels.shape == (48, 64, 3)
    assert pixels[..., 0].mean() > 200 and pixels[..., 1].mean() < 60  # cyan-free red stays red
    assert "CMYK (print) image" in warnings[0]


def test_transparency_is_filled_with_white_with_a_warning():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half fully transparent
    pixels, warnings = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    assert pixels[0, 0].tolist() == [255, 0, 0] and pixels[7, 7].tolist() == [255, 255, 255]
    assert "transparent areas; they were filled with white" in warnings[0]


def test_unsupported_mode_is_refused(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.ones((16, 16), np.float32)).save(path)
    with pytest.raises(UnsupportedImageModeError, match="pixel format 'F'") as e:
        load_image(path)
    assert e.value.mode == "F" and "8-bit RGB JPEG or PNG" in str(e.value)


def test_exif_orientation_is_honoured():
    image = Image.open(LONDON / "013_03.jpg").crop((0, 0, 512, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    pixels, _ = load_image(buf.getvalue())
    assert pixels.shape == (512, 300, 3)


# --- detection and the several-faces policy ------------------------------------------------

@pytest.mark.parametrize("name", ["fox.jpg", "road.jpg", "sunflower.jpg"])
def test_photo_without_a_face(name):
    image, _ = load_image(FACES / "no_face" / name)
    faces = detect_faces(image)
    assert faces == []
    with pytest.raises(NoFaceError, match="No face was found in the photo") as e:
        choose_face(faces)
    assert "clearly visible" in str(e.value)


def test_face_made_too_small_by_downscaling():
    small = np.asarray(Image.open(LONDON / "018_03.jpg").resize((160, 160), Image.LANCZOS))
    faces = detect_faces(small, upsample=1)
    assert len(faces) == 1 and faces[0].size < 80
    with pytest.raises(FaceTooSmallError, match=r"too small: \d+ pixels wide, the minimum is 80") as e:
        choose_face(faces)
    assert e.value.faces == faces and "larger or closer photo" in str(e.value)
    assert choose_face(faces, min_size=40).face is faces[0]


def test_two_faces_side_by_side():
    big, other = _photo("001_03.jpg"), _photo("022_03.jpg")
    small = np.asarray(Image.fromarray(other).resize((352, 352), Image.LANCZOS))
    canvas = np.full((512, 512 + 352, 3), 128, np.uint8)
    canvas[:, 352:] = big
    canvas[80:432, :352] = small
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].left > 352 > faces[1].right

    face, warnings = choose_face(faces)
    assert face is faces[0]
    assert "shows 2 faces (#0: " in warnings[0] and "the largest, #0, was used" in warnings[0]

    with pytest.raises(SeveralFacesError, match=r"shows 2 faces \(#0: .*; #1: .*\)") as e:
        choose_face(faces, strict=True)
    assert e.value.faces == faces
    assert "Choose one of them" in str(e.value)

    chosen = find_face(canvas, index=1)
    assert chosen.warnings == [] and chosen.face.right < 352
    assert chosen.face.landmarks.shape == (68, 2)
    assert faces[1].to_dict()["box"] == [faces[1].left, faces[1].top, faces[1].right,
                                         faces[1].bottom]


def test_large_photo_is_detected_on_a_reduced_copy():
    import cv2

    image = _photo("027_03.jpg")
    big = np.asarray(Image.fromarray(image).resize((2048, 2048), Image.BILINEAR))
    (face,) = detect_faces(big, max_side=1024)
    (half,) = detect_faces(cv2.resize(big, (1024, 1024), interpolation=cv2.INTER_AREA),
                           max_side=None)
    # Boxes come back in full-image coordinates...
    assert [face.left, face.top, face.right, face.bottom] == pytest.approx(
        [2 * half.left, 2 * half.top, 2 * half.right, 2 * half.bottom])
    # ...and landmarks are found on the full image, near where the 512-px photo has them.
    face, small = face_landmarks(big, face), face_landmarks(image, detect_faces(image)[0])
    assert np.abs(face.landmarks - 4 * small.landmarks).max() < 0.03 * 2048


def test_cnn_detector_finds_the_same_face():
    image = np.asarray(Image.open(LONDON / "032_03.jpg").resize((256, 256), Image.LANCZOS))
    (hog,), (cnn,) = detect_faces(image), detect_faces(image, upsample=0, detector="cnn")
    assert cnn.detector == "cnn" and cnn.score > 0.5
    assert np.hypot(*np.subtract(hog.center, cnn.center)) < 0.15 * hog.size


# --- alignment -----------------------------------------------------------------------------

R = 256


@pytest.mark.parametrize("path", POSE, ids=lambda p: p.stem)
def test_ffhq_alignment_makes_rotated_and_distant_faces_upright_and_centred(path):
    image, _ = load_image(path)
    face = find_face(image).face
    aligned = align_face(image, face, R)
    assert aligned.image.shape == (R, R, 3) and aligned.image.dtype == np.uint8

    # Where the recipe puts the eyes: the source eye centres mapped by the returned transform.
    eye_l, eye_r, _, _ = eye_and_mouth_points(face.landmarks)
    want = aligned.to_aligned(np.array([eye_l, eye_r]))
    assert abs(want[0, 1] - want[1, 1]) < 0.01 * R  # the transform levels the eyes...

    # ...and an independent re-detection on the aligned image finds them there.
    again = face_landmarks(aligned.image, choose_face(detect_faces(aligned.image), min_size=0).face)
    got_l, got_r, _, _ = eye_and_mouth_points(again.landmarks)
    angle = np.degrees(np.arctan2(got_r[1] - got_l[1], got_r[0] - got_l[0]))
    assert abs(angle) < 3.0
    assert np.abs(np.array([got_l, got_r]) - want).max() < 0.03 * R
    # FFHQ geometry: eyes centred horizontally, a little above the middle.
    mid = (got_l + got_r) / 2
    assert abs(mid[0] - R / 2) < 0.02 * R
    assert 0.40 * R < mid[1] < 0.52 * R
    assert aligned.to_source(aligned.to_aligned(face.landmarks)) == pytest.approx(face.landmarks)


def test_padded_alignment_centres_the_detected_box():
    image, _ = load_image(FACES / "pose" / "zoom_60cm.jpg")
    face = find_face(image).face
    aligned = align_face(image, face, R, mode="padded")
    assert aligned.image.shape == (R, R, 3)
    centre = aligned.to_aligned(np.array([face.center]) - 0.5)[0]
    assert centre == pytest.approx([R / 2 - 0.5, R / 2 - 0.5], abs=1.0)
    side = np.hypot(*(aligned.quad[3] - aligned.quad[0]))
    assert side == pytest.approx(2 * face.size, rel=0.01)  # room for the full 2× margin here
    # No rotation, and the face (now half the crop) is found again in the middle.
    assert aligned.matrix[0, 1] == pytest.approx(0, abs=1e-9)
    again = choose_face(detect_faces(aligned.image), min_size=0).face
    assert np.hypot(*(np.subtract(again.center, R / 2))) < 0.05 * R


def test_padded_alignment_near_the_edge_pads_less_but_symmetrically():
    image, _ = load_image(FACES / "pose" / "lisa1.jpg")
    face = find_face(image).face
    shifted = image[:, int(face.left) - 10:]  # the face now starts 10 px from the left edge
    face = find_face(shifted).face
    aligned = align_face(shifted, face, 128, mode="padded")
    side = np.hypot(*(aligned.quad[3] - aligned.quad[0]))
    assert face.size < side < 2 * face.size
    assert aligned.quad[0, 0] >= -0.5 - 1e-6


# --- identity ------------------------------------------------------------------------------

def test_identity_same_person_closer_than_different_people():
    people = ["001", "037", "061", "099", "141"]
    neutral = np.array([identity_embedding(_photo(f"{p}_03.jpg")) for p in people])
    smiling = np.array([identity_embedding(_photo(f"{p}_08.jpg")) for p in people])
    assert neutral.shape == (5, 128) and neutral.dtype == np.float32
    distances = identity_distance(neutral[:, None], smiling[None])  # 5 × 5
    same = np.diag(distances)
    assert (same < SAME_PERSON_THRESHOLD).all()
    for i in range(len(people)):
        others = np.delete(distances[i], i)
        assert same[i] < others.min(), (people[i], same[i], others)
    assert identity_distance(neutral[0], neutral[0]) == 0.0


def test_identity_embedding_is_the_same_from_concurrent_threads():
    image = _photo("042_03.jpg")
    face = find_face(image).face
    reference = identity_embedding(image, face)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(identity_embedding(image, face)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.allclose(r, reference, atol=1e-6) for r in results)
