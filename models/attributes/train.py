"""``ligan train attributes``: train a bundle's attribute classifier on UTKFace and CelebA.

Each batch takes half its faces from each dataset given; masked losses make every face train
only the heads its dataset labels (UTKFace: age group, gender, ethnicity; CelebA: its columns).
The run folder works like the other trainers' (``config.json``, ``log.txt``, ``metrics.jsonl``,
``checkpoints/``; SIGTERM or Ctrl-C checkpoints; the same command resumes). Faces are cached
once per run as arrays in ``RUN/cache``. Held-out metrics per head (accuracy, and AUC for
binary heads) are logged at every snapshot. When finished the model is added to the bundle as
its ``attributes`` part (replacing any earlier one and its directions, which belonged to the
old classifier).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.attributes.data import LabelledFaces, cached, celeba_faces, utkface_faces
from models.attributes.heads import CELEBA_HEADS, CLASS_HEADS
from models.attributes.model import (ATTRIBUTES_PART, AttributeConfig, AttributeModel,
                                     attribute_part_config)
from models.bundle import add_part, manifest_framing, module_arrays, read_manifest
from models.faces.alignment import FFHQ_FRAMING
from models.precision import compute_dtype, render_precision
from models.training.optim import Adam
from models.training.run import StopFlag, log, prepare_run_dir, step_loop

RESUMABLE = {"steps", "snapshot_steps", "tick_steps", "max_minutes", "progress", "export",
             "precision"}
LABEL_KEYS = {"age_group": "age", "gender": "gender", "ethnicity": "ethnicity"}


@dataclasses.dataclass
class AttributeTrainConfig:
    bundle: str
    utkface: str | None = None
    celeba: str | None = None
    utkface_limit: int | None = None  # seeded random subset (None: all)
    celeba_limit: int | None = None
    steps: int = 5000
    batch_size: int = 32
    lr: float = 1e-3
    work_resolution: int = 64
    channel_base: int = 2048
    channel_max: int = 128
    seed: int = 0
    tick_steps: int = 50
    snapshot_steps: int = 500
    max_minutes: float | None = None
    progress: bool = True
    export: bool = True
    precision: str = "float32"  # models.precision: float32 or bfloat16 convolutions

    def __post_init__(self) -> None:
        if render_precision(self.precision) != self.precision:
            raise ValueError(f"the attribute model trains in float32 or bfloat16, not "
                             f"{self.precision}")
        if not self.utkface and not self.celeba:
            raise ValueError("give at least one labelled dataset: --utkface DIR and/or "
                             "--celeba DIR")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be at least 2, got {self.batch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        for name in ("utkface_limit", "celeba_limit"):
            value = getattr(self, name)
            if value is not None and value < 10:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 10 faces, got "
                                 f"{value}")


def masked_losses(logits: dict[str, tf.Tensor],
                  labels: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Cross-entropy per class head over faces whose label is known (≥ 0), and binary
    cross-entropy of the CelebA heads over faces with ``celeba_mask`` 1; 0 when none."""
    out = {}
    for head, key in LABEL_KEYS.items():
        y = labels[key]
        valid = tf.cast(y >= 0, tf.float32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(y, 0), logits[head])
        out[head] = tf.reduce_sum(ce * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)
    mask = labels["celeba_mask"]
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels["celeba"], logits["celeba"])
    out["celeba"] = (tf.reduce_sum(tf.reduce_mean(bce, axis=1) * mask)
                     / tf.maximum(tf.reduce_sum(mask), 1.0))
    return out


def evaluate(model: AttributeModel, faces: LabelledFaces) -> dict[str, float]:
    """Held-out accuracy per class head and accuracy + ROC AUC per CelebA head."""
    from sklearn.metrics import roc_auc_score

    if len(faces) == 0:
        return {}
    out = model.predict(faces.images.astype(np.float32) / 127.5 - 1.0)
    metrics: dict[str, float] = {}
    for head, key in LABEL_KEYS.items():
        y = getattr(faces, key)
        known = y >= 0
        if known.any():
            pred = out.classes[head][known].argmax(axis=1)
            metrics[f"test/{head}/accuracy"] = float((pred == y[known]).mean())
            metrics[f"test/{head}/majority"] = float(np.bincount(y[known]).max() / known.sum())
    rows = faces.celeba_mask > 0
    if rows.any():
        for j, column in enumerate(CELEBA_HEADS):
            y, p = faces.celeba[rows, j], out.celeba[rows, j]
            metrics[f"test/{column}/accuracy"] = float(((p >= 0.5) == (y > 0.5)).mean())
            if 0 < y.sum() < len(y):
                metrics[f"test/{column}/auc"] = float(roc_auc_score(y, p))
    return metrics


class AttributeTrainer:
    def __init__(self, cfg: AttributeTrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        manifest = read_manifest(cfg.bundle)  # a clear error for a missing or broken bundle
        prepare_run_dir(self.run_dir, cfg, RESUMABLE)
        self.framing = manifest_framing(manifest)  # CelebA photos are cut like the G's faces
        self.model_cfg = AttributeConfig(resolution=int(manifest["resolution"]),
                                         work_resolution=cfg.work_resolution,
                                         channel_base=cfg.channel_base,
                                         channel_max=cfg.channel_max)
        self.model = AttributeModel(self.model_cfg, seed=cfg.seed)
        self.model.compute_dtype = compute_dtype(cfg.precision)
        self.opt = Adam(self.model.trainable_variables, cfg.lr, betas=(0.9, 0.999))
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=self.model, opt=self.opt, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_dir / "checkpoints",
                                                  max_to_keep=3)
        self.stop = StopFlag()
        self.sources = self._load_data()
        self._train_step = tf.function(self._step)

    def _load_data(self) -> list[LabelledFaces]:
        cfg, r = self.cfg, self.cfg.work_resolution
        cache = self.run_dir / "cache"
        sources = []
        if cfg.utkface:
            sources.append(cached(cache / f"utkface_{r}.npz", lambda: utkface_faces(
                cfg.utkface, r, cfg.utkface_limit, seed=cfg.seed)))
        if cfg.celeba:
            f = self.framing
            tag = "" if f == FFHQ_FRAMING else f"_framed{f.scale:g}_{f.dx:g}_{f.dy:g}"
            sources.append(cached(cache / f"celeba_{r}{tag}.npz", lambda: celeba_faces(
                cfg.celeba, r, cfg.celeba_limit, seed=cfg.seed, framing=f)))
        for faces, name in zip(sources, [n for n in ("UTKFace", "CelebA")
                                         if getattr(cfg, n.lower())]):
            log.info("%s: %d faces (%d held out)", name, len(faces), int(faces.test.sum()))
        self.train_sets = [s.subset(~s.test) for s in sources]
        self.test_set = LabelledFaces.concat([s.subset(s.test) for s in sources])
        if any(len(s) < 2 for s in self.train_sets):
            raise ValueError("a dataset has fewer than 2 training faces; raise its limit")
        return sources

    def _batch(self, step: int) -> dict[str, np.ndarray]:
        """A batch that depends only on seed and step (so resuming continues the same stream)."""
        rng = np.random.default_rng([self.cfg.seed, step])
        shares = np.array_split(np.arange(self.cfg.batch_size), len(self.train_sets))
        parts = [s.subset(rng.integers(0, len(s), len(share)))
                 for s, share in zip(self.train_sets, shares)]
        batch = LabelledFaces.concat(parts)
        images = batch.images.astype(np.float32) / 127.5 - 1.0
        flip = rng.random(len(images)) < 0.5
        images[flip] = images[flip, :, ::-1]
        return {"images": images, "age": batch.age, "gender": batch.gender,
                "ethnicity": batch.ethnicity, "celeba": batch.celeba,
                "celeba_mask": batch.celeba_mask}

    def _step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            losses = masked_losses(self.model.logits(batch["images"]), batch)
            total = tf.add_n(list(losses.values()))
        grads = tape.gradient(total, self.model.trainable_variables)
        self.opt.apply(grads)
        return {**{f"loss/{k}": v for k, v in losses.items()}, "loss/total": total}

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.manager.restore_or_initialize():
            log.info("resumed attribute training at step %d", int(self.step.numpy()))
        metrics: dict[str, float] = {}

        def train_step(step: int) -> dict[str, tf.Tensor]:
            return self._train_step({k: tf.constant(v) for k, v in self._batch(step).items()})

        def snapshot(step: int) -> dict[str, float]:
            nonlocal metrics
            self.manager.save(checkpoint_number=step)
            metrics = evaluate(self.model, self.test_set)
            return metrics

        step, _, reason = step_loop(
            self.run_dir, "attributes", self.step, cfg.steps, cfg.tick_steps,
            cfg.snapshot_steps, cfg.max_minutes, cfg.progress, self.stop, self.manager,
            train_step, snapshot)
        finished = step >= cfg.steps
        bundle_hash = None
        if finished and cfg.export:
            bundle_hash = add_part(cfg.bundle, ATTRIBUTES_PART, module_arrays(self.model),
                                   attribute_part_config(self.model_cfg, **self.provenance()))
            log.info("added the attribute model to %s (bundle hash %s)", cfg.bundle,
                     bundle_hash[:12])
        return {"steps": step, "finished": finished, "reason": reason,
                "bundle_hash": bundle_hash, "metrics": metrics}

    def provenance(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"training": {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
                             "seed": cfg.seed,
                             "utkface": {"faces": len(self.sources[0])} if cfg.utkface else None,
                             "celeba": ({"faces": len(self.sources[-1])} if cfg.celeba
                                        else None)},
                "training_data": "UTKFace (age group, gender, ethnicity) and CelebA "
                                 "attributes (" + ", ".join(CELEBA_HEADS) + ")",
                "heads": {**{k: list(v) for k, v in CLASS_HEADS.items()},
                          "celeba": list(CELEBA_HEADS)},
                "directions": {}}
