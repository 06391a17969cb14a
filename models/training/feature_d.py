"""A second discriminator that reads faces through the bundle's frozen identity network.

StyleGAN2's own discriminator learns its features from scratch, on the same budget as the
generator. A discriminator that looks through a network already trained on faces starts with
features that tell photographs from generated faces (vision-aided GAN training, Kumari et al.
2022, "Ensembling Off-the-shelf Models for GAN Training", does this with ImageNet and CLIP
networks; none can be downloaded here). LiGAN's face network is its identity network — dlib's
descriptor distilled (:mod:`models.faces.identity_net`).

The network stays frozen; only a small head learns. It reads the network at every level: the
mean and standard deviation over space of each residual block's output (texture and contrast
statistics at 32, 16, 8 and 4 px) beside the trunk's features and the 128-d embedding. Measured
on 512 held-out UTKFace faces against 512 faces of the lr-0.001 campaign run (70 kimg), a
cross-validated logistic regression tells them apart 90 % of the time on these levels together,
76–78 % on the embedding or the trunk's features alone. Each feature is standardised with the
mean and deviation of real faces, measured once when the head starts (:meth:`calibrate`) and
checkpointed with it: unscaled, the large features drowned the rest and the head learnt far
slower (300 Adam steps at :data:`HEAD_LR`: 71 % held out against 87 %).

Images are augmented before the network, as for the main discriminator, so that the generator
cannot fool the frozen features with patterns of fixed position. The head's logistic loss joins
the generator's with a weight (``TrainConfig.feature_d_weight``).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.face_trunk import trunk_levels
from models.faces.identity_net import EMBEDDING_DIM, IdentityNet
from models.stylegan2.layers import Dense, NamedModule

#: Width of the head's hidden layer.
HEAD_HIDDEN = 256
#: The head's Adam learning rate (β = 0, 0.99, as StyleGAN2's discriminator). In the
#: measurement above, 0.0025 reached 86 % in 300 steps where 0.001 reached 80 %.
HEAD_LR = 0.0025


def feature_count(net: IdentityNet) -> int:
    """How many numbers :meth:`FeatureDiscriminator.features` gives per face."""
    pooled = sum(2 * int(block.conv1.weight.shape[-1]) for block in net.blocks)
    return pooled + net.cfg.features + EMBEDDING_DIM


class FeatureHead(NamedModule):
    """Standardised features → hidden → one real/fake logit per face."""

    def __init__(self, features: int, seed: int = 0) -> None:
        super().__init__("feature_d")
        rng = np.random.default_rng(seed)
        self.mean = self.add_var("mean", np.zeros(features), trainable=False)
        self.scale = self.add_var("scale", np.ones(features), trainable=False)
        self.calibrated = self.add_var("calibrated", np.zeros(()), trainable=False)
        self.hidden = self.add_child("hidden", Dense("hidden", features, HEAD_HIDDEN, rng,
                                                     act="lrelu"))
        self.out = self.add_child("out", Dense("out", HEAD_HIDDEN, 1, rng))

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        return self.out(self.hidden((features - self.mean) * self.scale))


class FeatureDiscriminator:
    """The frozen identity network and the trainable head on its features.

    Only :attr:`head` is trained and checkpointed; the network's weights come from a bundle
    and gradients flow through it to the generator's images.
    """

    def __init__(self, net: IdentityNet, seed: int = 0) -> None:
        self.net = net
        self.head = FeatureHead(feature_count(net), seed)

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return self.head.trainable_variables

    @property
    def calibrated(self) -> bool:
        return bool(self.head.calibrated.numpy())

    def features(self, images: tf.Tensor) -> tf.Tensor:
        """Faces [N, R, R, 3] in [-1, 1] → every block's mean and deviation over space, the
        trunk's features and the embedding, [N, feature_count]."""
        levels, trunk = trunk_levels(self.net, images)
        pooled = []
        for level in levels:
            mean, var = tf.nn.moments(level, axes=[1, 2])
            pooled += [mean, tf.sqrt(var + 1e-8)]
        return tf.concat([*pooled, trunk, self.net.embed_features(trunk)], axis=-1)

    def embeddings(self, features: tf.Tensor) -> tf.Tensor:
        """The identity embeddings [N, 128] inside :meth:`features`' output."""
        return features[:, -EMBEDDING_DIM:]

    def calibrate(self, real: np.ndarray) -> None:
        """Standardise the head's inputs with these real faces' feature means and deviations."""
        feats = np.concatenate([self.features(tf.constant(real[i:i + 64])).numpy()
                                for i in range(0, len(real), 64)])
        self.head.mean.assign(feats.mean(axis=0))
        self.head.scale.assign(1.0 / (feats.std(axis=0) + 1e-3))
        self.head.calibrated.assign(1.0)

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        """Faces → real/fake logits [N, 1] (differentiable with respect to the images)."""
        return self.head(self.features(images))


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
