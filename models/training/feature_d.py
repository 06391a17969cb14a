"""A second discriminator that reads faces through the bundle's frozen identity network.

StyleGAN2's own discriminator learns its features from scratch, on the same budget as the
generator. A discriminator that looks through a network already trained on faces starts with
features that tell photographs from generated faces (vision-aided GAN training, Kumari et al.
2022, "Ensembling Off-the-shelf Models for GAN Training", does this with ImageNet and CLIP
networks; none can be downloaded here). LiGAN's face network is its identity network — dlib's
descriptor distilled (:mod:`models.faces.identity_net`) — in whose space a logistic regression
tells this generator's faces from photographs almost every time (docs/model_card.md, "real vs
generated"): the signal the generator most lacks.

The network stays frozen; only a small head on its features learns (two dense layers on the
trunk's features beside the 128-d embedding). Images are augmented before the network, as for
the main discriminator, so that the generator cannot fool the frozen features with patterns of
fixed position. The head's logistic loss joins the generator's with a weight
(``TrainConfig.feature_d_weight``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.face_trunk import trunk_features
from models.faces.identity_net import EMBEDDING_DIM, IdentityNet
from models.stylegan2.layers import Dense, NamedModule

#: Width of the head's hidden layer.
HEAD_HIDDEN = 256


class FeatureHead(NamedModule):
    """[trunk features ‖ identity embedding] → hidden → one real/fake logit per face."""

    def __init__(self, features: int, seed: int = 0) -> None:
        super().__init__("feature_d")
        rng = np.random.default_rng(seed)
        self.hidden = self.add_child("hidden", Dense("hidden", features + EMBEDDING_DIM,
                                                     HEAD_HIDDEN, rng, act="lrelu"))
        self.out = self.add_child("out", Dense("out", HEAD_HIDDEN, 1, rng))

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        return self.out(self.hidden(features))


class FeatureDiscriminator:
    """The frozen identity network and the trainable head on its features.

    Only :attr:`head` is trained and checkpointed; the network's weights come from a bundle
    and gradients flow through it to the generator's images.
    """

    def __init__(self, net: IdentityNet, seed: int = 0) -> None:
        self.net = net
        self.head = FeatureHead(net.cfg.features, seed)

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return self.head.trainable_variables

    def features(self, images: tf.Tensor) -> tf.Tensor:
        """Faces [N, R, R, 3] in [-1, 1] → the network's trunk features and embedding."""
        trunk = trunk_features(self.net, images)
        embedding = self.net.out(self.net.hidden(trunk))
        return tf.concat([trunk, embedding], axis=-1)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Faces → real/fake logits [N, 1] (differentiable with respect to the images)."""
        return self.head(self.features(tf.cast(images, tf.float32)))


def load_feature_discriminator(bundle_path: str, resolution: int,
                               seed: int = 0) -> FeatureDiscriminator:
    """The feature discriminator on the identity network of the bundle at ``bundle_path``;
    a clear error when the bundle has none or it reads another resolution."""
    from models.bundle import load_bundle
    from models.faces.identity_net import load_identity_net

    net = load_identity_net(load_bundle(bundle_path, parts=()))
    if net.cfg.resolution != resolution:
        raise ValueError(f"the identity network of {bundle_path} reads {net.cfg.resolution}-px "
                         f"faces, this run trains at {resolution} px")
    return FeatureDiscriminator(net, seed)
