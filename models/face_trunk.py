"""The convolutional trunk of LiGAN's face readers: the attribute model and the identity network.

Aligned faces [N, R, R, 3] in [-1, 1] at the bundle's resolution R are brought to a working
resolution (area averaging down by a whole factor, bilinear otherwise: both have gradients,
which TensorFlow's area resize has not), then a 1×1 stem, residual blocks (the encoder's, with
our equalised-learning-rate layers) that halve the resolution down to 4×4, and a dense layer
give ``features`` numbers per face. Both readers share its layout and variable names (``stem``,
``b64`` … ``b8``, ``fc``), so the identity network can start from a trained attribute model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from models.encoder import ResBlock
from models.stylegan2.config import ConfigError
from models.stylegan2.layers import Conv, Dense, NamedModule


@dataclasses.dataclass(frozen=True)
class TrunkConfig:
    resolution: int            # the bundle's image resolution (the input size)
    work_resolution: int = 64  # images are resized to this before the network
    channel_base: int = 2048
    channel_max: int = 128
    features: int = 128
    what: ClassVar[str] = "face reader"  # for error messages

    def __post_init__(self) -> None:
        for name in ("resolution", "work_resolution"):
            value = getattr(self, name)
            if value < 8 or value & (value - 1):
                raise ConfigError(f"{self.what} {name} must be a power of two ≥ 8, got {value}")

    def channels(self, res: int) -> int:
        return max(16, min(self.channel_base // res, self.channel_max))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def add_trunk(module: NamedModule, cfg: TrunkConfig, rng: np.random.Generator) -> None:
    """Give ``module`` the trunk's layers (``stem``, ``blocks``, ``fc``) as children."""
    r = cfg.work_resolution
    module.stem = module.add_child("stem", Conv("stem", 3, cfg.channels(r), 1, rng, act="lrelu"))
    module.blocks = []
    while r > 4:
        module.blocks.append(module.add_child(f"b{r}", ResBlock(f"b{r}", cfg.channels(r),
                                                                cfg.channels(r // 2), rng)))
        r //= 2
    module.fc = module.add_child("fc", Dense("fc", cfg.channels(4) * 16, cfg.features, rng,
                                             act="lrelu"))


def trunk_features(module: NamedModule, images: tf.Tensor, dtype: tf.DType = tf.float32
                   ) -> tf.Tensor:
    """Faces [N, R, R, 3] in [-1, 1] → features [N, cfg.features], convolutions in ``dtype``."""
    return trunk_levels(module, images, dtype)[1]


def trunk_levels(module: NamedModule, images: tf.Tensor, dtype: tf.DType = tf.float32
                 ) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Faces → every residual block's output (from the working resolution down to 4×4) and
    the features of :func:`trunk_features`."""
    x = to_work_resolution(tf.cast(images, tf.float32), module.cfg.work_resolution)
    x = module.stem(tf.cast(x, dtype))
    levels = []
    for block in module.blocks:
        x = block(x)
        levels.append(x)
    features = module.fc(tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]]))
    return levels, features


def to_work_resolution(x: tf.Tensor, work: int) -> tf.Tensor:
    """Square images [N, R, R, C] → [N, work, work, C] (see the module docstring; a size known
    only at run time uses TensorFlow's area resize)."""
    res = x.shape[1]
    if res == work:
        return x
    if res is None:  # a size known only at run time (no gradient needed there)
        return tf.image.resize(x, [work, work], method="area", antialias=True)
    if res > work and res % work == 0:
        return tf.nn.avg_pool2d(x, res // work, res // work, "VALID")
    return tf.image.resize(x, [work, work], method="bilinear", antialias=True)


def face_batch(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] (or one [H, W, 3]) or float in [-1, 1] → float32 [-1, 1] batch."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [N, R, R, 3], got {list(images.shape)}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images must be uint8 or float in [-1, 1], got {images.dtype}")
    return np.clip(images.astype(np.float32), -1.0, 1.0)
