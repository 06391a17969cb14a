"""Operations in the generator's latent spaces: PCA of W, ball sampling, interpolation.

The PCA is fitted on w vectors of generated samples. The issue asks for PCA on w+; for samples
of the generator, w+ is w repeated ``num_ws`` times, so the w+ PCA has the same components
(repeated) and the same coordinates up to a factor √num_ws: fitting in W (``w_dim``
dimensions instead of ``num_ws · w_dim``) is the same model at a fraction of the cost. An offset
found in W is applied to every chosen w+ entry, so a suspect's per-layer details (from the
encoder or projector) are kept while the sampled offset moves the face.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

PCA_PART = "pca"


@dataclasses.dataclass
class LatentPCA:
    """Principal axes of W: ``mean`` [w_dim], ``components`` [k, w_dim] (orthonormal rows),
    ``stddev`` [k] (square roots of the explained variances)."""

    mean: np.ndarray
    components: np.ndarray
    stddev: np.ndarray
    num_samples: int
    seed: int
    #: Calibrated for this generator by ``models.filler_calibration`` (None until then): page
    #: 1's filler radius, the whitened norm of W beyond which faces break up, and the
    #: measurements behind both.
    filler_radius: float | None = None
    filler_max_norm: float | None = None
    calibration: dict | None = None

    @property
    def num_components(self) -> int:
        return int(self.components.shape[0])

    def to_whitened(self, w: np.ndarray) -> np.ndarray:
        """w [..., w_dim] → coordinates in units of standard deviation along each axis."""
        return ((np.asarray(w) - self.mean) @ self.components.T) / self.stddev

    def offset(self, whitened: np.ndarray) -> np.ndarray:
        """Whitened coordinates [..., k] → the corresponding offset in W [..., w_dim]."""
        return (np.asarray(whitened) * self.stddev) @ self.components

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.astype(np.float32), "components": self.components.astype(np.float32),
                "stddev": self.stddev.astype(np.float32)}

    def config(self) -> dict:
        cfg = {"space": "w", "num_samples": self.num_samples,
               "num_components": self.num_components, "seed": self.seed}
        if self.filler_radius is not None:
            cfg["filler_radius"] = float(self.filler_radius)
            cfg["filler_max_norm"] = (None if self.filler_max_norm is None
                                      else float(self.filler_max_norm))
            cfg["filler_calibration"] = self.calibration or {}
        return cfg

    @classmethod
    def from_bundle(cls, bundle) -> "LatentPCA":
        """The PCA part of a loaded bundle (a clear error if the bundle has none)."""
        from models.bundle import BundleFileMissingError

        if not bundle.has_part(PCA_PART):
            raise BundleFileMissingError(
                f"bundle {bundle.path} has no PCA part; add one with 'ligan bundle fit-pca "
                f"{bundle.path}'")
        arrays = bundle.part_arrays(PCA_PART)
        cfg = bundle.manifest["parts"][PCA_PART].get("config", {})
        radius, max_norm = cfg.get("filler_radius"), cfg.get("filler_max_norm")
        return cls(mean=arrays["mean"], components=arrays["components"], stddev=arrays["stddev"],
                   num_samples=int(cfg.get("num_samples", 0)), seed=int(cfg.get("seed", 0)),
                   filler_radius=float(radius) if radius is not None else None,
                   filler_max_norm=float(max_norm) if max_norm is not None else None,
                   calibration=cfg.get("filler_calibration"))


def fit_pca(generator, num_samples: int = 10_000, num_components: int = 256, seed: int = 0,
            batch_size: int = 1000, progress: bool = False) -> LatentPCA:
    """Fit the PCA of W on ``num_samples`` mapped random z (mapping only: no images needed)."""
    from sklearn.decomposition import PCA
    from tqdm import tqdm

    w_dim = generator.cfg.w_dim
    if not 1 <= num_components <= w_dim:
        raise ValueError(f"number of components must be from 1 to {w_dim} (w_dim), got "
                         f"{num_components}")
    if num_samples < num_components + 1:
        raise ValueError(f"need more samples ({num_samples}) than components ({num_components})")
    rng = np.random.default_rng(seed)
    chunks = []
    for start in tqdm(range(0, num_samples, batch_size), desc="fit-pca", unit="batch",
                      disable=not progress):
        n = min(batch_size, num_samples - start)
        z = rng.standard_normal((n, generator.cfg.z_dim)).astype(np.float32)
        chunks.append(generator.map_compiled(z, reproducible=False).numpy()[:, 0])
    w = np.concatenate(chunks).astype(np.float64)
    pca = PCA(n_components=num_components, svd_solver="full", random_state=seed).fit(w)
    return LatentPCA(mean=pca.mean_, components=pca.components_,
                     stddev=np.sqrt(np.maximum(pca.explained_variance_, 1e-12)),
                     num_samples=num_samples, seed=seed)


def sample_ball(n: int, dim: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` points uniformly distributed inside the ``dim``-dimensional ball of ``radius``.

    Direction from a normalised Gaussian; distance ``radius · U^(1/dim)``, which makes the
    density uniform in volume (in high dimensions most points lie near the surface).
    """
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a finite number ≥ 0, got {radius}")
    directions = rng.standard_normal((n, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = radius * rng.uniform(size=(n, 1)) ** (1.0 / dim)
    return directions * lengths


def apply_offset(ws: np.ndarray, offset: np.ndarray, layers: Sequence[int] | None = None) -> np.ndarray:
    """w+ [num_ws, w_dim] (or [N, num_ws, w_dim]) plus W offsets [N, w_dim] on ``layers``
    (all entries when None) → [N, num_ws, w_dim]."""
    ws = np.asarray(ws, np.float32)
    if ws.ndim == 2:
        ws = ws[None]
    mask = np.zeros(ws.shape[1], np.float32)
    mask[list(range(ws.shape[1])) if layers is None else list(layers)] = 1.0
    return (ws + np.asarray(offset, np.float32)[:, None, :] * mask[None, :, None]).astype(np.float32)


def interpolate_ws(ws_a: np.ndarray, ws_b: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` w+ evenly from A to B inclusive (linear in w+); returns (ws [steps, …], t)."""
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps (the two ends), got {steps}")
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)
    a, b = np.asarray(ws_a, np.float64), np.asarray(ws_b, np.float64)
    out = a[None] + (b - a)[None] * t.reshape((-1,) + (1,) * a.ndim)
    out[0], out[-1] = a, b  # exact ends, whatever the rounding
    return out.astype(np.float32), t


def slerp(z_a: np.ndarray, z_b: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Spherical interpolation between two z (the natural path in a Gaussian space)."""
    if steps < 2:
        raise ValueError(f"interpolation needs at least 2 steps (the two ends), got {steps}")
    a, b = np.asarray(z_a, np.float64), np.asarray(z_b, np.float64)
    t = np.linspace(0.0, 1.0, steps)
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        out = a[None] + (b - a)[None] * t[:, None]
    else:
        out = (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)
    out[0], out[-1] = a, b
    return out.astype(np.float32), t
