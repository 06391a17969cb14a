"""``ligan train identity``: distil dlib's face descriptor into the bundle's identity network.

The distillation set (:mod:`models.training.identity_data`: UTKFace and CelebA photos and the
bundle's own generated faces, each with dlib's embedding) is built once into ``RUN/set`` — by
``workers`` processes, since dlib takes about 0.15 s a face — and reused when the command runs
again. The network (:mod:`models.faces.identity_net`) starts from the bundle's attribute model
where it has one, and learns two things at once: to put each face where dlib puts it
(embedding loss) and to keep dlib's distances between the faces of a batch (distance loss; half
of every batch are pairs of the same person or of a generated face and its neighbour, so the
small distances that decide "look-alike or same person" are trained as much as the large
ones). The learning rate decays linearly over the last third of the steps.

The run folder works like the other trainers' (``config.json``, ``log.txt``,
``metrics.jsonl``, ``checkpoints/``; SIGTERM or Ctrl-C checkpoints; the same command resumes).
At every snapshot, and in the part's config when done, :func:`agreement` measures how far the
network agrees with dlib on held-out photos and on held-out generated faces.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.bundle import add_part, load_bundle, module_arrays, read_manifest
from models.faces.identity import SAME_PERSON_THRESHOLD
from models.face_trunk import face_batch
from models.faces.identity_net import IDENTITY_PART, IdentityNet, IdentityNetConfig
from models.training.identity_data import (SOURCES, DistillationPlan, DistillationSet,
                                           build_chunks, load_set, plan_items)
from models.training.optim import Adam
from models.training.run import StopFlag, log, prepare_run_dir, step_loop

RESUMABLE = {"steps", "snapshot_steps", "tick_steps", "max_minutes", "progress", "export",
             "workers"}
LICENCE = ("trained on UTKFace and CelebA faces (non-commercial research purposes only) and on "
           "the bundle's generated faces, with dlib's face descriptor as the teacher")


@dataclasses.dataclass
class IdentityTrainConfig:
    bundle: str
    utkface: str | None = None
    celeba: str | None = None
    utkface_faces: int = 6000
    celeba_faces: int = 2000
    generated_groups: int = 1600
    neighbours: int = 4
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    distance_weight: float = 1.0
    from_attributes: bool = True  # start the trunk from the bundle's attribute model
    workers: int = 2  # processes that embed the distillation set with dlib
    seed: int = 0
    tick_steps: int = 100
    snapshot_steps: int = 1000
    max_minutes: float | None = None
    progress: bool = True
    export: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 8 or self.batch_size % 4:
            raise ValueError(f"batch size must be a multiple of 4, at least 8, got "
                             f"{self.batch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        for name in ("utkface_faces", "celeba_faces", "generated_groups", "neighbours"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', ' ')} must be 0 or more")
        if not (self.utkface and self.utkface_faces) and not (self.celeba and self.celeba_faces) \
                and not self.generated_groups:
            raise ValueError("the distillation set would be empty: give --utkface and/or "
                             "--celeba, or generated groups")

    @property
    def plan(self) -> DistillationPlan:
        return DistillationPlan(utkface=self.utkface_faces if self.utkface else 0,
                                celeba=self.celeba_faces if self.celeba else 0,
                                groups=self.generated_groups, neighbours=self.neighbours,
                                seed=self.seed)


def pairwise_distances(x: tf.Tensor) -> tf.Tensor:
    """Euclidean distances between the rows of ``x`` [N, D] → [N, N] (gradient-safe at 0)."""
    sq = tf.reduce_sum(tf.square(x), axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(x, x, transpose_b=True)
    return tf.sqrt(tf.maximum(d2, 1e-12))


def agreement(predicted: np.ndarray, dlib: np.ndarray, group: np.ndarray,
              max_faces: int = 800, seed: int = 0) -> dict[str, float]:
    """How far embeddings ``predicted`` agree with dlib's (``dlib``) on the same faces.

    Over all pairs of up to ``max_faces`` faces ("pairs": mostly different people) and over
    the pairs within a ``group`` (the same person, or a generated face and its neighbours:
    the close pairs): the correlation of the two distances, their mean absolute difference,
    and how often both sides of dlib's same-person threshold (0.6) agree. ``self_distance`` is
    the mean distance between each face's two embeddings.
    """
    n = len(predicted)
    out: dict[str, float] = {"faces": float(n)}
    if n < 3:
        return out
    out["self_distance"] = float(np.linalg.norm(predicted - dlib, axis=1).mean())
    pick = np.sort(np.random.default_rng(seed).choice(n, min(n, max_faces), replace=False))
    i, j = np.triu_indices(len(pick), 1)
    sets = {"pairs": (pick[i], pick[j])}
    same = [np.flatnonzero(group == g) for g in np.unique(group)]
    close = [(a, b) for members in same for k, a in enumerate(members) for b in members[k + 1:]]
    if len(close) >= 3:
        sets["close_pairs"] = tuple(np.array(c) for c in zip(*close))
    for name, (a, b) in sets.items():
        dp = np.linalg.norm(predicted[a] - predicted[b], axis=1)
        dd = np.linalg.norm(dlib[a] - dlib[b], axis=1)
        out[f"{name}"] = float(len(a))
        out[f"{name}/correlation"] = float(np.corrcoef(dp, dd)[0, 1])
        out[f"{name}/mean_abs_error"] = float(np.abs(dp - dd).mean())
        out[f"{name}/decision_agreement"] = float(
            ((dp < SAME_PERSON_THRESHOLD) == (dd < SAME_PERSON_THRESHOLD)).mean())
        out[f"{name}/dlib_same_share"] = float((dd < SAME_PERSON_THRESHOLD).mean())
    return out


def evaluate(net: IdentityNet, test: DistillationSet) -> dict[str, float]:
    """:func:`agreement` on the held-out photos and, separately, on held-out generated faces."""
    metrics: dict[str, float] = {}
    if len(test) == 0:
        return metrics
    predicted = net.embed(test.images)
    photos = test.source != SOURCES.index("generated")
    for name, mask in (("photos", photos), ("generated", ~photos)):
        if mask.sum() >= 3:
            for k, v in agreement(predicted[mask], test.embeddings[mask],
                                  test.group[mask]).items():
                metrics[f"test/{name}/{k}"] = v
    return metrics


class IdentityTrainer:
    def __init__(self, cfg: IdentityTrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        manifest = read_manifest(cfg.bundle)  # a clear error for a missing or broken bundle
        prepare_run_dir(self.run_dir, cfg, RESUMABLE)
        self.model_cfg = IdentityNetConfig(resolution=int(manifest["resolution"]))
        self.net = IdentityNet(self.model_cfg, seed=cfg.seed)
        self.started_from = self._initial_weights(manifest)
        self.lr = tf.Variable(cfg.lr, trainable=False, dtype=tf.float32)
        self.opt = Adam(self.net.trainable_variables, cfg.lr, betas=(0.9, 0.999))
        self.opt.lr = self.lr
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=self.net, opt=self.opt, step=self.step)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.run_dir / "checkpoints",
                                                  max_to_keep=3)
        self.stop = StopFlag()
        self.data = self._load_data()
        self._train_step = tf.function(self._step)

    def _initial_weights(self, manifest: dict) -> str:
        """Copy the attribute model's trunk when the bundle has one of the same layout."""
        from models.attributes.model import ATTRIBUTES_PART

        if not self.cfg.from_attributes or ATTRIBUTES_PART not in manifest["parts"]:
            return "random"
        attr = manifest["parts"][ATTRIBUTES_PART]["config"]["model"]
        same = all(attr.get(k) == getattr(self.model_cfg, k)
                   for k in ("work_resolution", "channel_base", "channel_max", "features"))
        if not same:
            log.info("identity network: the attribute model's layout differs; starting from "
                     "random weights")
            return "random"
        bundle = load_bundle(self.cfg.bundle, parts=())
        arrays = bundle.part_arrays(ATTRIBUTES_PART)
        copied = 0
        for name, var in self.net.named_variables():
            if name in arrays and tuple(arrays[name].shape) == tuple(var.shape):
                var.assign(arrays[name])
                copied += 1
        log.info("identity network: %d arrays copied from the attribute model", copied)
        return "attribute model"

    def _load_data(self) -> DistillationSet:
        folder = self.run_dir / "set"
        build_set(self.cfg, folder)
        data = load_set(folder)
        self.train_set, self.test_set = data.subset(~data.test), data.subset(data.test)
        log.info("identity distillation set: %d faces (%s), %d held out; dlib found a face in "
                 "%.1f %%", len(data), ", ".join(f"{SOURCES[s]} {int((data.source == s).sum())}"
                                                 for s in np.unique(data.source)),
                 len(self.test_set), 100.0 * float((data.faces > 0).mean()))
        if len(self.train_set) < self.cfg.batch_size:
            raise ValueError(f"only {len(self.train_set)} training faces: fewer than a batch")
        groups: dict[str, list[int]] = {}
        for index, g in enumerate(self.train_set.group):
            groups.setdefault(str(g), []).append(index)
        self.pair_groups = [np.array(v) for v in groups.values() if len(v) > 1]
        # Start the output near dlib's faces, not far out (a resumed run restores its own).
        self.net.out.weight.assign(self.net.out.weight * 0.1)
        self.net.out.bias.assign(self.train_set.embeddings.mean(axis=0))
        return data

    def _batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Half random faces, half pairs from one group (seeded by step, so resuming
        continues the same stream)."""
        rng = np.random.default_rng([self.cfg.seed, step])
        n = self.cfg.batch_size
        pairs = n // 4 if self.pair_groups else 0
        index = list(rng.integers(0, len(self.train_set), n - 2 * pairs))
        for k in rng.integers(0, len(self.pair_groups), pairs):
            index += list(rng.choice(self.pair_groups[k], 2, replace=False))
        index = np.array(index)
        return face_batch(self.train_set.images[index]), self.train_set.embeddings[index]

    def _step(self, images: tf.Tensor, targets: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            pred = self.net(images)
            emb = tf.reduce_mean(tf.reduce_sum(tf.square(pred - targets), axis=1))
            dist = tf.reduce_mean(tf.square(pairwise_distances(pred)
                                            - pairwise_distances(targets)))
            total = emb + self.cfg.distance_weight * dist
        grads = tape.gradient(total, self.net.trainable_variables)
        self.opt.apply(grads)
        return {"loss/embedding": emb, "loss/distance": dist, "loss/total": total}

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        if self.manager.restore_or_initialize():
            log.info("resumed identity training at step %d", int(self.step.numpy()))
        metrics: dict[str, float] = {}
        decay_from = int(cfg.steps * 2 / 3)

        def train_step(step: int) -> dict[str, tf.Tensor]:
            left = (cfg.steps - step) / max(1, cfg.steps - decay_from)
            self.lr.assign(cfg.lr * min(1.0, max(left, 0.02)))
            images, targets = self._batch(step)
            return self._train_step(tf.constant(images), tf.constant(targets))

        def snapshot(step: int) -> dict[str, float]:
            nonlocal metrics
            self.manager.save(checkpoint_number=step)
            metrics = evaluate(self.net, self.test_set)
            return metrics

        step, _, reason = step_loop(
            self.run_dir, "identity", self.step, cfg.steps, cfg.tick_steps, cfg.snapshot_steps,
            cfg.max_minutes, cfg.progress, self.stop, self.manager, train_step, snapshot)
        finished = step >= cfg.steps
        bundle_hash = None
        if finished and cfg.export:
            bundle_hash = add_part(cfg.bundle, IDENTITY_PART, module_arrays(self.net),
                                   self.part_config(metrics))
            log.info("added the identity network to %s (bundle hash %s)", cfg.bundle,
                     bundle_hash[:12])
        return {"steps": step, "finished": finished, "reason": reason,
                "bundle_hash": bundle_hash, "metrics": metrics}

    def part_config(self, metrics: dict[str, float]) -> dict[str, Any]:
        cfg, data = self.cfg, self.data
        return {"model": self.model_cfg.to_dict(), "licence": LICENCE,
                "teacher": "dlib face descriptor (dlib_face_recognition_resnet_model_v1), "
                           "measured as models.faces.aligned_face_count_and_embedding",
                "training": {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr,
                             "distance_weight": cfg.distance_weight, "seed": cfg.seed,
                             "started_from": self.started_from,
                             "faces": {SOURCES[s]: int((data.source == s).sum())
                                       for s in np.unique(data.source)},
                             "held_out": len(self.test_set)},
                "agreement": {k.removeprefix("test/"): round(v, 4) for k, v in metrics.items()}}


def build_set(cfg: IdentityTrainConfig, folder: Path) -> None:
    """Embed the distillation set that ``cfg`` plans into ``folder`` (chunks already there are
    kept: a rerun resumes)."""
    bundle = load_bundle(cfg.bundle, parts=("generator",))
    items = plan_items(bundle, cfg.plan, cfg.utkface, cfg.celeba)
    workers = min(cfg.workers, max(1, len(items)))
    if workers == 1:
        build_chunks(bundle, items, folder)
    else:
        _build_in_processes(cfg, folder, workers)


def _build_in_processes(cfg: IdentityTrainConfig, folder: Path, workers: int) -> None:
    """Embed the distillation set in ``workers`` processes (each builds its share of chunks)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.starmap(_build_part, [(cfg, str(folder), k, workers) for k in range(workers)])


def _build_part(cfg: IdentityTrainConfig, folder: str, part: int, parts: int) -> int:
    bundle = load_bundle(cfg.bundle, parts=("generator",))
    items = plan_items(bundle, cfg.plan, cfg.utkface, cfg.celeba)
    return build_chunks(bundle, items, folder, part, parts)
