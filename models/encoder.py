"""Photo → w+ in one forward pass: an encoder in the style of pSp.

A residual convolutional backbone halves the resolution step by step; a feature pyramid takes
three of its levels (the deepest, one above, two above), merged top-down. Each w+ entry has its
own map-to-style head — stride-2 convolutions down to 1×1, then a dense layer: coarse entries
read the deepest level, middle entries the next, fine entries the shallowest. The heads output
offsets from ``w_avg`` in units of the per-dimension standard deviation of W (the generator's
own latent statistics), so every entry starts at the average face and the output scale matches
W whatever the generator.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from models.stylegan2.config import ConfigError
from models.stylegan2.layers import Conv, Dense, NamedModule

ENCODER_PART = "encoder"


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    resolution: int
    num_ws: int
    w_dim: int
    style_ranges: dict  # {"coarse": [a, b], "middle": [...], "fine": [...]}
    channel_base: int = 4096
    channel_max: int = 256
    head_channels: int = 128

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution & (self.resolution - 1):
            raise ConfigError(f"encoder resolution must be a power of two ≥ 32, got "
                              f"{self.resolution}")
        covered = sorted(i for a, b in self.style_ranges.values() for i in range(a, b))
        if covered != list(range(self.num_ws)):
            raise ConfigError(f"style ranges {self.style_ranges} do not cover the "
                              f"{self.num_ws} w+ entries exactly once")

    def channels(self, res: int) -> int:
        return max(16, min(self.channel_base // res, self.channel_max))

    @property
    def pyramid(self) -> dict[str, int]:
        """Resolution of the feature map each style group reads (deepest for coarse)."""
        return {"coarse": 4 if self.resolution <= 64 else 8,
                "middle": 8 if self.resolution <= 64 else 16,
                "fine": 16 if self.resolution <= 64 else 32}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def for_bundle(cls, bundle, **overrides) -> "EncoderConfig":
        m = bundle.manifest
        return cls(resolution=int(m["resolution"]), num_ws=int(m["num_ws"]), w_dim=int(m["w_dim"]),
                   style_ranges=dict(m["style_layers"]), **overrides)


class ResBlock(NamedModule):
    """Two 3×3 convolutions (the second halving the resolution) plus a 1×1 downsampling skip."""

    def __init__(self, name: str, cin: int, cout: int, rng: np.random.Generator) -> None:
        super().__init__(name)
        self.conv0 = self.add_child("conv0", Conv("conv0", cin, cin, 3, rng, act="lrelu"))
        self.conv1 = self.add_child("conv1", Conv("conv1", cin, cout, 3, rng, act="lrelu",
                                                  down=True, gain=math.sqrt(0.5)))
        self.skip = self.add_child("skip", Conv("skip", cin, cout, 1, rng, bias=False, down=True,
                                                gain=math.sqrt(0.5)))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


class MapToStyle(NamedModule):
    """Feature map [N, r, r, C] → one w vector: stride-2 convolutions to 1×1, then dense."""

    def __init__(self, name: str, res: int, cin: int, w_dim: int, rng: np.random.Generator) -> None:
        super().__init__(name)
        self.convs = []
        c = cin
        for i in range(int(math.log2(res))):
            self.convs.append(self.add_child(f"conv{i}", Conv(f"conv{i}", c, cin, 3, rng,
                                                              act="lrelu", down=True)))
        self.fc = self.add_child("fc", Dense("fc", cin, w_dim, rng))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for conv in self.convs:
            x = conv(x)
        return self.fc(tf.reshape(x, [tf.shape(x)[0], x.shape[-1]]))


class Encoder(NamedModule):
    """Aligned image [N, R, R, 3] in [-1, 1] → w+ [N, num_ws, w_dim]."""

    def __init__(self, cfg: EncoderConfig, seed: int = 0) -> None:
        super().__init__("encoder")
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        r = cfg.resolution
        self.stem = self.add_child("stem", Conv("stem", 3, cfg.channels(r), 1, rng, act="lrelu"))
        self.blocks = []
        while r > cfg.pyramid["coarse"]:
            block = ResBlock(f"b{r}", cfg.channels(r), cfg.channels(r // 2), rng)
            self.blocks.append((r // 2, self.add_child(f"b{r}", block)))
            r //= 2
        hc = cfg.head_channels
        self.lateral = {g: self.add_child(f"lateral_{g}", Conv(f"lateral_{g}",
                                                                 cfg.channels(res), hc, 1, rng))
                        for g, res in cfg.pyramid.items()}
        group_of = {i: g for g, (a, b) in cfg.style_ranges.items() for i in range(a, b)}
        self.heads = [(group_of[i], self.add_child(f"style{i}", MapToStyle(
            f"style{i}", cfg.pyramid[group_of[i]], hc, cfg.w_dim, rng)))
            for i in range(cfg.num_ws)]
        # W statistics of the generator this encoder serves (set from the bundle, then frozen).
        self.w_avg = self.add_var("w_avg", np.zeros([cfg.w_dim]), trainable=False)
        self.w_std = self.add_var("w_std", np.ones([cfg.w_dim]), trainable=False)
        # dtype of the convolutions (models.precision); w+ comes out float32 either way.
        self.compute_dtype = tf.float32

    def pyramid_features(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        x = self.stem(tf.cast(tf.convert_to_tensor(images, tf.float32), self.compute_dtype))
        by_res = {}
        for res, block in self.blocks:
            x = block(x)
            by_res[res] = x
        feats = {g: self.lateral[g](by_res[res]) for g, res in self.cfg.pyramid.items()}
        # Top-down: each level also sees the (upsampled) deeper one, as in a feature pyramid.
        feats["middle"] += _upsample_nearest(feats["coarse"], feats["middle"].shape[1])
        feats["fine"] += _upsample_nearest(feats["middle"], feats["fine"].shape[1])
        return feats

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        feats = self.pyramid_features(images)
        offsets = tf.cast(tf.stack([head(feats[group]) for group, head in self.heads], axis=1),
                          tf.float32)
        return self.w_avg + offsets * self.w_std

    def set_w_statistics(self, generator, num_samples: int = 10_000, seed: int = 0) -> None:
        z = np.random.default_rng(seed).standard_normal((num_samples, generator.cfg.z_dim))
        w = generator.map_compiled(z.astype(np.float32), reproducible=False).numpy()[:, 0]
        self.w_avg.assign(w.mean(axis=0))
        self.w_std.assign(np.maximum(w.std(axis=0), 1e-4))


def _upsample_nearest(x: tf.Tensor, size: int) -> tf.Tensor:
    factor = size // x.shape[1]
    return tf.repeat(tf.repeat(x, factor, axis=1), factor, axis=2)


def load_encoder(bundle) -> Encoder:
    """The encoder part of a loaded bundle (a clear error if it has none)."""
    from models.bundle import BundleFileMissingError, assign_weights

    if not bundle.has_part(ENCODER_PART):
        raise BundleFileMissingError(f"bundle {bundle.path} has no encoder; train one with "
                                     f"'ligan train encoder --bundle {bundle.path}'")
    cfg = EncoderConfig(**bundle.manifest["parts"][ENCODER_PART]["config"])
    enc = Encoder(cfg)
    assign_weights(enc, bundle.part_arrays(ENCODER_PART), f"bundle {bundle.path}, encoder")
    return enc


def shared_encoder(bundle) -> Callable[[np.ndarray], np.ndarray]:
    """The bundle's encoder for inference: aligned uint8 faces [N, R, R, 3] → w+ (NumPy).

    Built and compiled once per loaded bundle (kept in ``bundle.cache``): encoding a photo then
    costs one forward pass. Never trained: refine fine-tunes its own copy (:func:`load_encoder`).
    """
    if "encoder" not in bundle.cache:
        encoder = load_encoder(bundle)
        encoder.compute_dtype = bundle.generator.compute_dtype
        compiled = tf.function(encoder.__call__, reduce_retracing=True)

        def encode(faces: np.ndarray) -> np.ndarray:
            x = np.asarray(faces, np.float32) / 127.5 - 1.0
            return compiled(tf.constant(x)).numpy()

        bundle.cache["encoder"] = encode
    return bundle.cache["encoder"]
