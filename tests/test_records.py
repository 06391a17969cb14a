"""Face records reproduce their face bit for bit."""
import json
from pathlib import Path

import numpy as np
import pytest

from models.bundle import load_bundle
from models.generate import generate_from_seeds, parse_seeds, render_record
from models.records import FaceRecord


def test_parse_seeds():
    assert parse_seeds("0-3, 7,10-10") == [0, 1, 2, 3, 7, 10]
    with pytest.raises(ValueError, match="too large"):
        parse_seeds(str(2 ** 32))
    with pytest.raises(ValueError, match="too many seeds"):
        parse_seeds("0-100000")


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_a_record_re_renders_its_face_exactly(tiny_bundle_dir, tmp_path, noise_mode):
    bundle = load_bundle(tiny_bundle_dir)
    records = generate_from_seeds(bundle, [11, 12, 13], tmp_path, truncation_psi=0.6,
                                  noise_mode=noise_mode, batch_size=2, progress=False)
    stored = [FaceRecord.from_dict(json.loads(line))
              for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r.id for r in stored] == [r.id for r in records]
    from PIL import Image

    for rec in stored:
        original = np.asarray(Image.open(tmp_path / rec.image))
        np.testing.assert_array_equal(render_record(bundle, rec), original)


def test_a_record_from_another_bundle_is_refused(tiny_bundle_dir, tmp_path):
    bundle = load_bundle(tiny_bundle_dir)
    rec = generate_from_seeds(bundle, [1], tmp_path, progress=False)[0]
    rec.bundle_hash = "0" * 64
    with pytest.raises(ValueError, match="was made with bundle 000000000000"):
        render_record(bundle, rec)


def test_record_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown face record field"):
        FaceRecord.from_dict({"bundle_hash": "x", "latent_space": "z", "latent": [],
                              "operation": "generate", "parameters": {}, "colour": "red"})


@pytest.mark.skipif(not (Path(__file__).parents[1] / "models/bundles/default/manifest.json")
                    .is_file(), reason="the default bundle is absent")
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_a_face_is_the_same_alone_and_in_batches_of_8_and_32(tmp_path, precision):
    """The CPU's kernels round the last rows of a batch differently; faces that get records
    are rendered so that their place in a batch does not matter (the default bundle: its
    trained weights show the rounding where random tiny ones may not)."""
    bundle = load_bundle(Path(__file__).parents[1] / "models/bundles/default")
    bundle.generator.use_precision(precision)
    seeds = list(range(40, 72))
    images = {}
    for size in (1, 8, 32):
        out = tmp_path / f"b{size}"
        generate_from_seeds(bundle, seeds if size > 1 else [47], out, batch_size=size,
                            progress=False)
        from PIL import Image

        images[size] = np.asarray(Image.open(out / "seed0000000047.png"))
    np.testing.assert_array_equal(images[1], images[8])
    np.testing.assert_array_equal(images[1], images[32])
