"""LiGAN's identity network: dlib's 128-d face descriptor, distilled into a small TensorFlow CNN.

dlib's descriptor (:mod:`models.faces.identity`) is the instrument LiGAN measures likeness
with, but it costs about 0.15 s a face on a CPU, runs one face at a time and has no gradient.
This network maps an aligned face at the bundle's resolution (framed like its training faces)
straight to a point of dlib's space, trained to land where dlib puts the same crop
(``ligan train identity``). It gives:

- fillers scored in one batched call (about 1 ms a face instead of 150 ms);
- an identity loss for the projector, refine and the encoder (the role ArcFace plays in pSp,
  e4e and PTI; no pretrained recognition network can be downloaded here).

It estimates where dlib puts a face, so its embeddings are compared with dlib's: a suspect's
photo keeps its exact dlib embedding (``photo_identity``), and generated faces are measured
against it. Measured on London photos and page-1 candidates around them, that reading follows
dlib's distances far better than comparing the network's embeddings of both (the network reads
generated faces better than photos; docs/model_card.md).

dlib stays the independent instrument of the metrics and tests; the network's agreement with
it on held-out photos and generated faces is recorded in the part's config (``agreement``).

The trunk is the attribute model's (:mod:`models.face_trunk`), so training starts from the
bundle's attribute model, which already reads faces; two dense layers map its features to the
128-d embedding. Weights live in the bundle's ``identity`` part.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import tensorflow as tf

from models.face_trunk import TrunkConfig, add_trunk, face_batch, trunk_features
# re-exported, so the network's callers find the measure names here too (they live in the
# TensorFlow-free models.faces.identity, which the command line imports at start)
from models.faces.identity import (DLIB_MEASURE, IDENTITY_PART, NET_MEASURE,  # noqa: F401
                                   identity_measure)
from models.stylegan2.config import ConfigError
from models.stylegan2.layers import Dense, NamedModule

EMBEDDING_DIM = 128
#: Default weight of the identity loss beside the pixel and feature losses of the projector,
#: refine and encoder training. 0 (off): with the shipped network, weights 0.5 and 2 moved the
#: London reconstructions' dlib distance by under 0.01 and raised their pixel error
#: (docs/model_card.md); a sharper network is what the loss waits for. Callers may pass one.
IDENTITY_WEIGHT = 0.0


@dataclasses.dataclass(frozen=True)
class IdentityNetConfig(TrunkConfig):
    hidden: int = 256
    what: ClassVar[str] = "identity network"


class IdentityNet(NamedModule):
    """Aligned faces in [-1, 1] → 128-d points of dlib's identity space."""

    def __init__(self, cfg: IdentityNetConfig, seed: int = 0) -> None:
        super().__init__("identity")
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        add_trunk(self, cfg, rng)
        self.hidden = self.add_child("embed_hidden", Dense("embed_hidden", cfg.features,
                                                           cfg.hidden, rng, act="lrelu"))
        self.out = self.add_child("embed", Dense("embed", cfg.hidden, EMBEDDING_DIM, rng))
        self._embed = None

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Float images [N, R, R, 3] in [-1, 1] → embeddings [N, 128] (differentiable)."""
        return self.embed_features(trunk_features(self, images))

    def embed_features(self, features: tf.Tensor) -> tf.Tensor:
        """The trunk's features [N, cfg.features] → embeddings [N, 128]."""
        return self.out(self.hidden(features))

    def embed(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embeddings (float32 [N, 128]) of aligned faces at the bundle's resolution, uint8 or
        float in [-1, 1]."""
        res = self.cfg.resolution
        if self._embed is None:
            self._embed = tf.function(self.__call__, input_signature=[
                tf.TensorSpec([None, res, res, 3], tf.float32)])
        x = face_batch(images)
        if x.shape[1:3] != (res, res):
            raise ValueError(f"images must be aligned faces [N, {res}, {res}, 3], got "
                             f"{list(x.shape)}")
        parts = [self._embed(tf.constant(x[i:i + batch_size])).numpy()
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_DIM), np.float32)


def identity_target(net: IdentityNet, aligned: np.ndarray) -> np.ndarray:
    """Where an aligned photo (uint8 [R, R, 3]) lies in dlib's space, for an identity loss:
    dlib's own embedding when dlib finds the face — exact, and the network reads photos less
    well than generated faces — else the network's."""
    from models.faces.identity import aligned_face_embedding

    embedding, found = aligned_face_embedding(aligned)
    return embedding if found else net.embed(aligned)[0]


def identity_loss(net: IdentityNet, images: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean identity distance of ``images`` ([N, R, R, 3] in [-1, 1]) to ``target`` (one
    embedding [128] or one per image): differentiable, for the projector, refine and the
    encoder."""
    diff = net(images) - tf.cast(target, tf.float32)
    return tf.reduce_mean(tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + 1e-8))


def load_identity_net(bundle) -> IdentityNet:
    """The bundle's identity network, built once per loaded bundle (cached on the object)."""
    from models.bundle import BundleFileMissingError, BundleFormatError, assign_weights

    cached = bundle.__dict__.get("_identity_net")
    if cached is not None:
        return cached
    if not bundle.has_part(IDENTITY_PART):
        raise BundleFileMissingError(
            f"bundle {bundle.path} has no identity network; train one with 'ligan train "
            f"identity --bundle {bundle.path} --run-dir RUN'")
    config = bundle.manifest["parts"][IDENTITY_PART].get("config", {})
    try:
        net = IdentityNet(IdentityNetConfig(**config["model"]))
    except (KeyError, TypeError, ConfigError) as exc:
        raise BundleFormatError(f"bundle {bundle.path}: identity config is invalid: {exc}") \
            from None
    assign_weights(net, bundle.part_arrays(IDENTITY_PART), f"bundle {bundle.path}, identity")
    bundle.__dict__["_identity_net"] = net
    return net
