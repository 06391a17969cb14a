"""Framing: aligned crops cut like a generator's training faces (FFHQ's square, or UTKFace's
tighter chip), recorded in the bundle and used wherever photos are aligned for it."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import SHARED, ligan
from models.bundle import BundleFormatError, load_bundle, read_manifest, set_framing
from models.faces import FFHQ_FRAMING, UTKFACE_FRAMING, Framing, ffhq_quad

UTKFACE = SHARED / "data" / "utkface"
POSE = SHARED / "faces" / "pose"


def _square_landmarks() -> np.ndarray:
    """68 points of an upright face: eyes at (40, 50) and (60, 50), mouth corners at y = 80."""
    lm = np.zeros((68, 2))
    lm[36:42] = (40, 50)
    lm[42:48] = (60, 50)
    lm[48] = (42, 80)
    lm[54] = (58, 80)
    return lm


def test_framing_scales_and_moves_the_ffhq_square():
    lm = _square_landmarks()
    ffhq = ffhq_quad(lm)
    tight = ffhq_quad(lm, UTKFACE_FRAMING)
    half = np.hypot(*(ffhq[3] - ffhq[0])) / 2
    assert np.hypot(*(tight[3] - tight[0])) / 2 == pytest.approx(0.64 * half)
    # Upright face: the centre moves straight down by dy half-sides.
    assert tight.mean(0) - ffhq.mean(0) == pytest.approx([0.0, 0.2 * half])
    assert ffhq_quad(lm, FFHQ_FRAMING) == pytest.approx(ffhq)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0.0}, "scale must be from 0.1 to 4"),
    ({"scale": float("nan")}, "scale must be from 0.1 to 4"),
    ({"dy": 1.5}, "offsets must be within ±1"),
])
def test_bad_framings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Framing(**kwargs)
    with pytest.raises(ValueError, match="unknown framing keys: zoom"):
        Framing.from_dict({"zoom": 2})


def test_bundle_records_its_framing_and_refuses_a_broken_one(tiny_bundle_dir, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    before = load_bundle(path)
    assert before.framing == FFHQ_FRAMING  # nothing recorded: FFHQ's crop
    digest = set_framing(path, UTKFACE_FRAMING)
    after = load_bundle(path)
    assert after.framing == UTKFACE_FRAMING and after.hash == digest != before.hash
    manifest = read_manifest(path)
    manifest["alignment"] = {"scale": -1}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="alignment is invalid: framing scale"):
        load_bundle(path)


def test_set_alignment_command(tiny_bundle_dir, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    done = ligan("bundle", "set-alignment", str(path), "utkface")
    assert done.returncode == 0, done.stderr
    shown = ligan("bundle", "inspect", str(path))
    assert "alignment   utkface (FFHQ square × 0.64, moved 0, 0.2 half-sides)" in shown.stdout


def test_utkface_framing_reproduces_utkface_chips():
    """Re-cut from its own landmarks, a UTKFace chip comes out as (nearly) the chip itself."""
    if not UTKFACE.is_dir():
        pytest.skip(f"UTKFace not found at {UTKFACE} (see shared/data/README.md)")
    from models.faces import face_landmarks, find_face, load_image
    from models.faces.errors import FaceError

    errors = []
    for path in sorted(UTKFACE.glob("*.jpg"))[::1200]:
        image, _ = load_image(path)
        try:
            face = face_landmarks(image, find_face(image).face, 68)
        except FaceError:
            continue
        side = image.shape[0]
        chip = np.array([[-0.5, -0.5], [-0.5, side - 0.5], [side - 0.5, side - 0.5],
                         [side - 0.5, -0.5]])
        errors.append(np.abs(ffhq_quad(face.landmarks, UTKFACE_FRAMING) - chip).max() / side)
        ffhq_error = np.abs(ffhq_quad(face.landmarks) - chip).max() / side
        assert ffhq_error > 0.2  # FFHQ's crop is far larger: the framings really differ
    assert len(errors) >= 15
    assert np.median(errors) < 0.08, errors


def test_utkface_framing_of_a_rotated_photo_is_upright_and_tight():
    if not POSE.is_dir():
        pytest.skip(f"pose photographs not found at {POSE} (see shared/faces/README.md)")
    from models.faces import align_face, find_face, load_image
    from models.faces.alignment import eye_and_mouth_points

    image, _ = load_image(sorted(POSE.glob("*.jpg"))[0])
    face = find_face(image).face
    ffhq = align_face(image, face, 128)
    tight = align_face(image, face, 128, framing=UTKFACE_FRAMING)
    eye_l, eye_r, mouth_l, mouth_r = eye_and_mouth_points(face.landmarks)
    a, b = tight.to_aligned(np.array([eye_l, eye_r]))
    assert abs(a[1] - b[1]) < 0.01 * 128
    # The face is larger in the tight crop by 1 / 0.64, and the eyes sit higher.
    eyes_ffhq = np.diff(ffhq.to_aligned(np.array([eye_l, eye_r])), axis=0)
    assert np.hypot(*(b - a)) == pytest.approx(np.hypot(*eyes_ffhq[0]) / 0.64, rel=1e-6)
    assert (a[1] + b[1]) / 2 < 0.45 * 128
