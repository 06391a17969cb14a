"""Photo → latent by optimisation: the StyleGAN2 projector, with features we own.

The official projector minimises an LPIPS (VGG) distance; no ImageNet weights exist here, so
the perceptual term compares activations of the bundle's own discriminator (each feature map
normalised per channel, as LPIPS does), plus a pixel MSE and, on request, the identity
network's distance to the photo (:mod:`models.faces.identity_net`; off by default: with the
shipped network it did not bring reconstructions closer to the photo, docs/model_card.md),
and a prior that keeps each w+ entry within the whitened norm where the generator's faces hold
(:func:`latent_prior`), so that fillers sampled around the result are faces too. It optimises
w or w+ with Adam, a cosine learning-rate ramp and Gaussian noise on the latent that fades out
over the first three quarters — the official recipe — from the encoder's output or ``w_avg``.
The per-pixel noise stays the bundle's constant noise, so the result is fully described by its
latent and can be stored as a face record.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Literal

import numpy as np
import tensorflow as tf

from models.faces.identity_net import (IDENTITY_WEIGHT, NET_MEASURE, identity_loss,
                                       identity_measure, identity_target, load_identity_net)
from models.images import to_uint8

ProgressFn = Callable[[float, str], None]


@dataclasses.dataclass
class ProjectionResult:
    ws: np.ndarray  # [num_ws, w_dim]
    image: np.ndarray  # uint8 [R, R, 3]
    steps: int
    seconds: float
    losses: list[float]
    stopped: str  # "steps", "time limit" or "cancelled"


def latent_statistics(generator, num_samples: int = 10_000, seed: int = 0) -> tuple[np.ndarray, float]:
    """Mean of w and its RMS distance to the mean, from mapped random z."""
    z = np.random.default_rng(seed).standard_normal((num_samples, generator.cfg.z_dim))
    w = generator.map_compiled(z.astype(np.float32), reproducible=False).numpy()[:, 0]
    w = w.astype(np.float64)
    mean = w.mean(axis=0)
    return mean.astype(np.float32), float(np.sqrt(np.mean(np.sum((w - mean) ** 2, axis=1))))


#: Weight of the latent prior (on by default where the bundle's PCA is calibrated). Unbounded,
#: the projector leaves W's faces far behind: around 12 London photos its w+ entries reached a
#: whitened norm of 40–52 where this generator's faces hold to 18.7. Fillers sampled around such
#: a centre were faces dlib could not find (9 % of page 1; 83 % for one suspect), and pages took
#: twice as many candidates. With the prior, reconstructions were as close to the photos (dlib
#: 0.591 against 0.589, pixel MSE 0.0037 against 0.0036) and fillers were found in 100 %.
LATENT_WEIGHT = 1.0


def projector_parts(manifest: dict) -> tuple[str, ...]:
    """The networks to build from a bundle (its manifest) for projecting photos: the generator,
    and the discriminator where the bundle has one, since its features are the projector's
    perceptual loss (:func:`project`). Every path that inverts photos loads these, so the web
    UI, the CLI and ``lineup evaluate`` project alike."""
    return ("generator",) + (("discriminator",) if "discriminator" in manifest["parts"] else ())


def latent_prior(bundle) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """w+ [..., num_ws, w_dim] → how far its entries lie beyond the largest whitened norm at
    which this generator's faces hold (the PCA's calibrated ``filler_max_norm``, see
    :mod:`models.filler_calibration`): the mean over entries of ``relu(|whiten(w)| − cap)² /
    cap²``, 0 inside. None for a bundle without a calibrated PCA."""
    from models.latent import PCA_PART, LatentPCA

    if not bundle.has_part(PCA_PART):
        return None
    pca = LatentPCA.from_bundle(bundle)
    if pca.filler_max_norm is None:
        return None
    mean = tf.constant(pca.mean, tf.float32)
    whiten = tf.constant((pca.components.T / pca.stddev).astype(np.float32))
    cap = float(pca.filler_max_norm)

    def penalty(ws: tf.Tensor) -> tf.Tensor:
        norm = tf.norm(tf.tensordot(ws - mean, whiten, 1), axis=-1)
        return tf.reduce_mean(tf.square(tf.nn.relu(norm - cap) / cap))

    return penalty


def project(bundle, target: np.ndarray, *, space: Literal["w", "w+"] = "w+", steps: int = 300,
            time_limit: float | None = None, init_ws: np.ndarray | None = None,
            lr: float = 0.1, perceptual_weight: float = 1.0,
            identity_weight: float | None = None, latent_weight: float | None = None,
            seed: int = 0,
            progress: ProgressFn | None = None,
            should_stop: Callable[[], bool] | None = None) -> ProjectionResult:
    """Find the latent whose image best matches ``target`` (aligned, uint8, bundle resolution).

    Stops after ``steps`` steps or ``time_limit`` seconds, whichever comes first, or when
    ``should_stop()`` returns True. ``identity_weight``: of the identity loss (by default
    :data:`~models.faces.identity_net.IDENTITY_WEIGHT` with an identity network, else 0; more
    than 0 needs a network). ``latent_weight``: of :func:`latent_prior`, which keeps the latent
    where the generator's faces hold (by default :data:`LATENT_WEIGHT` where the bundle's PCA is
    calibrated, else 0; more than 0 needs a calibrated PCA). ``progress(percent, message)`` is
    called every few steps.
    """
    g = bundle.generator
    res = g.cfg.resolution
    if target.shape != (res, res, 3):
        raise ValueError(f"target must be an aligned {res}×{res} RGB image, got {target.shape}")
    if space not in ("w", "w+"):
        raise ValueError(f"space must be w or w+, got {space!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    d = bundle.discriminator
    w_avg, w_std = latent_statistics(g, seed=seed)
    if init_ws is None:
        init_ws = np.tile(w_avg[None], [g.num_ws, 1])
    init = np.asarray(init_ws, np.float32)
    start = init.mean(axis=0, keepdims=True) if space == "w" else init
    latent = tf.Variable(start[None])  # [1, 1 or num_ws, w_dim]
    opt_m = tf.Variable(tf.zeros_like(latent))
    opt_v = tf.Variable(tf.zeros_like(latent))
    target_t = tf.constant(target[None].astype(np.float32) / 127.5 - 1.0)
    dtype = g.compute_dtype
    target_feats = d.perceptual_features(target_t, dtype) if d is not None else []
    has_net = identity_measure(bundle) == NET_MEASURE
    if identity_weight is None:
        identity_weight = IDENTITY_WEIGHT if has_net else 0.0
    if identity_weight and not has_net:
        raise ValueError("an identity loss needs a bundle with an identity network")
    net = load_identity_net(bundle) if identity_weight else None
    target_identity = tf.constant(identity_target(net, target)) if net is not None else None
    prior = latent_prior(bundle) if latent_weight != 0 else None
    if latent_weight is None:
        latent_weight = LATENT_WEIGHT if prior is not None else 0.0
    if latent_weight and prior is None:
        raise ValueError("a latent prior needs a bundle whose PCA is calibrated "
                         "('ligan bundle calibrate-fillers')")
    rng = tf.random.Generator.from_seed(seed)

    @tf.function
    def step(t: tf.Tensor, lr_t: tf.Tensor, noise_scale: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            ws = tf.broadcast_to(latent, [1, g.num_ws, g.cfg.w_dim])
            ws = ws + rng.normal(tf.shape(ws)) * noise_scale
            img = g.synthesis(ws, "const", None, dtype)
            loss = tf.reduce_mean(tf.square(img - target_t))
            if target_feats:
                feats = d.perceptual_features(img, dtype)
                for a, b in zip(feats, target_feats):
                    loss += perceptual_weight * tf.reduce_mean(
                        tf.reduce_sum(tf.square(a - b), axis=-1)) / len(feats)
            if target_identity is not None:
                loss += identity_weight * identity_loss(net, img, target_identity)
            if latent_weight:
                loss += latent_weight * prior(latent)  # the latent itself, without the noise
        grad = tape.gradient(loss, latent)
        # Adam (β = 0.9, 0.999), written out so the state lives in this function's variables.
        opt_m.assign(0.9 * opt_m + 0.1 * grad)
        opt_v.assign(0.999 * opt_v + 0.001 * tf.square(grad))
        m_hat = opt_m / (1 - tf.pow(0.9, t))
        v_hat = opt_v / (1 - tf.pow(0.999, t))
        latent.assign_sub(lr_t * m_hat / (tf.sqrt(v_hat) + 1e-8))
        return loss

    started = time.monotonic()
    losses: list[float] = []
    stopped = "steps"
    done = 0
    for i in range(steps):
        if should_stop is not None and should_stop():
            stopped = "cancelled"
            break
        if time_limit is not None and time.monotonic() - started >= time_limit:
            stopped = "time limit"
            break
        frac = i / steps
        ramp = min(1.0, (1.0 - frac) / 0.25)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, frac / 0.05 if frac else 0.0)
        noise = w_std * 0.05 * max(0.0, 1.0 - frac / 0.75) ** 2
        loss = float(step(tf.constant(i + 1, tf.float32), tf.constant(lr * max(ramp, 1e-3)),
                          tf.constant(noise, tf.float32)))
        losses.append(loss)
        done = i + 1
        if progress is not None and (i % 10 == 0 or i == steps - 1):
            progress(100.0 * (i + 1) / steps, f"projecting: step {i + 1}/{steps}, loss {loss:.4f}")
    ws = np.broadcast_to(latent.numpy()[0], (g.num_ws, g.cfg.w_dim)).copy()
    image = to_uint8(g.synthesize(ws[None], "const").numpy())[0]
    return ProjectionResult(ws=ws, image=image, steps=done, seconds=time.monotonic() - started,
                            losses=losses, stopped=stopped)
