"""Refine: briefly fine-tune private copies of encoder and generator on one hard photo.

The thesis's approach, akin to pivotal tuning: starting from the encoder's latent (or the
projector's, when the bundle has no encoder), the encoder takes optimisation steps on the
photo's reconstruction loss (pixel MSE plus our discriminator's normalised features, and the
identity distance where the bundle has an identity network and ``IDENTITY_WEIGHT`` is set) and
every
``ratio``-th step (thesis default 75) the generator takes one too, until the time limit. A
locality regulariser keeps the generator's output for other latents where it was, so the
latent space stays usable for fillers around the refined face. The bundle is never modified:
the refined networks are copies, and ``save_refined`` writes them as a new bundle whose hash
the resulting face records name.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from models.bundle import add_part, module_arrays, save_bundle
from models.encoder import ENCODER_PART, Encoder, load_encoder
from models.faces.identity_net import (IDENTITY_PART, IDENTITY_WEIGHT, NET_MEASURE,
                                       identity_loss, identity_measure, identity_target,
                                       load_identity_net)
from models.images import to_uint8
from models.projector import ProgressFn, project
from models.stylegan2 import Generator
from models.training.optim import Adam

MIN_SECONDS, MAX_SECONDS = 60, 600  # the range offered to lineup administrators


@dataclasses.dataclass
class Refinement:
    generator: Generator
    encoder: Encoder | None
    ws: np.ndarray  # [num_ws, w_dim], the photo's latent under the refined networks
    image: np.ndarray  # uint8 reconstruction by the refined generator
    initial_error: float  # pixel MSE (images in [-1, 1]) before refining
    final_error: float
    encoder_steps: int
    generator_steps: int
    seconds: float


def time_left(seconds: float) -> str:
    """Seconds still to go in words a user reads at a glance: "about 40 s left"."""
    if seconds < 2:
        return "almost done"
    if seconds < 100:
        return f"about {seconds:.0f} s left"
    return f"about {round(seconds / 60)} min left"


class _Clock:
    """Progress by the clock: refining ends at its time limit, so the share of it spent is the
    share done. A thread reports every ``interval`` seconds, also while one call blocks the
    loop (TensorFlow compiles the first steps, which can take many seconds on a busy CPU)."""

    def __init__(self, progress: ProgressFn | None, seconds: float, started: float,
                 interval: float = 1.0) -> None:
        self.phase = "Preparing a private copy of the model"
        self._progress, self._seconds, self._started = progress, seconds, started
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="refine-progress", daemon=True)

    def __enter__(self) -> "_Clock":
        if self._progress is not None:
            self.report()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.report()

    def report(self) -> None:
        elapsed = time.monotonic() - self._started
        self._progress(min(99.0, 100.0 * elapsed / self._seconds),
                       f"{self.phase}: {time_left(self._seconds - elapsed)}")


def _copy_generator(g: Generator) -> Generator:
    twin = Generator(g.cfg)
    twin.use_precision(g.precision)
    for (_, src), (_, dst) in zip(g.named_variables(), twin.named_variables()):
        dst.assign(src)
    return twin


def refine(bundle, aligned: np.ndarray, *, seconds: float = 60.0, ratio: int = 75,
           encoder_lr: float = 1e-4, generator_lr: float = 3e-4, locality_weight: float = 1.0,
           locality_samples: int = 4, perceptual_weight: float = 0.8, seed: int = 0,
           max_steps: int | None = None, progress: ProgressFn | None = None,
           should_stop: Callable[[], bool] | None = None) -> Refinement:
    """Fine-tune copies of the bundle's encoder and generator on ``aligned`` for ``seconds``
    (or ``max_steps`` steps, whichever comes first). ``progress(percent, message)`` is called
    about once a second with the share of the time limit spent and, in words, what is being
    done and about how long is left."""
    res = bundle.generator.cfg.resolution
    if aligned.shape != (res, res, 3):
        raise ValueError(f"the photo must be an aligned {res}×{res} RGB face, got {aligned.shape}")
    if not seconds > 0:
        raise ValueError(f"the time limit must be positive, got {seconds}")
    if ratio < 1:
        raise ValueError(f"the encoder/generator step ratio must be at least 1, got {ratio}")
    started = time.monotonic()
    with _Clock(progress, seconds, started) as clock:
        result = _fine_tune(bundle, aligned, clock, started, seconds=seconds, ratio=ratio,
                            encoder_lr=encoder_lr, generator_lr=generator_lr,
                            locality_weight=locality_weight, locality_samples=locality_samples,
                            perceptual_weight=perceptual_weight, seed=seed,
                            max_steps=max_steps, should_stop=should_stop)
    if progress is not None:
        progress(100.0, f"Adapted the model to the photo in {result.seconds:.0f} s")
    return result


def _fine_tune(bundle, aligned: np.ndarray, clock: _Clock, started: float, *, seconds: float,
               ratio: int, encoder_lr: float, generator_lr: float, locality_weight: float,
               locality_samples: int, perceptual_weight: float, seed: int,
               max_steps: int | None, should_stop: Callable[[], bool] | None) -> Refinement:
    """``refine``'s work; ``clock.phase`` says what it is doing."""
    g0, d = bundle.generator, bundle.discriminator
    target = tf.constant(aligned[None].astype(np.float32) / 127.5 - 1.0)
    g = _copy_generator(g0)
    encoder = None
    if bundle.has_part(ENCODER_PART):
        encoder = load_encoder(bundle)
        pivot = None
    else:  # no encoder: a short projection gives the pivot latent, which stays fixed
        clock.phase = "Fitting the photo to the model"
        pivot = tf.constant(project(bundle, aligned, steps=100, time_limit=seconds / 4).ws[None])
    # Other latents whose images the generator must keep (locality regulariser).
    z = np.random.default_rng(seed).standard_normal((locality_samples, g.cfg.z_dim))
    anchor_ws = g0.map_compiled(z.astype(np.float32), 0.7, reproducible=False)
    anchor_images = g0.synthesize(anchor_ws)
    dtype = g0.compute_dtype
    if encoder is not None:
        encoder.compute_dtype = dtype
    target_feats = d.perceptual_features(target, dtype) if d is not None else []
    net = (load_identity_net(bundle) if IDENTITY_WEIGHT and identity_measure(bundle)
           == NET_MEASURE else None)
    target_identity = tf.constant(identity_target(net, aligned)) if net is not None else None

    def latent() -> tf.Tensor:
        return encoder(target) if encoder is not None else pivot

    def reconstruction_loss(images: tf.Tensor) -> tf.Tensor:
        loss = tf.reduce_mean(tf.square(images - target))
        if target_feats:
            feats = d.perceptual_features(images, dtype)
            loss += perceptual_weight * tf.add_n([
                tf.reduce_mean(tf.reduce_sum(tf.square(a - b), -1))
                for a, b in zip(feats, target_feats)]) / len(feats)
        if target_identity is not None:
            loss += IDENTITY_WEIGHT * identity_loss(net, images, target_identity)
        return loss

    enc_opt = Adam(encoder.trainable_variables, encoder_lr, (0.9, 0.999)) if encoder else None
    gen_opt = Adam(g.synthesis.trainable_variables, generator_lr, (0.9, 0.999))

    @tf.function
    def encoder_step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = reconstruction_loss(g.synthesis(encoder(target), "const", None, dtype))
        enc_opt.apply(tape.gradient(loss, encoder.trainable_variables,
                                    unconnected_gradients="zero"))
        return loss

    @tf.function
    def generator_step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = reconstruction_loss(g.synthesis(tf.stop_gradient(latent()), "const", None,
                                                   dtype))
            locality = tf.reduce_mean(tf.square(g.synthesis(anchor_ws, "const", None, dtype)
                                                - anchor_images))
            total = loss + locality_weight * locality
        gen_opt.apply(tape.gradient(total, g.synthesis.trainable_variables,
                                    unconnected_gradients="zero"))
        return loss

    initial = float(tf.reduce_mean(tf.square(g.synthesis(latent(), "const", None, dtype) - target)))
    enc_steps = gen_steps = 0
    step = 0
    clock.phase = "Adapting the model to the photo"
    while time.monotonic() - started < seconds:
        if (should_stop is not None and should_stop()) or (max_steps is not None
                                                            and step >= max_steps):
            break
        step += 1
        if encoder is not None and step % ratio:
            encoder_step()
            enc_steps += 1
        else:
            generator_step()
            gen_steps += 1
    ws = latent()
    recon = g.synthesis(ws, "const", None, dtype)
    final = float(tf.reduce_mean(tf.square(recon - target)))
    return Refinement(generator=g, encoder=encoder, ws=ws.numpy()[0],
                      image=to_uint8(recon.numpy())[0], initial_error=initial,
                      final_error=final, encoder_steps=enc_steps, generator_steps=gen_steps,
                      seconds=time.monotonic() - started)


def save_refined(bundle, refinement: Refinement, directory: str | Path, note: str = "") -> str:
    """Write the refined networks as a new bundle (with the original's discriminator, PCA and
    identity network) and return its hash; the original bundle is untouched."""
    m = bundle.manifest
    digest = save_bundle(
        directory, refinement.generator, bundle.discriminator, name=f"{m.get('name')}-refined",
        description=f"refined from bundle {bundle.hash[:12]} on one photo"
                    + (f" ({note})" if note else ""),
        creator="ligan refine", licence=m.get("licence", "unspecified"),
        training_data=m.get("training_data"),
        extra={"refined_from": bundle.hash,
               "refinement": {"encoder_steps": refinement.encoder_steps,
                              "generator_steps": refinement.generator_steps,
                              "seconds": round(refinement.seconds, 1)}})
    if refinement.encoder is not None:
        digest = add_part(directory, ENCODER_PART, module_arrays(refinement.encoder),
                          config=bundle.manifest["parts"][ENCODER_PART]["config"])
    for part in ("pca", IDENTITY_PART):
        if bundle.has_part(part):
            digest = add_part(directory, part, bundle.part_arrays(part),
                              config=bundle.manifest["parts"][part].get("config", {}))
    return digest
