"""The StyleGAN2 training loop, resumable and distributable.

Losses and schedules follow StyleGAN2 / StyleGAN2-ADA: non-saturating logistic loss, R1 on real
images with lazy regularisation (every ``r1_interval`` minibatches), path-length regularisation
(every ``pl_interval``), style-mixing regularisation, an exponential moving average of the
generator (``G_ema``, the one that is exported) and differentiable augmentation for small
datasets. Progress is counted in images shown (kimg). A run folder holds ``config.json``,
``log.txt``, ``checkpoints/``, ``samples/``, ``metrics.jsonl``, ``tensorboard/`` and ``bundle/``
(the latest snapshot as a model bundle). Running the same command again resumes from the last
checkpoint and, with ``deterministic``, continues bit for bit.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from models.bundle import save_bundle
from models.conditioning import LAYOUTS, check_layout, file_labels, group_shares, manifest_labels
from models.conditioning import label_groups as layout_groups
from models.faces.alignment import FRAMINGS
from models.images import make_grid, save_png, to_uint8
from models.precision import check_precision, compute_dtype
from models.stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from models.training.augment import augment, parse_policy
from models.training.balance import balance_weights, check_balance
from models.training.data import DataError, source_files, training_dataset
from models.training.spectrum import radial_power, spectral_loss
from models.training.optim import Adam, lazy_regularization_hyperparams
from models.training.run import StopFlag, append_jsonl, log, prepare_run_dir

# Mixed precision: discriminator blocks run in float16 at the highest resolutions only, as in
# StyleGAN2-ADA (num_fp16_res = 4), with activations clamped between blocks (its conv_clamp).
FP16_BLOCKS = 4
FP16_CLAMP = 256.0

# Settings that may change when a run is resumed; everything else must match config.json.
# (``mixed_precision`` is the boolean that ``precision`` replaced; older run folders hold it.)
#: Decay of the moving average of real faces' ring powers (the spectral loss's target): about
#: the last 100 batches.
SPECTRUM_BETA = 0.99

RESUMABLE = {"total_kimg", "snapshot_kimg", "tick_kimg", "max_minutes", "progress",
             "metrics_real", "metrics_samples", "metrics_psi", "metrics_attributes",
             "metrics_inception",
             "precision", "mixed_precision", "framing", "balance", "balance_power",
             "feature_d", "feature_d_weight", "spectral_weight", "g_lr", "d_lr", "ema_kimg",
             "label_loss_weight"}


@dataclasses.dataclass
class TrainConfig:
    """Everything a StyleGAN2 run depends on (saved as config.json in the run folder)."""

    data: str
    resolution: int = 64
    batch_size: int = 32
    total_kimg: float = 1000.0
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384
    channel_max: int = 512
    # Learning rates and the EMA half-life may be changed when resuming (a schedule by hand:
    # a lower rate once the metrics stop improving).
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    r1_gamma: float | None = None  # None: 0.0002 · resolution² / batch (StyleGAN2-ADA's rule)
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    ema_kimg: float | None = None  # None: batch · 10 / 32
    ema_rampup: float | None = 0.05  # not in runs that start from a bundle (see ema_beta)
    augment: str = "color,translation,cutout"
    mirror: bool = True
    seed: int = 0
    tick_kimg: float = 4.0
    snapshot_kimg: float = 50.0
    max_minutes: float | None = None
    deterministic: bool = False
    progress: bool = True
    data_description: str = ""
    data_licence: str = ""
    # How the training faces are cut (a name in models.faces.FRAMINGS), recorded in the bundle
    # so that photos are aligned alike; it describes the data and may be set on resuming.
    framing: str = "ffhq"
    # Label-balanced sampling (models.training.balance): a UTKFace trait ("" = the data as it
    # is) and how strongly its groups are evened out (0–1); may be switched on when resuming.
    balance: str = ""
    balance_power: float = 0.5
    # A conditional generator and discriminator on the data's labels (a layout in
    # models.conditioning.LAYOUTS, read from the file names; "" = unconditional). Switching it
    # on needs a new run folder: --resume-from an unconditional bundle starts the label weights
    # near-silent (models.bundle.widen_weights), so the run goes on from what that bundle drew.
    conditioning: str = ""
    resume_from: str | None = None
    # The bundle of resume_from may be narrower (a smaller channel base or max, the same
    # resolution and depth): its weights fill the leading channels (models.bundle.widen_weights).
    resume_widen: bool = False
    # Quality metrics at every snapshot (models.training.metrics) against these held-out real
    # faces (image folder or TFRecord shards); None: no metrics.
    metrics_real: str | None = None
    metrics_samples: int = 200
    metrics_psi: float = 0.7
    metrics_attributes: str | None = None  # a bundle whose attribute model classifies
    metrics_inception: str | None = None  # Keras Inception-v3 weights file: FID too
    # models.precision: float32; bfloat16 (G synthesis and D blocks, for CPUs with bfloat16
    # units); float16 (the discriminator's FP16_BLOCKS highest-resolution blocks, StyleGAN2-ADA's
    # GPU recipe). Weights and optimiser state are float32 in all three, so a run may switch.
    precision: str = "float32"
    # A second discriminator reading faces through the identity network of this bundle
    # (models.training.feature_d); None: off. May be switched on when resuming (its head then
    # starts untrained); its loss joins the generator's with feature_d_weight.
    feature_d: str | None = None
    feature_d_weight: float = 0.5
    # Weight of the spectral loss (models.training.spectrum): the generated batch's radial power
    # spectrum against the real batch's, in logs; 0: off. May be changed when resuming.
    spectral_weight: float = 0.0
    # Weight of the label loss (models.training.label_loss): a conditional run's generated faces
    # read by the feature_d bundle's trait probe against their labels; 0: off. May be changed
    # when resuming.
    label_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch size must be at least 2, got {self.batch_size}")
        if self.total_kimg <= 0:
            raise ValueError(f"total kimg must be positive, got {self.total_kimg}")
        if min(self.g_lr, self.d_lr) <= 0:
            raise ValueError(f"learning rates must be positive, got G {self.g_lr}, D {self.d_lr}")
        if self.ema_kimg is not None and self.ema_kimg <= 0:
            raise ValueError(f"the EMA half-life must be positive, got {self.ema_kimg} kimg")
        parse_policy(self.augment)
        check_precision(self.precision, allow_auto=False)
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}; known: {', '.join(FRAMINGS)}")
        if self.balance:
            check_balance(self.balance, self.balance_power)
        if self.conditioning:
            check_layout(self.conditioning)
        if self.resume_widen and not self.resume_from:
            raise ValueError("widening (--widen) needs the bundle to start from (--resume-from)")
        if self.feature_d_weight < 0:
            raise ValueError(f"the feature discriminator's weight must be ≥ 0, got "
                             f"{self.feature_d_weight}")
        if self.spectral_weight < 0:
            raise ValueError(f"the spectral loss's weight must be ≥ 0, got {self.spectral_weight}")
        if self.label_loss_weight < 0:
            raise ValueError(f"the label loss's weight must be ≥ 0, got {self.label_loss_weight}")
        if self.label_loss_weight > 0 and not (self.conditioning and self.feature_d):
            raise ValueError("the label loss needs a conditional run (--condition) and the "
                             "feature discriminator (--feature-d), whose bundle's identity "
                             "network and trait probe read the faces")
        if self.metrics_real and self.metrics_samples < 4:
            raise ValueError(f"metrics need at least 4 samples (k-NN with k=3), got "
                             f"{self.metrics_samples}")

    @property
    def gamma(self) -> float:
        return self.r1_gamma if self.r1_gamma is not None else \
            0.0002 * self.resolution ** 2 / self.batch_size

    @property
    def ema_images(self) -> float:
        kimg = self.ema_kimg if self.ema_kimg is not None else self.batch_size * 10 / 32
        return kimg * 1000

    @property
    def label_groups(self) -> tuple[int, ...]:
        return layout_groups(self.conditioning) if self.conditioning else ()

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(resolution=self.resolution, z_dim=self.z_dim, w_dim=self.w_dim,
                               mapping_layers=self.mapping_layers,
                               channel_base=self.channel_base, channel_max=self.channel_max,
                               label_groups=self.label_groups)

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(resolution=self.resolution, channel_base=self.channel_base,
                                   channel_max=self.channel_max, label_groups=self.label_groups)


def started_from(bundle) -> dict[str, Any]:
    """Where a run resumed from ``bundle`` (a loaded :class:`models.bundle.Bundle`) starts: its
    hash and the kimg its generator had been trained for (its own history included), so a
    run's bundle states its whole count."""
    training = bundle.manifest.get("training", {})
    return {"bundle": bundle.hash,
            "kimg": float(training.get("kimg_total", training.get("kimg", 0.0)))}


def choose_strategy(kind: str = "auto") -> tf.distribute.Strategy:
    """``auto``: MultiWorkerMirrored across SLURM tasks when a job has several, Mirrored over
    all GPUs when there are several, else the default (one device). ``mirrored`` forces
    MirroredStrategy over every visible device of the first kind (GPUs, else CPUs)."""
    if kind == "auto":
        if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
            return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        if len(tf.config.list_logical_devices("GPU")) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    raise ValueError(f"unknown strategy {kind!r}: use auto or mirrored")


def discriminate_mixed(D: Discriminator, images: tf.Tensor,
                       labels: tf.Tensor | None = None) -> tf.Tensor:
    """``D(images)`` with the first :data:`FP16_BLOCKS` blocks (the highest resolutions, where
    most of the arithmetic is) in float16 and the rest, the epilogue and the scores in float32.

    The weights stay float32 (the layers cast them to their input's dtype), so gradients and
    optimiser state are float32; non-finite gradients are zeroed by :class:`Adam`, as in the
    official trainer, which uses no loss scaling either.
    """
    x = tf.convert_to_tensor(images, tf.float32)
    for i, block in enumerate(D.blocks):
        half = i < FP16_BLOCKS
        x = block(tf.cast(x, tf.float16) if half else x)
        if half:
            x = tf.cast(tf.clip_by_value(x, -FP16_CLAMP, FP16_CLAMP), tf.float32)
    return D.epilogue(x, labels=labels)


class Trainer:
    """One StyleGAN2 run in one run folder."""

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike,
                 strategy: tf.distribute.Strategy | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.strategy = strategy or choose_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        if cfg.batch_size % self.replicas:
            raise ValueError(f"batch size {cfg.batch_size} is not divisible by the "
                             f"{self.replicas} replicas")
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.policy = parse_policy(cfg.augment)
        self.dtype = compute_dtype(cfg.precision)
        files, records = source_files(cfg.data)  # fail on bad data before a run folder is made
        self.sampling_weights, self.balance_report = (
            balance_weights(files, cfg.balance, cfg.balance_power) if cfg.balance else (None, None))
        self.labels = None  # one label row per training file (conditional runs)
        if cfg.conditioning:
            if records:
                raise DataError("conditional training reads labels from image file names, "
                                "not TFRecord shards")
            self.labels = file_labels(files, cfg.conditioning)
        if cfg.metrics_real:
            source_files(cfg.metrics_real)
        prepare_run_dir(self.run_dir, cfg, RESUMABLE)
        with self.strategy.scope():
            gcfg, dcfg = cfg.generator_config(), cfg.discriminator_config()
            self.G = Generator(gcfg, seed=cfg.seed)
            self.D = Discriminator(dcfg, seed=cfg.seed + 1)
            self.G_ema = Generator(gcfg, seed=cfg.seed)
            self.started_from: dict[str, Any] | None = None
            if cfg.resume_from:
                self._load_pretrained(cfg.resume_from)
            if self.labels is not None:  # labels drawn without data come in the data's shares
                self.G.mapping.label_prior.assign(group_shares(self.labels, cfg.label_groups))
            self._copy(self.G, self.G_ema)
            g_lr, g_betas = lazy_regularization_hyperparams(cfg.g_lr, (0.0, 0.99), cfg.pl_interval)
            d_lr, d_betas = lazy_regularization_hyperparams(cfg.d_lr, (0.0, 0.99), cfg.r1_interval)
            self.opt_g = Adam(self.G.trainable_variables, g_lr, g_betas, name="opt_g")
            self.opt_d = Adam(self.D.trainable_variables, d_lr, d_betas, name="opt_d")
            self.FD, self.opt_fd = None, None
            if cfg.feature_d:
                from models.training.feature_d import HEAD_LR, load_feature_discriminator

                self.FD = load_feature_discriminator(cfg.feature_d, cfg.resolution, cfg.seed + 2)
                self.opt_fd = Adam(self.FD.trainable_variables, HEAD_LR, (0.0, 0.99),
                                   name="opt_fd")
            self.label_reader = None
            if cfg.label_loss_weight > 0:
                from models.training.label_loss import load_label_reader

                self.label_reader = load_label_reader(cfg.feature_d, cfg.conditioning)
            self.rng = tf.random.Generator.from_seed(cfg.seed)
            agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
            self.nimg = tf.Variable(0, dtype=tf.int64, trainable=False, aggregation=agg)
            self.pl_mean = tf.Variable(0.0, trainable=False, aggregation=agg)
            # The spectral loss's target: a moving average of the real batches' ring powers,
            # bias-corrected by the steps averaged (not checkpointed: it refills in ~100 steps).
            self.real_power = tf.Variable(tf.zeros([cfg.resolution // 2 - 1]), trainable=False,
                                          aggregation=agg)
            self.real_power_steps = tf.Variable(0.0, trainable=False, aggregation=agg)
        # The feature discriminator's head is checkpointed when it is on; a checkpoint without
        # one (switched on when resuming) leaves the head as initialised.
        extra = {"FD": self.FD.head, "opt_fd": self.opt_fd} if self.FD is not None else {}
        self.checkpoint = tf.train.Checkpoint(
            G=self.G, D=self.D, G_ema=self.G_ema, opt_g=self.opt_g, opt_d=self.opt_d,
            rng=self.rng, nimg=self.nimg, pl_mean=self.pl_mean, **extra)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_dir / "checkpoints",
                                                  max_to_keep=3)
        self._step_fns: dict[tuple[bool, bool], Callable] = {}
        self.stop = StopFlag()
        self._real_set = None  # held-out real faces for the metrics, built at the first snapshot
        self._writer = None
        self._attribute_model = self._load_attribute_model(cfg.metrics_attributes)
        self._inception = None
        if cfg.metrics_inception:  # a bad file fails now, not at the first snapshot
            from models.training.fid import InceptionFeatures

            self._inception = InceptionFeatures(cfg.metrics_inception)

    # -- set-up ---------------------------------------------------------------------------

    def _load_pretrained(self, path: str) -> None:
        from models.bundle import (BundleShapeError, assign_weights, load_bundle, read_manifest,
                                   widen_weights)

        # A conditional run may start from an unconditional bundle: its label weights start
        # near-silent, as widening starts new channels.
        unconditional = not read_manifest(path)["parts"]["generator"]["config"].get(
            "label_groups")
        widen = self.cfg.resume_widen or (bool(self.cfg.conditioning) and unconditional)
        bundle = load_bundle(path, parts=("generator", "discriminator") if widen else ())
        for part, net in (("generator", self.G), ("discriminator", self.D)):
            if not bundle.has_part(part):
                continue
            where = f"{path} ({part})"
            if widen:
                widened = widen_weights(net, getattr(bundle, part), where)
                log.info("%s: %d variables widened to this network's channels or labels", where,
                         widened)
                continue
            try:
                assign_weights(net, bundle.part_arrays(part), where)
            except BundleShapeError as exc:
                raise BundleShapeError(f"{exc} (a narrower network of the same resolution can "
                                       f"be widened: --widen)") from None
        self.started_from = started_from(bundle)
        log.info("initialised from bundle %s (%s, %.1f kimg)", path, bundle.hash[:12],
                 self.started_from["kimg"])

    def _load_attribute_model(self, path: str | None):
        if path is None:
            return None
        from models.attributes.model import load_attribute_model
        from models.bundle import load_bundle

        model = load_attribute_model(load_bundle(path, parts=()))
        if model.cfg.resolution != self.cfg.resolution:
            raise ValueError(f"the attribute model of {path} takes {model.cfg.resolution}-px "
                             f"faces, this run trains at {self.cfg.resolution} px")
        return model

    @staticmethod
    def _copy(src: Generator, dst: Generator) -> None:
        for (_, a), (_, b) in zip(src.named_variables(), dst.named_variables()):
            b.assign(a)

    # -- one training step ------------------------------------------------------------------

    def _sample_ws(self, n: int, labels: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """w+ for ``n`` random faces with style mixing; also the unmixed w for ``w_avg``.
        ``labels`` [n, c_dim]: the groups of a conditional generator's faces (None: drawn
        from z, in the prior's shares)."""
        g, cfg = self.G, self.cfg
        num_ws = g.num_ws
        w = g.mapping(self.rng.normal([n, cfg.z_dim]), labels)
        ws = tf.tile(w[:, None], [1, num_ws, 1])
        if cfg.style_mixing_prob > 0:
            cutoff = self.rng.uniform([], 1, num_ws, dtype=tf.int32)
            cutoff = tf.where(self.rng.uniform([]) < cfg.style_mixing_prob, cutoff, num_ws)
            w2 = g.mapping(self.rng.normal([n, cfg.z_dim]), labels)
            mix = tf.range(num_ws)[None, :, None] >= cutoff
            ws = tf.where(mix, w2[:, None], ws)
        return ws, w

    def _render(self, ws: tf.Tensor) -> tf.Tensor:
        seeds = self.rng.uniform_full_int([tf.shape(ws)[0]], dtype=tf.int32)
        return self.G.synthesis(ws, "random", seeds, self.dtype)

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        return augment(images, self.policy, self.rng) if self.policy else images

    def _d_logits(self, images: tf.Tensor, labels: tf.Tensor | None = None) -> tf.Tensor:
        images = self._augment(images)
        if self.cfg.precision == "float16":
            return discriminate_mixed(self.D, images, labels)
        return self.D(images, self.dtype, labels)

    def _fd_logits(self, images: tf.Tensor) -> tf.Tensor:
        return self.FD(self._augment(images))

    def _real_power_target(self, real: tf.Tensor, ctx) -> tf.Tensor:
        """Fold this real batch into the moving average of real ring powers; its current,
        bias-corrected value."""
        power = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, radial_power(real))
        self.real_power.assign(SPECTRUM_BETA * self.real_power + (1 - SPECTRUM_BETA) * power)
        self.real_power_steps.assign_add(1.0)
        return self.real_power / (1 - SPECTRUM_BETA ** self.real_power_steps)

    def _replica_step(self, batch, ema_beta: tf.Tensor, do_pl: bool,
                      do_r1: bool) -> dict[str, tf.Tensor]:
        """One step of G, D and their regularisers on a batch of real images (with their label
        rows in a conditional run: the generated faces of the step take the same labels, so
        they come in the data's shares)."""
        cfg = self.cfg
        real, labels = batch if self.labels is not None else (batch, None)
        ctx = tf.distribute.get_replica_context()
        n = tf.shape(real)[0]
        n_static = real.shape[0]
        stats: dict[str, tf.Tensor] = {}

        def reduce(grads):
            return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, grads)

        # G main: non-saturating logistic loss.
        g_vars = self.G.trainable_variables
        with tf.GradientTape() as tape:
            ws, w = self._sample_ws(n, labels)
            fake = self._render(ws)
            loss_g = tf.reduce_mean(tf.nn.softplus(-self._d_logits(fake, labels)))
            total = loss_g
            if self.FD is not None:
                features = self.FD.features(self._augment(fake))
                loss_g_feature = tf.reduce_mean(tf.nn.softplus(-self.FD.head(features)))
                stats["loss/G_feature"] = loss_g_feature
                total += cfg.feature_d_weight * loss_g_feature
                if self.label_reader is not None:
                    loss_g_label, agreement = self.label_reader.loss(
                        self.FD.embeddings(features), labels)
                    stats["loss/G_label"] = loss_g_label
                    stats.update({f"labels_read/{t}": v for t, v in agreement.items()})
                    total += cfg.label_loss_weight * loss_g_label
            if cfg.spectral_weight > 0:
                loss_g_spectral = spectral_loss(fake, self._real_power_target(real, ctx))
                stats["loss/G_spectral"] = loss_g_spectral
                total += cfg.spectral_weight * loss_g_spectral
        self.opt_g.apply(reduce(tape.gradient(total, g_vars, unconnected_gradients="zero")))
        self.G.update_w_avg(w)
        stats["loss/G"] = loss_g

        # G reg: path-length regularisation on a smaller batch, every pl_interval steps.
        if do_pl and cfg.pl_weight > 0:
            m = max(n_static // cfg.pl_batch_shrink, 1)
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    ws, _ = self._sample_ws(m, None if labels is None else labels[:m])
                    inner.watch(ws)
                    img = self._render(ws)
                    noise = self.rng.normal(tf.shape(img)) / math.sqrt(cfg.resolution ** 2)
                    total = tf.reduce_sum(img * noise)
                grads = inner.gradient(total, ws)
                lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))
                pl_mean = self.pl_mean + cfg.pl_decay * (tf.reduce_mean(lengths) - self.pl_mean)
                penalty = tf.square(lengths - pl_mean)
                loss_pl = tf.reduce_mean(penalty) * cfg.pl_weight * cfg.pl_interval
            self.opt_g.apply(reduce(outer.gradient(loss_pl, g_vars, unconnected_gradients="zero")))
            self.pl_mean.assign(ctx.all_reduce(tf.distribute.ReduceOp.MEAN, pl_mean))
            stats["loss/G_pl_penalty"] = tf.reduce_mean(penalty)
            stats["pl_mean"] = pl_mean

        # D main: logistic loss on generated and real images.
        d_vars = self.D.trainable_variables
        fake = tf.stop_gradient(self._render(self._sample_ws(n, labels)[0]))
        with tf.GradientTape() as tape:
            fake_logits = self._d_logits(fake, labels)
            real_logits = self._d_logits(real, labels)
            loss_d = (tf.reduce_mean(tf.nn.softplus(fake_logits))
                      + tf.reduce_mean(tf.nn.softplus(-real_logits)))
        self.opt_d.apply(reduce(tape.gradient(loss_d, d_vars, unconnected_gradients="zero")))
        stats["loss/D"] = loss_d
        stats["scores/real"] = tf.reduce_mean(real_logits)
        stats["scores/fake"] = tf.reduce_mean(fake_logits)
        if self.FD is not None:
            fd_vars = self.FD.trainable_variables
            with tf.GradientTape() as tape:
                fd_fake = self._fd_logits(fake)
                fd_real = self._fd_logits(real)
                loss_fd = (tf.reduce_mean(tf.nn.softplus(fd_fake))
                           + tf.reduce_mean(tf.nn.softplus(-fd_real)))
            self.opt_fd.apply(reduce(tape.gradient(loss_fd, fd_vars,
                                                   unconnected_gradients="zero")))
            stats["loss/D_feature"] = loss_fd
            stats["scores/feature_real"] = tf.reduce_mean(fd_real)
            stats["scores/feature_fake"] = tf.reduce_mean(fd_fake)

        # D reg: R1 gradient penalty on real images, every r1_interval steps.
        if do_r1 and cfg.gamma > 0:
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(real)
                    total = tf.reduce_sum(self._d_logits(real, labels))
                grads = inner.gradient(total, real)
                penalty = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
                loss_r1 = tf.reduce_mean(penalty) * (cfg.gamma / 2) * cfg.r1_interval
            self.opt_d.apply(reduce(outer.gradient(loss_r1, d_vars, unconnected_gradients="zero")))
            stats["loss/D_r1_penalty"] = tf.reduce_mean(penalty)

        # G_ema: moving average of the weights; buffers (noise, w_avg) are copied.
        for (_, src), (_, dst) in zip(self.G.named_variables(), self.G_ema.named_variables()):
            if src.trainable:
                dst.assign(src + (dst - src) * ema_beta)
            else:
                dst.assign(src)
        return stats

    def _step_fn(self, do_pl: bool, do_r1: bool) -> Callable:
        key = (do_pl, do_r1)
        if key not in self._step_fns:
            def step(batch, ema_beta):
                per_replica = self.strategy.run(self._replica_step,
                                                args=(batch, ema_beta, do_pl, do_r1))
                return {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                        for k, v in per_replica.items()}
            self._step_fns[key] = tf.function(step)
        return self._step_fns[key]

    def _calibrate_feature_d(self, images: int = 256) -> None:
        """Standardise the new feature head's inputs on real training faces (a stream of its
        own, so the training order is the same with or without the head)."""
        cfg = self.cfg
        stream = iter(training_dataset(cfg.data, cfg.resolution, 64, cfg.seed + 7,
                                       mirror=cfg.mirror))
        real = np.concatenate([next(stream).numpy() for _ in range(max(images // 64, 1))])
        self.FD.calibrate(real)
        log.info("feature discriminator: inputs standardised on %d real faces", len(real))

    def ema_beta(self, nimg: int) -> float:
        """The moving average's decay per step. Its half-life ramps up with the images shown
        (``ema_rampup``) in a run that starts from scratch, where G changes fast; a run started
        from a trained bundle (``resume_from``) averages over the full half-life from its first
        step, or its exported faces would follow G's step-to-step noise for 200 kimg."""
        ema = self.cfg.ema_images
        if self.cfg.ema_rampup is not None and not self.cfg.resume_from:
            ema = min(ema, nimg * self.cfg.ema_rampup)
        return 0.5 ** (self.cfg.batch_size / max(ema, 1e-8))

    # -- the loop -------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Train until ``total_kimg`` (or the time limit, or SIGTERM), checkpointing on the way.

        Returns a summary: images shown, whether the run finished, and why it stopped.
        """
        cfg = self.cfg
        restored = self.manager.restore_or_initialize()
        start_nimg = int(self.nimg.numpy())
        if restored:
            log.info("resumed from %s at %.1f kimg", restored, start_nimg / 1000)
        log.info("precision: %s; learning rates G %g, D %g; G's EMA half-life %g kimg",
                 cfg.precision, cfg.g_lr, cfg.d_lr, cfg.ema_images / 1000)
        if self.FD is not None and not self.FD.calibrated:
            self._calibrate_feature_d()
        total = int(cfg.total_kimg * 1000)
        if self.balance_report:
            report = self.balance_report
            log.info("balanced sampling by %s (power %s): data %s → sampled %s%s", cfg.balance,
                     cfg.balance_power, report["data_share"], report["sampled_share"],
                     f"; {len(report['unlabelled'])} image(s) without labels left out "
                     f"(e.g. {report['unlabelled'][0]})" if report["unlabelled"] else "")
        if self.labels is not None:
            groups = [g for names in LAYOUTS[cfg.conditioning].values() for g in names]
            shares = ", ".join(f"{g} {p:.3f}" for g, p in
                               zip(groups, self.G.mapping.label_prior.numpy()))
            log.info("conditioned on %s labels: generated faces take the real batch's labels; "
                     "without labels they are drawn in the data's shares (%s)%s", cfg.conditioning,
                     shares, f"; label loss weight {cfg.label_loss_weight} (faces read by the "
                     f"trait probe of {cfg.feature_d})" if self.label_reader else "")
        ds = training_dataset(cfg.data, cfg.resolution, cfg.batch_size, cfg.seed,
                              skip_images=start_nimg, mirror=cfg.mirror,
                              weights=self.sampling_weights, labels=self.labels)
        data = iter(self.strategy.experimental_distribute_dataset(ds))
        writer = self._writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        bar = tqdm(total=total, initial=min(start_nimg, total), unit="img", unit_scale=True,
                   desc="train", disable=not cfg.progress)
        with self.stop.installed():
            nimg, reason = self._loop(start_nimg, total, data, writer, bar)
        bar.close()
        if reason != "finished" and nimg != start_nimg:
            self.manager.save(checkpoint_number=nimg)
        log.info("%s at %.1f kimg", reason, nimg / 1000)
        return {"nimg": nimg, "finished": nimg >= total, "reason": reason}

    def _loop(self, nimg: int, total: int, data, writer, bar) -> tuple[int, str]:
        """Steps until done or stopped; returns images shown and the reason it ended."""
        cfg = self.cfg
        started = time.monotonic()
        tick_images = int(cfg.tick_kimg * 1000)
        next_tick = (nimg // tick_images + 1) * tick_images
        snap_images = int(cfg.snapshot_kimg * 1000)
        next_snapshot = (nimg // snap_images + 1) * snap_images
        sums: dict[str, float] = {}
        count = 0
        while nimg < total:
            step = nimg // cfg.batch_size
            do_pl = cfg.pl_interval > 0 and step % cfg.pl_interval == 0
            do_r1 = cfg.r1_interval > 0 and step % cfg.r1_interval == 0
            stats = self._step_fn(do_pl, do_r1)(
                next(data), tf.constant(self.ema_beta(nimg), tf.float32))
            nimg = int(self.nimg.assign_add(cfg.batch_size).numpy())
            bar.update(cfg.batch_size)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            if nimg >= next_tick or nimg >= total:
                self._log_tick(writer, nimg, {k: v / count for k, v in sums.items()},
                               time.monotonic() - started)
                sums, count = {}, 0
                next_tick += tick_images
            if nimg >= next_snapshot or nimg >= total:
                self.snapshot(nimg)
                next_snapshot += snap_images
            if self.stop:
                return nimg, f"stopped by {self.stop.reason}"
            if cfg.max_minutes is not None and time.monotonic() - started > cfg.max_minutes * 60:
                return nimg, f"stopped at the {cfg.max_minutes:g}-minute limit"
        return nimg, "finished"

    def _log_tick(self, writer, nimg: int, stats: dict[str, float], seconds: float) -> None:
        append_jsonl(self.run_dir / "metrics.jsonl",
                     {"kimg": nimg / 1000, "seconds": round(seconds, 1), **stats})
        with writer.as_default(step=nimg // 1000):
            for k, v in stats.items():
                tf.summary.scalar(k, v)
        writer.flush()
        log.info("kimg %.1f  %s", nimg / 1000,
                 "  ".join(f"{k} {v:.4f}" for k, v in sorted(stats.items())))

    def snapshot(self, nimg: int) -> Path:
        """Checkpoint, a sample grid from G_ema, the quality metrics (when configured) and the
        run's bundle; returns the bundle path."""
        self.manager.save(checkpoint_number=nimg)
        z = np.random.RandomState(123).randn(16, self.cfg.z_dim).astype(np.float32)
        ws = self.G_ema.map_compiled(z, reproducible=False)
        images = self.G_ema.synthesize(ws, "const", reproducible=False).numpy()
        save_png(make_grid(to_uint8(images), cols=4), self.run_dir / "samples" /
                 f"fakes{nimg:010d}.png")
        quality = self.quality_metrics(nimg) if self.cfg.metrics_real else None
        return self.export_bundle(nimg, quality)

    def quality_metrics(self, nimg: int) -> dict[str, Any]:
        """models.training.metrics for G_ema against the held-out real faces: appended to
        metrics.jsonl (``"snapshot": true`` lines, scalars as ``metrics/…``), TensorBoard, and
        the log."""
        from models.training import metrics

        cfg = self.cfg
        if self._real_set is None:
            self._real_set = metrics.RealSet(cfg.metrics_real, cfg.metrics_samples,
                                             cfg.resolution, cfg.seed, cfg.progress)
        result = metrics.evaluate_generator(self.G_ema, self._real_set, cfg.metrics_samples,
                                            cfg.metrics_psi, cfg.seed, self._attribute_model,
                                            progress=cfg.progress, inception=self._inception,
                                            label_traits=LAYOUTS.get(cfg.conditioning))
        numbers = metrics.scalars(result)
        append_jsonl(self.run_dir / "metrics.jsonl",
                     {"kimg": nimg / 1000, "snapshot": True, **numbers, "quality": result})
        if self._writer is None:  # snapshot() called outside train()
            self._writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        writer = self._writer
        with writer.as_default(step=nimg // 1000):
            for k, v in numbers.items():
                tf.summary.scalar(k, v)
        writer.flush()
        log.info("kimg %.1f  %s", nimg / 1000,
                 "  ".join(f"{k} {v:.4f}" for k, v in sorted(numbers.items())))
        return result

    def export_bundle(self, nimg: int, quality: dict[str, Any] | None = None) -> Path:
        """Write G_ema and D as ``<run>/bundle``, replacing the previous snapshot's."""
        cfg = self.cfg
        tmp = self.run_dir / "bundle.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        kimg, origin = nimg / 1000, self.started_from
        total = kimg + (origin["kimg"] if origin else 0.0)
        history = {"kimg_total": total, "started_from": origin} if origin else {}
        save_bundle(tmp, self.G_ema, self.D, name=self.run_dir.name, creator="ligan train",
                    description=f"StyleGAN2 trained for {total:.1f} kimg at {cfg.resolution} px"
                                + (f" ({kimg:.1f} of them in {self.run_dir.name}, on top of "
                                   f"bundle {origin['bundle'][:12]})" if origin else ""),
                    licence=cfg.data_licence or "see training data",
                    training_data={"description": cfg.data_description or cfg.data,
                                   "licence": cfg.data_licence or "unknown"},
                    extra={"alignment": FRAMINGS[cfg.framing].to_dict(),
                           **({"labels": manifest_labels(cfg.conditioning)}
                              if cfg.conditioning else {}),
                           "training": {"kimg": kimg, **history, "run": str(self.run_dir),
                                        **({"metrics": quality} if quality else {})}})
        final = self.run_dir / "bundle"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final
