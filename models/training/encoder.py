"""Training the encoder of a bundle: generated pairs (image, w+) mixed with real aligned photos.

The generator and discriminator stay frozen. Generated samples (random z, style mixing,
truncation ψ, random noise) come with their true w+: the encoder learns to predict it (latent
loss, in units of W's standard deviation) and to reconstruct the image through the generator
(pixel MSE plus a perceptual term on our discriminator's normalised features — no ImageNet
networks exist here — and, where the bundle has an identity network, the identity distance of
the reconstruction to its input, which keeps the person rather than only the pixels). Real
photos have no latent, only the reconstruction losses, and teach the encoder the look of real
faces. The run folder works like the GAN trainer's; at the end the
encoder is added to the bundle as its ``encoder`` part.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bundle import add_part, load_bundle, module_arrays
from models.encoder import ENCODER_PART, Encoder, EncoderConfig
from models.faces.identity_net import (IDENTITY_WEIGHT, NET_MEASURE, identity_loss,
                                       identity_measure, load_identity_net)
from models.images import make_grid, save_png, to_uint8
from models.precision import compute_dtype, render_precision
from models.training.data import training_dataset
from models.training.optim import Adam
from models.training.run import StopFlag, log, prepare_run_dir, step_loop

RESUMABLE = {"steps", "snapshot_steps", "tick_steps", "max_minutes", "progress", "export",
             "precision"}


@dataclasses.dataclass
class EncoderTrainConfig:
    bundle: str
    data: str | None = None  # folder of aligned real photos (optional)
    steps: int = 20_000
    batch_size: int = 8
    lr: float = 1e-4
    real_fraction: float = 0.5  # share of each batch from real photos when data is given
    psi: float = 0.8
    style_mixing_prob: float = 0.5
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.8
    # identity distance of the reconstruction to its input, by the bundle's identity network
    # (None: IDENTITY_WEIGHT; more than 0 needs a network)
    identity_weight: float | None = None
    channel_base: int = 4096
    channel_max: int = 256
    seed: int = 0
    tick_steps: int = 100
    snapshot_steps: int = 1000
    max_minutes: float | None = None
    deterministic: bool = False
    progress: bool = True
    export: bool = True
    # A bundle whose encoder is the starting point (fine-tuning after the generator trained
    # further); its architecture must match this run's. None: random initialisation.
    resume_from: str | None = None
    # models.precision: float32 or bfloat16 for encoder, generator and discriminator features.
    precision: str = "float32"

    def __post_init__(self) -> None:
        if render_precision(self.precision) != self.precision:
            raise ValueError(f"the encoder trains in float32 or bfloat16, not {self.precision}")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be at least 2, got {self.batch_size}")
        if not 0.0 <= self.real_fraction < 1.0:
            raise ValueError(f"real fraction must be in [0, 1), got {self.real_fraction}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")


class EncoderTrainer:
    def __init__(self, cfg: EncoderTrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.bundle = load_bundle(cfg.bundle, parts=("generator", "discriminator"))
        prepare_run_dir(self.run_dir, cfg, RESUMABLE)
        g = self.bundle.generator
        self.enc_cfg = EncoderConfig.for_bundle(self.bundle, channel_base=cfg.channel_base,
                                                channel_max=cfg.channel_max)
        self.encoder = Encoder(self.enc_cfg, seed=cfg.seed)
        self.dtype = compute_dtype(cfg.precision)
        self.encoder.compute_dtype = self.dtype
        if cfg.resume_from:
            self._load_pretrained(cfg.resume_from)
        # W's statistics always come from this bundle's generator (the encoder predicts
        # offsets from its w_avg in units of its spread).
        self.encoder.set_w_statistics(g, seed=cfg.seed)
        self.opt = Adam(self.encoder.trainable_variables, cfg.lr, betas=(0.9, 0.999))
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(encoder=self.encoder, opt=self.opt, rng=self.rng,
                                              step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_dir / "checkpoints",
                                                  max_to_keep=3)
        self.stop = StopFlag()
        self.identity_weight = (IDENTITY_WEIGHT if cfg.identity_weight is None
                                else cfg.identity_weight)
        self.identity_net = None
        if self.identity_weight:
            bundle = load_bundle(cfg.bundle, parts=())
            if identity_measure(bundle) != NET_MEASURE:
                raise ValueError(f"an identity loss needs an identity network in {cfg.bundle}; "
                                 f"train one with 'ligan train identity'")
            self.identity_net = load_identity_net(bundle)
        n_real = int(round(cfg.batch_size * cfg.real_fraction)) if cfg.data else 0
        self.n_real, self.n_fake = n_real, cfg.batch_size - n_real
        self._train_step = tf.function(self._step)

    def _load_pretrained(self, path: str) -> None:
        from models.bundle import BundleError, assign_weights

        start = load_bundle(path, parts=())
        if not start.has_part(ENCODER_PART):
            raise BundleError(f"bundle {path} has no encoder to start from")
        config = start.manifest["parts"][ENCODER_PART]["config"]
        if config != self.enc_cfg.to_dict():
            raise ValueError(f"the encoder of {path} has another architecture ({config}) than "
                             f"this run's ({self.enc_cfg.to_dict()}); use the same channel and "
                             f"resolution settings")
        assign_weights(self.encoder, start.part_arrays(ENCODER_PART), f"bundle {path}, encoder")
        log.info("encoder initialised from %s", path)

    def _fake_batch(self) -> tuple[tf.Tensor, tf.Tensor]:
        g, cfg = self.bundle.generator, self.cfg
        n, num_ws = self.n_fake, g.num_ws
        w = g.mapping(self.rng.normal([n, g.cfg.z_dim]))
        w2 = g.mapping(self.rng.normal([n, g.cfg.z_dim]))
        cutoff = self.rng.uniform([], 1, num_ws, dtype=tf.int32)
        cutoff = tf.where(self.rng.uniform([]) < cfg.style_mixing_prob, cutoff, num_ws)
        ws = tf.where(tf.range(num_ws)[None, :, None] >= cutoff, w2[:, None], w[:, None])
        ws = g.w_avg + cfg.psi * (ws - g.w_avg)
        seeds = self.rng.uniform_full_int([n], dtype=tf.int32)
        return tf.stop_gradient(g.synthesis(ws, "random", seeds, self.dtype)), ws

    def _losses(self, images: tf.Tensor, true_ws: tf.Tensor | None) -> dict[str, tf.Tensor]:
        cfg, g, d = self.cfg, self.bundle.generator, self.bundle.discriminator
        ws = self.encoder(images)
        recon = g.synthesis(ws, "const", None, self.dtype)
        out = {"pixel": tf.reduce_mean(tf.square(recon - images))}
        if d is not None and cfg.perceptual_weight > 0:
            pairs = zip(d.perceptual_features(recon, self.dtype),
                        d.perceptual_features(images, self.dtype))
            out["perceptual"] = tf.add_n([tf.reduce_mean(tf.reduce_sum(tf.square(a - b), -1))
                                          for a, b in pairs]) / len(d.blocks + [d.epilogue])
        if self.identity_net is not None:
            targets = tf.stop_gradient(self.identity_net(images))
            out["identity"] = identity_loss(self.identity_net, recon, targets)
        if true_ws is not None:
            out["latent"] = tf.reduce_mean(tf.square((ws - true_ws) / self.encoder.w_std))
        return out

    def _step(self, real: tf.Tensor | None) -> dict[str, tf.Tensor]:
        cfg = self.cfg
        fake, true_ws = self._fake_batch()
        with tf.GradientTape() as tape:
            stats = {f"fake/{k}": v for k, v in self._losses(fake, true_ws).items()}
            if real is not None:
                stats.update({f"real/{k}": v for k, v in self._losses(real, None).items()})
            weights = {"pixel": cfg.pixel_weight, "perceptual": cfg.perceptual_weight,
                       "latent": cfg.latent_weight, "identity": self.identity_weight}
            total = tf.add_n([weights[k.split("/")[1]] * v for k, v in stats.items()])
        grads = tape.gradient(total, self.encoder.trainable_variables,
                              unconnected_gradients="zero")
        self.opt.apply(grads)
        stats["total"] = total
        return stats

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.manager.restore_or_initialize():
            log.info("resumed encoder training at step %d", int(self.step.numpy()))
        start = int(self.step.numpy())
        data = None
        if self.n_real:
            ds = training_dataset(cfg.data, self.enc_cfg.resolution, self.n_real, cfg.seed,
                                  skip_images=start * self.n_real)
            data = iter(ds)

        step, _, reason = step_loop(
            self.run_dir, "encoder", self.step, cfg.steps, cfg.tick_steps, cfg.snapshot_steps,
            cfg.max_minutes, cfg.progress, self.stop, self.manager,
            lambda _: self._train_step(next(data) if data is not None else None),
            self.snapshot)
        finished = step >= cfg.steps
        bundle_hash = None
        if finished and cfg.export:
            bundle_hash = add_part(cfg.bundle, ENCODER_PART, module_arrays(self.encoder),
                                   config=self.enc_cfg.to_dict())
            log.info("added the encoder to %s (bundle hash %s)", cfg.bundle, bundle_hash[:12])
        return {"steps": step, "finished": finished, "reason": reason, "bundle_hash": bundle_hash}

    def snapshot(self, step: int) -> None:
        """Checkpoint, and a grid of generated faces (top) with their reconstructions (bottom)."""
        self.manager.save(checkpoint_number=step)
        g = self.bundle.generator
        z = np.random.RandomState(7).randn(6, g.cfg.z_dim).astype(np.float32)
        images = g.synthesize(g.map_compiled(z, self.cfg.psi, reproducible=False),
                              reproducible=False)
        recon = g.synthesize(self.encoder(images), reproducible=False)
        grid = make_grid(to_uint8(np.concatenate([images.numpy(), recon.numpy()])), cols=6)
        save_png(grid, self.run_dir / "samples" / f"reconstruction{step:08d}.png")
