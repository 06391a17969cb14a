"""Fit a bundle's trait probe (:mod:`models.attributes.identity_probe`) and compare it with the
attribute model on photos neither trained on.

The faces are UTKFace photos of an identity distillation set (:mod:`models.training.
identity_data`: aligned at the bundle's resolution and framing, each with dlib's embedding), so
an identity training run's ``RUN/set`` serves as it is; without one, a set of UTKFace faces
alone is built there (resumable chunks, ``workers`` processes). Labels come from UTKFace's file
names. Faces in the attribute model's held-out share (:func:`models.attributes.data.
held_out_by_key`) are left out of the fit and measure both readers, so the comparison stored
with the part is on faces that neither reader saw. Faces in the GAN's held-out share (the set's
own ``test`` flag) are left out of the fit too: ``ligan lineup evaluate`` reads them as
suspects no part of the bundle has seen.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.attributes.data import LICENCE, UTK_NAME, UTK_TEST_FRACTION, held_out_by_key
from models.attributes.heads import CLASS_HEADS, label_index
from models.attributes.identity_probe import PROBE_PART, PROBE_TRAITS, combine, fit_trait_probe

log = logging.getLogger("ligan.train")


@dataclasses.dataclass(frozen=True)
class TraitProbeConfig:
    bundle: str
    run_dir: str
    utkface: str | None = None  # builds RUN/set from it when RUN/set holds no chunks
    faces: int = 6000
    workers: int = 2
    seed: int = 0
    export: bool = True

    def __post_init__(self) -> None:
        if self.faces < 10:
            raise ValueError(f"faces must be at least 10, got {self.faces}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


@dataclasses.dataclass
class LabelledEmbeddings:
    images: np.ndarray  # uint8 [N, R, R, 3], the crops both readers see
    embeddings: np.ndarray  # float32 [N, 128], dlib's
    labels: dict[str, np.ndarray]  # trait → class indices [N]
    test: np.ndarray  # bool [N]: in the attribute model's held-out share
    gan_held_out: np.ndarray  # bool [N]: in the GAN's held-out share (lineup evaluation's)


def utkface_embeddings(set_dir: Path) -> LabelledEmbeddings:
    """The UTKFace faces of a distillation set in which dlib found a face, with labels."""
    from models.training.identity_data import SOURCES, load_set
    from models.training.metrics import utkface_labels

    data = load_set(set_dir)
    rows = [i for i in range(len(data)) if data.source[i] == SOURCES.index("utkface")
            and data.faces[i] > 0 and UTK_NAME.match(str(data.key[i]))]
    if not rows:
        raise ValueError(f"{set_dir} holds no UTKFace face in which dlib found a face")
    names = utkface_labels([str(data.key[i]) for i in rows])
    labels = {t: np.array([CLASS_HEADS[t].index(v) for v in names[t]]) for t in PROBE_TRAITS}
    return LabelledEmbeddings(
        images=data.images[rows], embeddings=data.embeddings[rows].astype(np.float32),
        labels=labels,
        test=np.array([held_out_by_key(str(data.key[i]), UTK_TEST_FRACTION) for i in rows]),
        gan_held_out=data.test[rows].astype(bool))


def accuracies(predicted: dict[str, np.ndarray], labels: dict[str, np.ndarray]
               ) -> dict[str, float]:
    """Per trait the share read right (age group also within one group: a decade either
    side, as fillers match it)."""
    out = {}
    for trait in PROBE_TRAITS:
        pred, true = np.asarray(predicted[trait]), np.asarray(labels[trait])
        out[trait] = round(float(np.mean(pred == true)), 4)
        if trait == "age_group":
            out["age_group_within_one"] = round(float(np.mean(np.abs(pred - true) <= 1)), 4)
    return out


def train_trait_probe(cfg: TraitProbeConfig) -> dict[str, Any]:
    """Build or reuse the set, fit the probe, measure it, the attribute model and both
    combined (as a photo is read), add the part (unless ``export`` is off); a summary with the
    held-out accuracies and the new bundle hash."""
    from models.attributes.model import ATTRIBUTES_PART, predict_attributes
    from models.bundle import add_part, load_bundle

    set_dir = Path(cfg.run_dir) / "set"
    if not any(set_dir.glob("chunk-*.npz")):
        if cfg.utkface is None:
            raise ValueError(f"{set_dir} holds no distillation set: give --utkface to build "
                             f"one, or --run-dir of an identity training run")
        _build_set(cfg, set_dir)
    data = utkface_embeddings(set_dir)
    train = ~data.test & ~data.gan_held_out
    if train.sum() < 10 or data.test.sum() < 10:
        raise ValueError(f"{int(train.sum())} training and {int(data.test.sum())} held-out "
                         f"UTKFace faces: need at least 10 of each")
    probe = fit_trait_probe(data.embeddings[train],
                            {t: data.labels[t][train] for t in PROBE_TRAITS})
    test_labels = {t: v[data.test] for t, v in data.labels.items()}
    probs = probe.probabilities(data.embeddings[data.test])
    held_out = {"faces": int(data.test.sum()),
                "probe": accuracies({t: label_index(t, p) for t, p in probs.items()},
                                         test_labels)}
    bundle = load_bundle(cfg.bundle, parts=("generator",))
    if bundle.has_part(ATTRIBUTES_PART):
        readings = predict_attributes(bundle, data.images[data.test])
        held_out["attribute_model"] = accuracies(
            {t: np.array([CLASS_HEADS[t].index(r[t]["label"]) for r in readings])
             for t in PROBE_TRAITS}, test_labels)
        held_out["both"] = accuracies(  # what reads a photo (identity_probe.read_photo)
            {t: np.array([label_index(t, combine(r[t]["p"], p, t))
                          for r, p in zip(readings, probs[t])])
             for t in PROBE_TRAITS}, test_labels)
    log.info("trait probe on %d held-out faces: %s", held_out["faces"], held_out)
    config = {"method": "logistic regression per trait on dlib identity embeddings",
              "traits": list(PROBE_TRAITS), "licence": LICENCE,
              "training": {"faces": int(train.sum()),
                           "source": "UTKFace photos of an identity distillation set, outside the "
                                     "attribute model's and the GAN's held-out shares"},
              "held_out": held_out}
    bundle_hash = add_part(cfg.bundle, PROBE_PART, probe.arrays(), config) \
        if cfg.export else None
    return {"finished": True, "bundle_hash": bundle_hash, "held_out": held_out,
            "training_faces": int(train.sum())}


def _build_set(cfg: TraitProbeConfig, set_dir: Path) -> None:
    """A distillation set of ``cfg.faces`` UTKFace faces alone."""
    from models.training.identity_net import IdentityTrainConfig, build_set

    build_set(IdentityTrainConfig(bundle=cfg.bundle, utkface=cfg.utkface,
                                  utkface_faces=cfg.faces, celeba_faces=0, generated_groups=0,
                                  workers=cfg.workers, seed=cfg.seed), set_dir)
