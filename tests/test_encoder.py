"""The encoder: architecture, training (losses fall, resume, export) and use in inversion."""
import json
import shutil

import numpy as np
import pytest

from models.bundle import load_bundle
from models.encoder import Encoder, EncoderConfig, load_encoder, shared_encoder
from models.stylegan2 import ConfigError
from tests.conftest import SHARED, ligan

LONDON = SHARED / "faces" / "london"
needs_faces = pytest.mark.skipif(not LONDON.is_dir(), reason=f"{LONDON} is absent (shared photos)")


def test_encoder_shapes_and_starting_point(tiny_bundle_dir):
    bundle = load_bundle(tiny_bundle_dir)
    cfg = EncoderConfig.for_bundle(bundle, channel_base=512, channel_max=64)
    enc = Encoder(cfg)
    enc.set_w_statistics(bundle.generator, num_samples=500)
    ws = enc(np.zeros((3, 32, 32, 3), np.float32)).numpy()
    assert ws.shape == (3, 8, 32)
    assert cfg.pyramid == {"coarse": 4, "middle": 8, "fine": 16}
    with pytest.raises(ConfigError, match="do not cover the 8 w\\+ entries"):
        EncoderConfig(resolution=32, num_ws=8, w_dim=32,
                      style_ranges={"coarse": [0, 4], "middle": [4, 6], "fine": [8, 8]})


@needs_faces
def test_training_lowers_the_losses_resumes_and_adds_the_encoder(tiny_bundle_dir, tmp_path):
    from models.training.encoder import EncoderTrainConfig, EncoderTrainer

    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    before = load_bundle(path).hash
    settings = dict(bundle=str(path), data=str(LONDON), batch_size=4, tick_steps=15,
                    snapshot_steps=15, progress=False, channel_base=512, channel_max=64,
                    deterministic=True)
    first = EncoderTrainer(EncoderTrainConfig(steps=30, **settings), tmp_path / "run").train()
    assert first["finished"] and first["bundle_hash"] != before
    # Same run folder, more steps: resumes at 30 and adds the better encoder again.
    second = EncoderTrainer(EncoderTrainConfig(steps=60, **settings), tmp_path / "run").train()
    assert second["steps"] == 60
    ticks = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [t["step"] for t in ticks] == [15, 30, 45, 60]
    assert ticks[-1]["fake/pixel"] < ticks[0]["fake/pixel"]
    assert ticks[-1]["total"] < ticks[0]["total"]
    bundle = load_bundle(path, parts=("generator", "discriminator"))
    enc = load_encoder(bundle)
    assert enc(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 8, 32)
    # The inference encoder is built once per loaded bundle and gives the same latents.
    faces = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    encode = shared_encoder(bundle)
    assert shared_encoder(bundle) is encode
    np.testing.assert_allclose(encode(faces), enc(faces.astype(np.float32) / 127.5 - 1).numpy(),
                               atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())[-1] == \
        "reconstruction00000060.png"

    # A new run can start from that encoder (fine-tuning after the generator trained further).
    again = EncoderTrainer(EncoderTrainConfig(steps=1, resume_from=str(path), **settings),
                           tmp_path / "run2")
    for name, var in again.encoder.named_variables():
        if name not in ("w_avg", "w_std"):
            np.testing.assert_array_equal(var.numpy(), dict(enc.named_variables())[name].numpy())
    other = dict(settings, channel_max=32)
    with pytest.raises(ValueError, match="has another architecture"):
        EncoderTrainer(EncoderTrainConfig(steps=1, resume_from=str(path), **other),
                       tmp_path / "run3")

    # Inversion now starts from the encoder; 0 projector steps = the encoder alone.
    out = tmp_path / "inv"
    r = ligan("invert", "--bundle", str(path), str(LONDON / "005_03.jpg"), "--steps", "0",
              "--outdir", str(out))
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    assert rec["parameters"]["method"] == "encoder" and rec["parameters"]["steps"] == 0


def test_a_bundle_without_encoder_needs_projector_steps(tiny_bundle_dir, tmp_path):
    if not LONDON.is_dir():
        pytest.skip(f"{LONDON} is absent (shared photos)")
    r = ligan("invert", "--bundle", str(tiny_bundle_dir), str(LONDON / "005_03.jpg"), "--steps",
              "0", "--outdir", str(tmp_path))
    assert r.returncode == 2 and "no encoder, so the projector needs at least 1 step" in r.stderr
