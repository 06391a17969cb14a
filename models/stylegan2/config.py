"""Architecture settings of the StyleGAN2 generator and discriminator.

The defaults are those of the official StyleGAN2 config F / StyleGAN2-ADA ``stylegan2`` config,
so a published network is described by its resolution alone. Channel counts follow StyleGAN2-ADA:
a layer at resolution ``r`` has ``min(channel_base // r, channel_max)`` feature maps.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

MIN_RESOLUTION = 32
MAX_RESOLUTION = 1024
#: Learning-rate multiplier of a conditional network's label paths (the mapping's label embedding
#: and the discriminator's projection). Started near-silent on a trained unconditional network,
#: at the plain rate they random-walked for 10 kimg without growing (measured at lr 0.0004),
#: so the generator never learnt to use its labels; these few weights learn 10× faster.
LABEL_LR_MULTIPLIER = 10.0


class ConfigError(ValueError):
    """An architecture setting is out of range or inconsistent."""


def _check_resolution(resolution: int) -> int:
    if (not isinstance(resolution, int) or resolution < MIN_RESOLUTION or resolution > MAX_RESOLUTION
            or resolution & (resolution - 1)):
        raise ConfigError(f"resolution must be a power of two from {MIN_RESOLUTION} to "
                          f"{MAX_RESOLUTION}, got {resolution!r}")
    return resolution


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps of the layers working at ``resolution``."""
    return max(1, min(channel_base // resolution, channel_max))


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Everything that fixes the generator's variables and their shapes."""

    resolution: int
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None
    w_avg_beta: float = 0.995
    # A conditional generator (models.conditioning): group counts of the label vector's
    # one-hot blocks, one per trait; empty: unconditional.
    label_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        for name in ("z_dim", "w_dim", "mapping_layers", "img_channels", "channel_base",
                     "channel_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.conv_clamp is not None and self.conv_clamp <= 0:
            raise ConfigError(f"conv_clamp must be positive or null, got {self.conv_clamp!r}")
        _check_label_groups(self)
        if len(self.label_groups) > self.z_dim:
            raise ConfigError(f"{len(self.label_groups)} label traits need a z of at least "
                              f"that many entries (labels are drawn from z), got {self.z_dim}")

    @property
    def c_dim(self) -> int:
        """Entries of the label vector (0: unconditional)."""
        return sum(self.label_groups)

    @property
    def log2_resolution(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Entries of w+: one per modulated layer input (two per block after 4×4, plus ToRGB)."""
        return 2 * self.log2_resolution - 2

    @property
    def block_resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, self.log2_resolution + 1)]

    def channels(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)

    def style_ranges(self) -> dict[str, list[int]]:
        """The w+ entries for coarse (4–8 px), middle (16–32 px) and fine (64 px and up) styles.

        Entry ``2k-4`` and ``2k-3`` belong to the block at 2**k px (the second being its ToRGB and
        the next block's upsampling layer), as in the StyleGAN papers' style-mixing figures.
        Ranges are half-open ``[start, stop)``.
        """
        n = self.num_ws
        return {"coarse": [0, min(4, n)], "middle": [min(4, n), min(8, n)],
                "fine": [min(8, n), n]}

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        return _from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Everything that fixes the residual discriminator's variables and their shapes."""

    resolution: int
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    conv_clamp: float | None = None
    # A conditional discriminator scores a face given its labels (as GeneratorConfig).
    label_groups: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_resolution(self.resolution)
        for name in ("img_channels", "channel_base", "channel_max", "mbstd_group_size",
                     "mbstd_num_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        _check_label_groups(self)

    @property
    def c_dim(self) -> int:
        """Entries of the label vector (0: unconditional)."""
        return sum(self.label_groups)

    @property
    def block_resolutions(self) -> list[int]:
        return [2 ** i for i in range(int(math.log2(self.resolution)), 2, -1)]

    def channels(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        return _from_dict(cls, data)


def _check_label_groups(cfg: Any) -> None:
    """Store ``label_groups`` as a tuple (JSON gives a list); every group count at least 2."""
    groups = tuple(cfg.label_groups)
    if any(not isinstance(n, int) or n < 2 for n in groups):
        raise ConfigError(f"label_groups must be counts of at least 2, got {list(groups)!r}")
    object.__setattr__(cfg, "label_groups", groups)


def _to_dict(cfg: Any) -> dict[str, Any]:
    """The settings as JSON-ready values; an unconditional network leaves ``label_groups`` out,
    so its description is the same as before conditioning existed."""
    data = dataclasses.asdict(cfg)
    data["label_groups"] = list(data["label_groups"])
    if not data["label_groups"]:
        del data["label_groups"]
    return data


def _from_dict(cls: type, data: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"incomplete {cls.__name__}: {exc}") from None


def generator_flops(cfg: GeneratorConfig) -> dict[str, int]:
    """FLOPs (2 × multiply-adds) per image of mapping + synthesis for a ``GeneratorConfig``.

    Counted: every 3×3 modulated convolution (the 2× upsampling ones as a transposed
    convolution, input pixels × Cin × Cout × 9, i.e. without the inserted zeros), the 1×1 ToRGB
    convolutions, the dense layers (mapping network and every layer's style affine) and the
    demodulation matmul (styles² [in] × Σk w² [in, out] per image).
    Ignored, being O(H·W·C) elementwise or O(w_dim) work next to the O(H·W·C²·9) convolutions:
    input normalisation, truncation and w broadcasting, style scaling of the inputs,
    demodulation scaling of the outputs, noise, bias, leaky ReLU and gains, the 4-tap FIR
    filters after each upsampling convolution and on the RGB skip path, and the skip sums.
    """
    dense = cfg.z_dim * cfg.w_dim + (cfg.mapping_layers - 1) * cfg.w_dim * cfg.w_dim
    conv = torgb = 0
    for r in cfg.block_resolutions:
        c_out = cfg.channels(r)
        if r > 4:  # conv0: 2× upsampling from the previous block
            c_in = cfg.channels(r // 2)
            conv += (r // 2) ** 2 * c_in * c_out * 9
            dense += cfg.w_dim * c_in + c_in * c_out  # affine + demodulation
        conv += r * r * c_out * c_out * 9  # conv1
        dense += cfg.w_dim * c_out + c_out * c_out
        torgb += r * r * c_out * cfg.img_channels
        dense += cfg.w_dim * c_out  # ToRGB affine (no demodulation)
    return {"conv_flops": 2 * conv, "torgb_flops": 2 * torgb, "dense_flops": 2 * dense,
            "flops_per_image": 2 * (conv + torgb + dense)}
