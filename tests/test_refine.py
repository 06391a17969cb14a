"""Refine: fine-tuning private copies on one photo lowers its reconstruction error and never
touches the bundle."""
import re
import shutil
import time

import numpy as np
import pytest

from models.bundle import add_part, load_bundle, module_arrays, sha256_file
from models.encoder import Encoder, EncoderConfig
from models.images import to_uint8
from models.refine import refine, save_refined


@pytest.fixture(scope="module")
def encoder_bundle(tiny_bundle_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("refine") / "b"
    shutil.copytree(tiny_bundle_dir, path)
    bundle = load_bundle(path)
    cfg = EncoderConfig.for_bundle(bundle, channel_base=512, channel_max=64)
    enc = Encoder(cfg)
    enc.set_w_statistics(bundle.generator, num_samples=500)
    add_part(path, "encoder", module_arrays(enc), config=cfg.to_dict())
    return path


def target_face(bundle, seed=3):
    g = bundle.generator
    z = np.random.default_rng(seed).standard_normal((1, 32)).astype(np.float32)
    return to_uint8(g.synthesize(g.map_compiled(z, 0.6)).numpy())[0]


@pytest.mark.parametrize("with_encoder", [True, False])
def test_refine_lowers_the_error_and_leaves_the_bundle_alone(encoder_bundle, tiny_bundle_dir,
                                                             tmp_path, with_encoder):
    path = encoder_bundle if with_encoder else tiny_bundle_dir
    files = {p.name: sha256_file(p) for p in path.iterdir()}
    bundle = load_bundle(path, parts=("generator", "discriminator"))
    photo = target_face(bundle)
    seen = []
    # A step budget, not the clock, ends the test run: under load the first (compiling)
    # steps alone can take many seconds.
    result = refine(bundle, photo, seconds=600, max_steps=12, ratio=5,
                    progress=lambda p, m: seen.append(p))
    assert result.final_error < result.initial_error
    assert result.generator_steps == (2 if with_encoder else 12) and seen[-1] == 100.0
    assert result.encoder_steps == (10 if with_encoder else 0)  # steps 5 and 10 are G steps
    assert {p.name: sha256_file(p) for p in path.iterdir()} == files  # untouched
    out = tmp_path / "refined"
    digest = save_refined(bundle, result, out, note="test")
    refined = load_bundle(out, parts=("generator",))
    assert refined.hash == digest != bundle.hash
    assert refined.manifest["refined_from"] == bundle.hash
    assert refined.has_part("encoder") == with_encoder
    np.testing.assert_array_equal(
        to_uint8(refined.generator.synthesize(result.ws[None]).numpy())[0], result.image)


def test_refine_reports_progress_by_the_clock_in_words(encoder_bundle):
    """Progress comes at once and about every second, also while TensorFlow compiles the first
    steps (it used to sit at 0 % until the tenth step), as the share of the time limit spent
    and what a user understands, not step counts."""
    bundle = load_bundle(encoder_bundle, parts=("generator", "discriminator"))
    photo = target_face(bundle)
    seen = []
    started = time.monotonic()
    result = refine(bundle, photo, seconds=5, ratio=5,
                    progress=lambda p, m: seen.append((time.monotonic() - started, p, m)))
    times, percents, messages = zip(*seen)
    assert times[0] < 1 and percents[0] < 5 and messages[0].startswith("Preparing")
    assert list(percents) == sorted(percents) and percents[-1] == 100.0
    assert len([p for p in percents if 0 < p < 100]) >= 3  # it advances before the end
    assert max(b - a for a, b in zip(times, times[1:])) < 5
    words = re.compile(r"(Preparing a private copy of the model|Adapting the model to the "
                       r"photo): (about \d+ s left|almost done)")
    assert all(words.fullmatch(m) for m in messages[:-1]), messages
    assert "Adapting the model to the photo: about" in " ".join(messages)
    assert messages[-1] == f"Adapted the model to the photo in {result.seconds:.0f} s"


def test_refine_time_left_in_words():
    from models.refine import time_left

    assert [time_left(s) for s in (0.5, 42.4, 150)] == ["almost done", "about 42 s left",
                                                       "about 2 min left"]


def test_refine_checks_its_arguments(tiny_bundle_dir):
    bundle = load_bundle(tiny_bundle_dir)
    with pytest.raises(ValueError, match="aligned 32×32 RGB face"):
        refine(bundle, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="time limit must be positive"):
        refine(bundle, np.zeros((32, 32, 3), np.uint8), seconds=0)


def test_refine_command(encoder_bundle, tmp_path):
    from tests.conftest import SHARED, ligan

    photo = SHARED / "faces" / "london" / "013_03.jpg"
    if not photo.exists():
        pytest.skip(f"{photo} is absent (shared photos)")
    out = tmp_path / "r"
    r = ligan("refine", "--bundle", str(encoder_bundle), str(photo), "--seconds", "10",
              "--ratio", "3", "--outdir", str(out))
    assert r.returncode == 0, r.stderr
    assert "refined bundle" in r.stdout and (out / "bundle" / "manifest.json").exists()
    again = ligan("refine", "--bundle", str(encoder_bundle), str(photo), "--outdir", str(out))
    assert again.returncode == 2 and "already exists; choose another --outdir" in again.stderr
