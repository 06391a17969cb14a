"""Precision (models.precision): what ``auto`` picks on which hardware, bfloat16 rendering close
to float32, bfloat16 training, checkpoints that move between precisions, records that name and
keep their precision, and the float16 discriminator recipe for GPUs.

bfloat16 runs on every CPU (emulated where it has no bfloat16 units, slowly but correctly), so
these tests run here whatever the processor; the speed is a benchmark's business
(tests/bench/training.py, tests/bench/generator.py).
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from tests.conftest import REPO, needs_faces, tiny_train_config

# A processor line as /proc/cpuinfo writes it, with and without bfloat16 units.
CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f "
           "{extra}\nbogomips\t: 4000\n\nprocessor\t: 1\nflags\t\t: fpu\n")
DEFAULT_BUNDLE = REPO / "models" / "bundles" / "default"


def test_auto_picks_by_the_hardware():
    from models.precision import cpu_flags, resolve_precision

    plain = cpu_flags(CPUINFO.format(extra=""))
    assert "avx512f" in plain and "amx_bf16" not in plain  # the first processor's line
    assert resolve_precision("auto", flags=plain, gpus=0).name == "float32"
    why = resolve_precision("auto", flags=plain, gpus=0).reason
    assert "no native bfloat16" in why and "amx_bf16" in why
    for extra in ("amx_bf16 amx_tile", "avx512_bf16"):
        chosen = resolve_precision("auto", flags=cpu_flags(CPUINFO.format(extra=extra)), gpus=0)
        assert chosen.name == "bfloat16" and extra.split()[0] in chosen.reason
    assert resolve_precision("auto", flags=plain, gpus=2).name == "float16"
    assert resolve_precision("BFloat16", flags=plain, gpus=0).name == "bfloat16"  # explicit
    assert cpu_flags("") == frozenset()


def test_auto_renders_a_small_generator_in_float32_even_with_bfloat16_units():
    """Rendering also weighs the generator: the default's 0.35 GFLOP a face leaves the units
    idle (measured slower in bfloat16), a larger generator gains; explicit settings win."""
    from models.precision import (BF16_RENDER_MIN_GFLOP, cpu_flags, resolve_precision,
                                  resolve_render_precision)
    from models.stylegan2.config import GeneratorConfig, generator_flops

    amx = cpu_flags(CPUINFO.format(extra="amx_bf16"))
    plain = cpu_flags(CPUINFO.format(extra=""))
    small = GeneratorConfig(resolution=64, z_dim=256, w_dim=256, mapping_layers=4,
                            channel_base=2048, channel_max=128)  # the default's shape
    large = GeneratorConfig(resolution=64, z_dim=256, w_dim=256, mapping_layers=4,
                            channel_base=8192, channel_max=256)
    assert generator_flops(small)["flops_per_image"] < BF16_RENDER_MIN_GFLOP * 1e9 < \
        generator_flops(large)["flops_per_image"]
    chosen = resolve_render_precision("auto", small, flags=amx, gpus=0)
    assert chosen.name == "float32" and "0.35 GFLOP a face" in chosen.reason
    chosen = resolve_render_precision("auto", large, flags=amx, gpus=0)
    assert chosen.name == "bfloat16" and "amx_bf16" in chosen.reason
    assert "3.8 GFLOP" in chosen.reason
    assert resolve_render_precision("bfloat16", small, flags=amx, gpus=0).name == "bfloat16"
    assert resolve_render_precision("auto", large, flags=plain, gpus=0).name == "float32"
    assert resolve_precision("auto", flags=amx, gpus=0).name == "bfloat16"  # training: hardware


def test_bad_precision_names_are_refused_with_the_choices():
    from models.precision import PrecisionError, check_precision
    from setup.config import SettingsError, load_settings

    with pytest.raises(PrecisionError, match="auto, float32, bfloat16, float16"):
        check_precision("half")
    with pytest.raises(SettingsError, match="LIGAN_PRECISION"):
        load_settings({"LIGAN_PRECISION": "fp8"})
    assert load_settings({}).precision == "auto"
    assert load_settings({"LIGAN_PRECISION": "bfloat16"}).precision == "bfloat16"


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(),
                    reason="the default bundle is absent")
def test_bfloat16_renders_are_close_to_float32_and_records_keep_their_precision(tmp_path):
    """On the trained default generator: bfloat16 keeps 8 significand bits (relative rounding
    2⁻⁹), and the error of ~10 layers stays below a few grey levels per pixel — far under what
    changes a face's identity (the generator benchmark measures that with dlib)."""
    from models.bundle import load_bundle
    from models.generate import generate_from_seeds, render_record
    from models.images import to_uint8

    bundle = load_bundle(DEFAULT_BUNDLE)
    g = bundle.generator
    z = np.random.RandomState(0).randn(8, g.cfg.z_dim).astype(np.float32)
    ws = g.map_compiled(z, 0.7)
    full = to_uint8(g.synthesize(ws, precision="float32").numpy()).astype(int)
    half = to_uint8(g.synthesize(ws, precision="bfloat16").numpy()).astype(int)
    diff = np.abs(full - half)
    assert 0 < diff.mean() < 2.0, diff.mean()
    assert np.percentile(diff, 99) <= 12, np.percentile(diff, 99)

    # A face made in bfloat16 says so, and re-renders bit for bit in bfloat16 even when the
    # generator now renders in float32.
    g.use_precision("bfloat16")
    try:
        made = generate_from_seeds(bundle, [3, 4], tmp_path, progress=False)
    finally:
        g.use_precision("float32")
    assert {r.precision for r in made} == {"bfloat16"}
    line = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    assert line["precision"] == "bfloat16"
    from PIL import Image

    saved = np.asarray(Image.open(tmp_path / made[0].image))
    np.testing.assert_array_equal(render_record(bundle, made[0]), saved)
    # float16 is a training recipe: rendering under it is float32.
    g.use_precision("float16")
    assert g.precision == "float32"


@needs_faces
def test_bfloat16_gan_training_steps_and_checkpoints_move_between_precisions(tmp_path):
    from models.training.run import run_precision
    from models.training.stylegan2 import Trainer

    run = tmp_path / "run"
    trainer = Trainer(tiny_train_config(total_kimg=0.008, tick_kimg=0.004, snapshot_kimg=0.008,
                                        precision="bfloat16"), run)
    assert trainer.train()["finished"]
    ticks = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for t in ticks:
        for key in ("loss/G", "loss/D", "loss/D_r1_penalty", "loss/G_pl_penalty"):
            assert math.isfinite(t[key]), (key, t)
    for net in (trainer.G, trainer.D):
        for _, v in net.named_variables():  # master weights stay float32
            assert v.dtype.name == "float32" and np.isfinite(v.numpy()).all()
    assert run_precision(run, None).name == "bfloat16"  # resuming keeps the run's precision
    assert run_precision(run, "float32").name == "float32"  # unless told otherwise

    # The bfloat16 checkpoint resumes in float32 with the same weights, and trains on.
    saved = {n: v.numpy() for n, v in trainer.G.named_variables()}
    resumed = Trainer(tiny_train_config(total_kimg=0.012, tick_kimg=0.004,
                                        snapshot_kimg=0.008, precision="float32"), run)
    resumed.manager.restore_or_initialize()
    for n, v in resumed.G.named_variables():
        np.testing.assert_array_equal(v.numpy(), saved[n])
    assert resumed.train()["nimg"] == 12
    assert json.loads((run / "config.json").read_text())["precision"] == "float32"


@needs_faces
def test_runs_from_before_the_precision_setting_resume(tmp_path):
    """Run folders whose config.json has the old ``mixed_precision`` boolean keep working."""
    from models.training.run import run_precision
    from models.training.stylegan2 import Trainer

    run = tmp_path / "old"
    Trainer(tiny_train_config(total_kimg=0.004, tick_kimg=0.004, snapshot_kimg=0.004), run)
    cfg = json.loads((run / "config.json").read_text())
    cfg.pop("precision")
    cfg["mixed_precision"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    assert run_precision(run, None).name == "float16"
    Trainer(tiny_train_config(total_kimg=0.004, tick_kimg=0.004, snapshot_kimg=0.004,
                              precision="float16"), run)


def test_bfloat16_encoder_training_lowers_its_losses(tiny_bundle_dir, tmp_path):
    from models.training.encoder import EncoderTrainConfig, EncoderTrainer

    path = tmp_path / "b"
    shutil.copytree(tiny_bundle_dir, path)
    settings = dict(bundle=str(path), batch_size=4, tick_steps=10, snapshot_steps=40,
                    progress=False, channel_base=512, channel_max=64, deterministic=True,
                    export=False, precision="bfloat16")
    trainer = EncoderTrainer(EncoderTrainConfig(steps=40, **settings), tmp_path / "run")
    assert trainer.train()["finished"]
    ticks = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert ticks[-1]["fake/latent"] < ticks[0]["fake/latent"]
    assert ticks[-1]["total"] < ticks[0]["total"]
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        EncoderTrainConfig(bundle=str(path), precision="float16")


def test_float16_discriminator_blocks_match_float32():
    """StyleGAN2-ADA's GPU recipe (precision float16), run on the CPU: scores within float16
    rounding."""
    import tensorflow as tf

    from models.stylegan2 import Discriminator, DiscriminatorConfig
    from models.training.stylegan2 import discriminate_mixed

    d = Discriminator(DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64),
                      seed=2)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    full = d(x).numpy()
    mixed = discriminate_mixed(d, x)
    assert mixed.dtype.name == "float32"
    np.testing.assert_allclose(mixed.numpy(), full, atol=0.02 * (1 + np.abs(full).max()))
    bf16 = d(x, dtype=tf.bfloat16)
    assert bf16.dtype.name == "float32"
    np.testing.assert_allclose(bf16.numpy(), full, atol=0.05 * (1 + np.abs(full).max()))


@needs_faces
def test_float16_training_steps_give_finite_losses(tmp_path):
    from models.training.stylegan2 import Trainer

    run = tmp_path / "run"
    trainer = Trainer(tiny_train_config(total_kimg=0.008, tick_kimg=0.004,
                                        snapshot_kimg=0.008, precision="float16"), run)
    assert trainer.train()["finished"]
    ticks = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(ticks) == 2 and all(math.isfinite(t["loss/D"]) for t in ticks)
