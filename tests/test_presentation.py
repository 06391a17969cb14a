"""Presentation parity (models/presentation.py): one pipeline for every lineup member, and the
members whose look stands out named, the suspect first."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from models.bundle import research_only_notice
from models.presentation import (match_sharpness, member_statistics, normalise_tone,
                                 parity_check, present)


def face_like(seed: int, blur: float = 0.0, brightness: float = 0.0, side: int = 64,
              warm: float = 0.0) -> Image.Image:
    """A textured image: an ellipse on a grey background, with noise, optionally blurred."""
    rng = np.random.default_rng(seed)
    a = np.full((side, side, 3), 120.0)
    cv2.ellipse(a, (side // 2, side // 2), (side // 3, side // 2 - 4), 0, 0, 360,
                (200, 160, 130), -1)
    a += rng.normal(0, 18, a.shape)
    a += brightness
    a[..., 0] += warm
    a[..., 2] -= warm
    a = np.clip(a, 0, 255).astype(np.uint8)
    if blur:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    return Image.fromarray(a, "RGB")


def lineup(images, suspect: int = 0) -> list[dict]:
    return [{"position": i + 1, "role": "suspect" if i == suspect else "filler", "image": im}
            for i, im in enumerate(images)]


def test_present_brings_every_member_through_the_bundle_resolution():
    sharp = face_like(0, side=256)
    shown = present(sharp, 64, 256)
    assert shown.size == (256, 256)
    # The detail above 64 px is gone: the same as cutting at 64 px and scaling up.
    via_64 = sharp.resize((64, 64), Image.LANCZOS).resize((256, 256), Image.LANCZOS)
    np.testing.assert_array_equal(np.asarray(shown), np.asarray(via_64))
    assert member_statistics(shown)["sharpness"] < 0.5 * member_statistics(sharp)["sharpness"]
    grey = np.asarray(present(sharp, 64, 128, grayscale=True))
    assert grey.shape == (128, 128, 3) and (grey[..., 0] == grey[..., 2]).all()


def test_similar_members_raise_no_warning():
    report = parity_check(lineup([face_like(i, blur=1.0) for i in range(6)]))
    assert report["fair"] and report["warnings"] == []
    assert [m["position"] for m in report["members"]] == [1, 2, 3, 4, 5, 6]
    assert set(report["members"][0]["statistics"]) == set(report["measures"])


def test_a_sharp_suspect_among_blurred_fillers_is_named_first():
    images = [face_like(0)] + [face_like(i, blur=1.5) for i in range(1, 6)]
    images[4] = face_like(4, blur=1.5, brightness=70)        # and one filler much brighter
    report = parity_check(lineup(images, suspect=0))
    assert not report["fair"]
    first = report["warnings"][0]
    assert (first["position"], first["role"], first["measure"]) == (1, "suspect", "sharpness")
    assert first["z"] > 2.5 and first["message"].startswith(
        "Member 1 (the suspect) is sharper than the others: sharpness")
    assert "× the lineup's median" in first["message"]
    bright = [w for w in report["warnings"] if w["position"] == 5]
    assert bright and bright[0]["role"] == "filler" and any(
        w["measure"] == "brightness" and "brighter" in w["message"] for w in bright)


def test_two_members_cannot_have_an_outlier():
    report = parity_check(lineup([face_like(0), face_like(1, blur=3)]))
    assert report["fair"] and len(report["members"]) == 2


def test_normalising_tone_and_sharpness_removes_the_warnings():
    images = [face_like(0, side=256)] + [present(face_like(i, blur=1.5), 64, 256)
                                         for i in range(1, 6)]
    images[3] = present(face_like(3, blur=1.5, brightness=-60), 64, 256)
    assert not parity_check(lineup(images))["fair"]
    evened = match_sharpness(normalise_tone(images))
    report = parity_check(lineup(evened))
    assert [w["measure"] for w in report["warnings"]
            if w["measure"] in ("sharpness", "brightness", "contrast")] == []
    stats = [m["statistics"] for m in report["members"]]
    median = np.median([s["sharpness"] for s in stats])
    assert stats[0]["sharpness"] <= 1.05 * median
    # Blurrier members are not sharpened (detail cannot be added back).
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(match_sharpness(evened[1:]), evened[1:])
               if member_statistics(a)["sharpness"] <= median)


@pytest.mark.parametrize("manifest, research", [
    ({"name": "m", "licence": "non-commercial research use only (UTKFace and CelebA terms)"},
     True),
    ({"name": "m", "licence": "CC-BY-4.0",
      "training_data": {"licence": "UTKFace: non-commercial research purposes only"}}, True),
    ({"name": "m", "licence": "CC-BY-4.0"}, False),
    ({"name": "m"}, False),
])
def test_research_only_notice_follows_the_licence(manifest, research):
    notice = research_only_notice(manifest)
    assert (notice is not None) == research
    if research:
        assert notice.startswith("RESEARCH ONLY: the faces come from the model m")
