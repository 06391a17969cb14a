"""The residual StyleGAN2 discriminator with minibatch standard deviation.

Used for training, as the source of perceptual features that we own (its intermediate
activations), and for the "discriminator score" that ranks generated faces by realism.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from models.stylegan2.config import LABEL_LR_MULTIPLIER, DiscriminatorConfig
from models.stylegan2.layers import Conv, Dense, NamedModule


class DiscriminatorBlock(NamedModule):
    """Two 3×3 convolutions (the second downsampling) plus a 1×1 downsampling skip, scaled by
    1/sqrt(2) so that the sum keeps unit variance."""

    def __init__(self, cfg: DiscriminatorConfig, resolution: int, rng: np.random.Generator,
                 first: bool) -> None:
        super().__init__(f"b{resolution}")
        tmp_ch = cfg.channels(resolution)
        out_ch = cfg.channels(resolution // 2)
        clamp = cfg.conv_clamp
        self.fromrgb = (self.add_child("fromrgb", Conv("fromrgb", cfg.img_channels, tmp_ch, 1, rng,
                                                       act="lrelu", clamp=clamp))
                        if first else None)
        self.conv0 = self.add_child("conv0", Conv("conv0", tmp_ch, tmp_ch, 3, rng, act="lrelu",
                                                  clamp=clamp))
        self.conv1 = self.add_child("conv1", Conv("conv1", tmp_ch, out_ch, 3, rng, act="lrelu",
                                                  down=True, gain=math.sqrt(0.5), clamp=clamp))
        self.skip = self.add_child("skip", Conv("skip", tmp_ch, out_ch, 1, rng, bias=False,
                                                down=True, gain=math.sqrt(0.5)))

    def __call__(self, x: tf.Tensor, features: list[tf.Tensor] | None = None) -> tf.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x)
        x = self.conv0(x)
        if features is not None:
            features.append(x)
        return y + self.conv1(x)


def minibatch_stddev(x: tf.Tensor, group_size: int, num_channels: int) -> tf.Tensor:
    """Append the standard deviation of features across groups of samples as extra channels.

    Samples are grouped as ``[group, n/group]`` (sample ``i`` is in group ``i % (n/group)``), the
    official arrangement. The group is the largest size up to ``group_size`` that divides the
    batch: the same as the official code wherever that runs, and any batch size works (the
    originals fail when the batch is not a multiple of the group).
    """
    n = tf.shape(x)[0]
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    sizes = tf.range(1, group_size + 1)
    g = tf.reduce_max(tf.where(n % sizes == 0, sizes, 1))
    f = num_channels
    y = tf.reshape(x, [g, -1, h, w, f, c // f])
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)  # [M, H, W, F, c/F]
    y = tf.reduce_mean(y, axis=[1, 2, 4])  # [M, F]
    y = tf.tile(y[:, None, None, :], [g, h, w, 1])  # [N, H, W, F]
    return tf.concat([x, y], axis=-1)


class DiscriminatorEpilogue(NamedModule):
    """4×4 head: minibatch stddev, a 3×3 convolution, a dense layer and the score."""

    def __init__(self, cfg: DiscriminatorConfig, rng: np.random.Generator) -> None:
        super().__init__("b4")
        ch = cfg.channels(4)
        self.cfg = cfg
        self.conv = self.add_child("conv", Conv("conv", ch + cfg.mbstd_num_channels, ch, 3, rng,
                                                act="lrelu", clamp=cfg.conv_clamp))
        # the minibatch-stddev channels come after the features ([k, k, in, out] weights)
        self._appended_inputs = {"conv.weight": (2, cfg.mbstd_num_channels)}
        self.fc = self.add_child("fc", Dense("fc", ch * 16, ch, rng, act="lrelu"))
        self.out = self.add_child("out", Dense("out", ch, 1, rng))
        # A conditional discriminator adds a projection term (Miyato & Koyama 2018): the dense
        # features' dot product with an embedding of the face's labels.
        self._label_only = ("cmap",)
        self.cmap = (self.add_child("cmap", Dense("cmap", cfg.c_dim, ch, rng,
                                                  lr_multiplier=LABEL_LR_MULTIPLIER))
                     if cfg.c_dim else None)

    def __call__(self, x: tf.Tensor, features: list[tf.Tensor] | None = None,
                 labels: tf.Tensor | None = None) -> tf.Tensor:
        x = minibatch_stddev(x, self.cfg.mbstd_group_size, self.cfg.mbstd_num_channels)
        x = self.conv(x)
        if features is not None:
            features.append(x)
        # Flatten in channel-major (NCHW) order so that dense weights match the published layout.
        x = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [tf.shape(x)[0], -1])
        x = self.fc(x)
        score = self.out(x)
        if self.cmap is not None and labels is not None:
            projection = self.cmap(tf.convert_to_tensor(labels, tf.float32))
            score += tf.reduce_sum(x * projection, axis=1, keepdims=True) * \
                (1.0 / np.sqrt(x.shape[-1]))
        return score


class Discriminator(NamedModule):
    """Image [N, H, W, C] in [-1, 1] → realism score [N, 1] (higher: more real)."""

    def __init__(self, cfg: DiscriminatorConfig, seed: int = 0) -> None:
        super().__init__("discriminator")
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        self.blocks = [self.add_child(f"b{r}", DiscriminatorBlock(cfg, r, rng, first=(i == 0)))
                       for i, r in enumerate(cfg.block_resolutions)]
        self.epilogue = self.add_child("b4", DiscriminatorEpilogue(cfg, rng))

    def __call__(self, images: tf.Tensor, dtype: tf.DType = tf.float32,
                 labels: tf.Tensor | None = None) -> tf.Tensor:
        """Scores (float32); the resolution blocks compute in ``dtype`` (models.precision),
        the 4×4 epilogue with its minibatch statistics and the score in float32. A conditional
        discriminator scores the faces given ``labels`` [N, c_dim] (None: its label term is
        left out)."""
        x = tf.cast(tf.convert_to_tensor(images, tf.float32), dtype)
        for block in self.blocks:
            x = block(x)
        return self.epilogue(tf.cast(x, tf.float32), labels=labels)

    def perceptual_features(self, images: tf.Tensor,
                            dtype: tf.DType = tf.float32) -> list[tf.Tensor]:
        """:meth:`features` with each position's channel vector scaled to unit length (as LPIPS
        normalises VGG features): the perceptual distance of projector, encoder and refine.
        Float32, whatever ``dtype`` the blocks computed in."""
        feats = [tf.cast(f, tf.float32) for f in self.features(images, dtype)]
        return [f * tf.math.rsqrt(tf.reduce_sum(tf.square(f), axis=-1, keepdims=True) + 1e-10)
                for f in feats]

    def features(self, images: tf.Tensor, dtype: tf.DType = tf.float32) -> list[tf.Tensor]:
        """Intermediate activations (one per block), for perceptual losses built on our own net;
        the blocks compute in ``dtype``, the epilogue in float32."""
        feats: list[tf.Tensor] = []
        x = tf.cast(tf.convert_to_tensor(images, tf.float32), dtype)
        for block in self.blocks:
            x = block(x, feats)
        self.epilogue(tf.cast(x, tf.float32), feats)
        return feats
