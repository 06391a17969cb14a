"""Mixed precision (float16 discriminator blocks) on the CPU: same scores within float16
rounding, and training steps with finite losses."""
from __future__ import annotations

import json
import math

import numpy as np

from tests.test_training import needs_faces, tiny_train_config


def test_mixed_discriminator_matches_float32():
    from models.stylegan2 import Discriminator, DiscriminatorConfig
    from models.training.stylegan2 import discriminate_mixed

    d = Discriminator(DiscriminatorConfig(resolution=32, channel_base=1024, channel_max=64),
                      seed=2)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    full = d(x).numpy()
    mixed = discriminate_mixed(d, x)
    assert mixed.dtype.name == "float32"
    np.testing.assert_allclose(mixed.numpy(), full, atol=0.02 * (1 + np.abs(full).max()))


@needs_faces
def test_training_steps_with_mixed_precision_give_finite_losses(tmp_path):
    from models.training.stylegan2 import Trainer, default_mixed_precision

    assert default_mixed_precision(tmp_path / "new") is False  # no GPU on this machine
    run = tmp_path / "run"
    trainer = Trainer(tiny_train_config(total_kimg=0.008, tick_kimg=0.004,
                                        snapshot_kimg=0.008, mixed_precision=True), run)
    assert trainer.train()["finished"]
    ticks = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(ticks) == 2
    for t in ticks:
        for key in ("loss/G", "loss/D", "loss/D_r1_penalty", "loss/G_pl_penalty"):
            assert math.isfinite(t[key]), (key, t)
    for _, v in trainer.D.named_variables():
        assert v.dtype.name == "float32" and np.isfinite(v.numpy()).all()
    assert default_mixed_precision(run) is True  # a resumed run keeps its setting
