"""Attribute directions in W (InterFaceGAN): linear boundaries fitted on latents and the
classifier's own predictions, and edits along them.

For ``num_samples`` random z we map to w, render, predict every trait with the bundle's
attribute model, and fit one scikit-learn logistic regression per binary question: each binary
trait (``beard``, ``glasses``, …) and each class of a class trait one-vs-rest
(``gender=male``, ``age_group=40-49``, ``ethnicity=asian``). A boundary is stored as a unit
normal ``n`` and offset ``b`` so that ``n·w + b`` is the signed distance of w from it, plus
``scale``, the standard deviation of those distances over the samples: strengths and margins
are given in units of ``scale`` so that "strength 1" means the same visible amount for every
attribute. Questions with too few samples on one side (a rare class in the sample) are skipped
and listed, never fitted on a handful of faces.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from models.attributes.heads import BINARY_TRAITS, CLASS_HEADS, label_index
from models.attributes.model import ATTRIBUTES_PART, DIRECTION_PREFIX, load_attribute_model

MAX_STRENGTH = 10.0


def direction_keys() -> list[str]:
    """Every question a direction can answer, in a fixed order."""
    keys = [f"{trait}={name}" for trait, names in CLASS_HEADS.items() for name in names]
    return keys + list(BINARY_TRAITS)


def sample_targets(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Trait scores of a batch → the boolean label of every direction key (a class trait's
    label is the class its reading names, :func:`~models.attributes.heads.label_index`, as for
    every other reading)."""
    out = {}
    for trait, names in CLASS_HEADS.items():
        winner = label_index(trait, scores[trait])
        for i, name in enumerate(names):
            out[f"{trait}={name}"] = winner == i
    for trait in BINARY_TRAITS:
        out[trait] = scores[trait] >= 0.5
    return out


@dataclasses.dataclass
class Direction:
    key: str
    normal: np.ndarray  # [w_dim], unit length
    offset: float       # n·w + offset = signed distance from the boundary
    scale: float        # std of the signed distances of the fitted samples
    accuracy: float     # held-out accuracy of the boundary on the samples
    positives: int
    logit_scale: float = 1.0  # logistic-regression logit per unit of distance

    def distance(self, w: np.ndarray) -> np.ndarray:
        return np.asarray(w, np.float64) @ self.normal + self.offset

    def probability(self, w: np.ndarray) -> np.ndarray:
        """The boundary's own estimate that w is on the positive side (class-balanced, so
        useful for ranking candidates rather than as a calibrated rate)."""
        return 1.0 / (1.0 + np.exp(-self.logit_scale * self.distance(w)))


@dataclasses.dataclass
class Directions:
    items: dict[str, Direction]
    skipped: dict[str, str]
    fit: dict[str, Any]

    def get(self, key: str) -> Direction:
        if key in self.items:
            return self.items[key]
        if key in self.skipped:
            raise ValueError(f"no direction for {key!r}: {self.skipped[key]}")
        raise ValueError(f"unknown attribute {key!r}; directions exist for "
                         f"{', '.join(sorted(self.items)) or 'nothing (fit them first)'}")

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{DIRECTION_PREFIX}{k}": d.normal.astype(np.float32)
                for k, d in self.items.items()}

    def config(self) -> dict[str, Any]:
        return {"fit": self.fit, "skipped": self.skipped,
                "items": {k: {"offset": d.offset, "scale": d.scale, "accuracy": d.accuracy,
                              "positives": d.positives, "logit_scale": d.logit_scale}
                          for k, d in self.items.items()}}

    @classmethod
    def from_bundle(cls, bundle) -> "Directions":
        from models.bundle import BundleFileMissingError

        if not bundle.has_part(ATTRIBUTES_PART):
            raise BundleFileMissingError(f"bundle {bundle.path} has no attributes part; train "
                                         f"one with 'ligan train attributes'")
        cfg = bundle.manifest["parts"][ATTRIBUTES_PART]["config"].get("directions") or {}
        if not cfg.get("items"):
            raise BundleFileMissingError(
                f"bundle {bundle.path} has no attribute directions; fit them with 'ligan "
                f"attributes directions --bundle {bundle.path}'")
        arrays = bundle.part_arrays(ATTRIBUTES_PART)
        items = {k: Direction(k, arrays[DIRECTION_PREFIX + k], float(v["offset"]),
                              float(v["scale"]), float(v["accuracy"]), int(v["positives"]),
                              float(v.get("logit_scale", 1.0)))
                 for k, v in cfg["items"].items()}
        return cls(items, dict(cfg.get("skipped", {})), dict(cfg.get("fit", {})))


def sample_and_predict(bundle, num: int, psi: float, seed: int,
                       batch_size: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``num`` random w [num, w_dim] (truncated by ``psi``) and their trait scores."""
    g = bundle.generator
    model = load_attribute_model(bundle)
    z = np.random.default_rng(seed).standard_normal((num, g.cfg.z_dim)).astype(np.float32)
    ws, scores = [], []
    for i in range(0, num, batch_size):
        w = g.map_compiled(z[i:i + batch_size], psi, reproducible=False)
        scores.append(model.predict(g.synthesize(w, reproducible=False)).trait_scores())
        ws.append(w.numpy()[:, 0])
    merged = {k: np.concatenate([s[k] for s in scores]) for k in scores[0]}
    return np.concatenate(ws), merged


def fit_directions(bundle, num_samples: int = 2000, psi: float = 1.0, seed: int = 0,
                   min_side: int = 20, regularization: float = 1.0) -> Directions:
    """Fit a linear boundary in W for every direction key (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    if not 50 <= num_samples <= 1_000_000:
        raise ValueError(f"num_samples must be from 50 to 1,000,000, got {num_samples}")
    if not (math.isfinite(psi) and 0.0 < psi <= 2.0):
        raise ValueError(f"psi must be in (0, 2], got {psi}")
    w, scores = sample_and_predict(bundle, num_samples, psi, seed)
    rng = np.random.default_rng(seed + 1)
    held = rng.random(num_samples) < 0.2
    items, skipped = {}, {}
    for key, y in sample_targets(scores).items():
        pos = int(y.sum())
        if min(pos, num_samples - pos) < min_side or y[~held].all() or not y[~held].any():
            skipped[key] = (f"only {min(pos, num_samples - pos)} of {num_samples} samples on "
                            f"one side (need {min_side})")
            continue
        clf = LogisticRegression(C=regularization, class_weight="balanced", max_iter=2000)
        clf.fit(w[~held], y[~held])
        coef, intercept = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
        norm = float(np.linalg.norm(coef))
        if norm == 0.0:
            skipped[key] = "the boundary has a zero normal"
            continue
        normal, offset = coef / norm, intercept / norm
        dist = w @ normal + offset
        accuracy = float(((dist[held] > 0) == y[held]).mean()) if held.any() else float("nan")
        items[key] = Direction(key, normal, offset, float(dist.std()) or 1.0, accuracy, pos,
                               norm)
    return Directions(items, skipped, {"num_samples": num_samples, "psi": psi, "seed": seed,
                                       "min_side": min_side, "regularization": regularization,
                                       "space": "w"})


def save_directions(bundle, directions: Directions) -> str:
    """Store the directions in the bundle directory's attributes part (next to the model
    weights, which are kept) and return the new bundle hash."""
    from models.bundle import add_part

    if not bundle.path.is_dir():
        raise ValueError(f"{bundle.path} is a packed bundle; fit directions on the bundle "
                         f"directory and pack it again")
    arrays = {k: v for k, v in bundle.part_arrays(ATTRIBUTES_PART).items()
              if not k.startswith(DIRECTION_PREFIX)}
    config = dict(bundle.manifest["parts"][ATTRIBUTES_PART]["config"])
    config["directions"] = directions.config()
    return add_part(bundle.path, ATTRIBUTES_PART, {**arrays, **directions.arrays()}, config)


def edit(ws: np.ndarray, direction: Direction, strength: float,
         layers: Sequence[int] | None = None) -> np.ndarray:
    """Move w+ ``ws`` ([num_ws, w_dim] or [N, num_ws, w_dim]) by ``strength`` × ``scale``
    along ``direction`` — only in the w+ entries ``layers`` when given (coarse layers change
    pose and face shape, fine ones colour; leaving the others alone keeps more of the
    identity and frame)."""
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)
            and abs(strength) <= MAX_STRENGTH):
        raise ValueError(f"strength must be a number from -{MAX_STRENGTH:g} to "
                         f"{MAX_STRENGTH:g}, got {strength!r}")
    ws = np.array(ws, dtype=np.float32, copy=True)
    if ws.ndim not in (2, 3) or ws.shape[-1] != direction.normal.shape[0]:
        raise ValueError(f"ws must be [num_ws, {direction.normal.shape[0]}] or "
                         f"[N, num_ws, {direction.normal.shape[0]}], got {list(ws.shape)}")
    num_ws = ws.shape[-2]
    chosen = list(range(num_ws)) if layers is None else sorted(set(int(i) for i in layers))
    if not chosen or chosen[0] < 0 or chosen[-1] >= num_ws:
        raise ValueError(f"layers must be w+ entries from 0 to {num_ws - 1}, got {layers}")
    step = (strength * direction.scale * direction.normal).astype(np.float32)
    ws[..., chosen, :] += step
    return ws
