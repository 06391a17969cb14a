"""StyleGAN2-ADA (PyTorch) pickles → our generator and discriminator.

An ADA pickle is a dict with ``G``, ``D``, ``G_ema`` (plus ``augment_pipe`` and
``training_set_kwargs``); every network is a persistent ``torch.nn.Module``, read here as a
:class:`~models.importers.unpickle.PersistentRecord` whose state holds ``_parameters``,
``_buffers``, ``_modules`` and the constructor settings. ``G_ema`` is the published generator.

Variable names are ADA's ``state_dict`` names, which ours follow. Layouts: dense weights are
``[out, in]`` (ours ``[in, out]``); convolution kernels are ``[out, in, kh, kw]`` correlation
kernels (ours ``[kh, kw, in, out]``), except the upsampling ``conv0`` of each synthesis block,
which ADA runs as a transposed convolution without flipping: it becomes our scatter layout
``[kh, kw, out, in]`` by a plain axis permutation; the constant is ``[C, 4, 4]`` (ours
``[4, 4, C]``); ``mapping.w_avg`` is our ``w_avg``; the ``resample_filter`` buffers must be the
[1, 3, 3, 1] FIR filter and are then dropped (ours is built in).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from models.importers.errors import SourceFormatError
from models.importers.mapping import (ImportedNetworks, SourceVariables, fill_module, identity,
                                      scalar_setting)
from models.importers.unpickle import PersistentRecord
from models.stylegan2 import ops
from models.stylegan2.config import ConfigError, DiscriminatorConfig, GeneratorConfig

FORMAT = "stylegan2-ada-pytorch"


def is_ada_pickle(obj: Any) -> bool:
    return isinstance(obj, dict) and any(isinstance(obj.get(k), PersistentRecord)
                                         for k in ("G_ema", "G"))


def flatten_state(record: PersistentRecord, prefix: str = "") -> dict[str, Any]:
    """``state_dict``-style names → arrays for a module tree (None entries skipped)."""
    state = record.state
    out: dict[str, Any] = {}
    for table in ("_parameters", "_buffers"):
        for name, value in (state.get(table) or {}).items():
            if value is not None:
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise SourceFormatError(f"sub-module {prefix + name} is not a StyleGAN2-ADA module")
        out.update(flatten_state(child, prefix + name + "."))
    return out


def _child(record: PersistentRecord, path: str) -> PersistentRecord:
    node = record
    for part in path.split("."):
        node = (node.state.get("_modules") or {}).get(part)
        if not isinstance(node, PersistentRecord):
            raise SourceFormatError(f"{record.class_name} has no sub-module {path!r}")
    return node


def _attr(record: PersistentRecord, name: str, default: Any = None) -> Any:
    return record.state.get(name, default)


def _init_kwargs(record: PersistentRecord) -> dict[str, Any]:
    kwargs = record.state.get("_init_kwargs") or {}
    return dict(kwargs) if isinstance(kwargs, dict) else {}


def _check_class(record: Any, expected: str, what: str) -> PersistentRecord:
    if not isinstance(record, PersistentRecord) or record.class_name != expected:
        found = record.class_name if isinstance(record, PersistentRecord) else type(record).__name__
        raise SourceFormatError(f"{what} is a {found}, expected a StyleGAN2-ADA {expected}")
    return record


def _clamp(value: Any) -> float | None:
    return None if value is None else scalar_setting(value, "conv_clamp", float)


def generator_config(g: PersistentRecord) -> GeneratorConfig:
    c_dim = scalar_setting(_attr(g, "c_dim", 0), "c_dim")
    if c_dim > 0:
        raise SourceFormatError(f"the generator is conditional (c_dim={c_dim}): LiGAN imports "
                                f"unconditional networks only (its own conditional ones take "
                                f"trait labels)")
    mapping, synthesis = _child(g, "mapping"), _child(g, "synthesis")
    syn_kwargs = dict(_init_kwargs(g).get("synthesis_kwargs") or {})
    resolution = scalar_setting(_attr(g, "img_resolution"), "img_resolution")
    blocks = [_child(synthesis, f"b{r}") for r in
              (2 ** i for i in range(2, int(np.log2(resolution)) + 1))]
    for block in blocks:
        arch = _attr(block, "architecture", "skip")
        if arch != "skip":
            raise SourceFormatError(f"the generator uses the {arch!r} architecture; LiGAN's "
                                    f"generator is 'skip' (StyleGAN2 config F)")
        for layer_name in ("conv0", "conv1"):
            layer = (block.state.get("_modules") or {}).get(layer_name)
            if isinstance(layer, PersistentRecord):
                if _attr(layer, "use_noise", True) is not True:
                    raise SourceFormatError("the generator has no noise inputs (use_noise=False); "
                                            "not supported")
                if _attr(layer, "activation", "lrelu") != "lrelu":
                    raise SourceFormatError(f"synthesis layers use activation "
                                            f"{_attr(layer, 'activation')!r}; only 'lrelu' is "
                                            f"supported")
    fc0 = _child(mapping, "fc0")
    if _attr(fc0, "activation", "lrelu") != "lrelu":
        raise SourceFormatError(f"the mapping network uses activation "
                                f"{_attr(fc0, 'activation')!r}; only 'lrelu' is supported")
    beta = _attr(mapping, "w_avg_beta", 0.995)
    try:
        return GeneratorConfig(
            resolution=resolution, z_dim=scalar_setting(_attr(g, "z_dim"), "z_dim"),
            w_dim=scalar_setting(_attr(g, "w_dim"), "w_dim"),
            mapping_layers=scalar_setting(_attr(mapping, "num_layers", 8), "num_layers"),
            mapping_lr_multiplier=scalar_setting(_attr(fc0, "bias_gain", 0.01), "lr_multiplier",
                                                 float),
            img_channels=scalar_setting(_attr(g, "img_channels", 3), "img_channels"),
            channel_base=scalar_setting(syn_kwargs.get("channel_base", 32768), "channel_base"),
            channel_max=scalar_setting(syn_kwargs.get("channel_max", 512), "channel_max"),
            conv_clamp=_clamp(syn_kwargs.get("conv_clamp")),
            w_avg_beta=0.995 if beta is None else scalar_setting(beta, "w_avg_beta", float))
    except ConfigError as exc:
        raise SourceFormatError(f"generator: {exc}") from None


def discriminator_config(d: PersistentRecord) -> DiscriminatorConfig:
    c_dim = scalar_setting(_attr(d, "c_dim", 0), "c_dim")
    if c_dim > 0:
        raise SourceFormatError(f"the discriminator is conditional (c_dim={c_dim}); not supported")
    kwargs = _init_kwargs(d)
    resolution = scalar_setting(_attr(d, "img_resolution"), "img_resolution")
    epilogue = _child(d, "b4")
    for block in [_child(d, f"b{2 ** i}") for i in range(int(np.log2(resolution)), 2, -1)]:
        arch = _attr(block, "architecture", "resnet")
        if arch != "resnet":
            raise SourceFormatError(f"the discriminator uses the {arch!r} architecture; LiGAN's "
                                    f"discriminator is 'resnet' (StyleGAN2 config F)")
    mbstd = (epilogue.state.get("_modules") or {}).get("mbstd")
    if not isinstance(mbstd, PersistentRecord):
        raise SourceFormatError("the discriminator has no minibatch-stddev layer; not supported")
    group = _attr(mbstd, "group_size")
    if group is None:
        raise SourceFormatError("the discriminator's minibatch-stddev group is the whole batch "
                                "(mbstd_group_size=None); LiGAN needs a fixed group size")
    try:
        return DiscriminatorConfig(
            resolution=resolution,
            img_channels=scalar_setting(_attr(d, "img_channels", 3), "img_channels"),
            channel_base=scalar_setting(kwargs.get("channel_base", 32768), "channel_base"),
            channel_max=scalar_setting(kwargs.get("channel_max", 512), "channel_max"),
            mbstd_group_size=scalar_setting(group, "mbstd_group_size"),
            mbstd_num_channels=scalar_setting(_attr(mbstd, "num_channels", 1), "num_channels"),
            conv_clamp=_clamp(kwargs.get("conv_clamp")))
    except ConfigError as exc:
        raise SourceFormatError(f"discriminator: {exc}") from None


def _check_filters(source: SourceVariables) -> None:
    """Every ``resample_filter`` buffer must be the [1, 3, 3, 1] filter; then it is dropped."""
    want = ops.fir_kernel()
    for name in list(source.arrays):
        if name == "resample_filter" or name.endswith(".resample_filter"):
            value = np.asarray(source.arrays[name], dtype=np.float64)
            if value.shape != want.shape or not np.allclose(value, want, atol=1e-6):
                raise SourceFormatError(f"{source.full_name(name)} is not the [1, 3, 3, 1] FIR "
                                        f"filter; other filters are not supported")
            source.ignore(name)


def _transpose(x: np.ndarray) -> np.ndarray:
    if x.ndim != 2:
        raise ValueError("expected a 2-D weight")
    return x.T


def _conv(x: np.ndarray) -> np.ndarray:
    if x.ndim != 4:
        raise ValueError("expected an [out, in, kh, kw] kernel")
    return x.transpose(2, 3, 1, 0)


def _conv_up(x: np.ndarray) -> np.ndarray:
    if x.ndim != 4:
        raise ValueError("expected an [out, in, kh, kw] kernel")
    return x.transpose(2, 3, 0, 1)


def _const(x: np.ndarray) -> np.ndarray:
    if x.ndim != 3:
        raise ValueError("expected [C, 4, 4]")
    return x.transpose(1, 2, 0)


def _generator_rule(source: SourceVariables):
    def rule(name: str):
        if name == "w_avg":
            return source, "mapping.w_avg", identity
        if re.fullmatch(r"mapping\.fc\d+\.weight|.*\.affine\.weight", name):
            return source, name, _transpose
        if re.fullmatch(r"synthesis\.b\d+\.const", name):
            return source, name, _const
        if re.fullmatch(r"synthesis\.b\d+\.conv0\.weight", name):
            return source, name, _conv_up
        if re.fullmatch(r"synthesis\.b\d+\.(conv1|torgb)\.weight", name):
            return source, name, _conv
        return source, name, identity  # biases, noise_strength, noise_const
    return rule


def _discriminator_rule(source: SourceVariables):
    def rule(name: str):
        if name in ("b4.fc.weight", "b4.out.weight"):
            return source, name, _transpose
        if name.endswith(".weight"):
            return source, name, _conv
        return source, name, identity
    return rule


def convert(obj: dict[str, Any], include_discriminator: bool = True) -> ImportedNetworks:
    """Build our networks from an ADA pickle's records (``G_ema`` preferred over ``G``)."""
    from models.stylegan2 import Discriminator, Generator

    role = "G_ema" if isinstance(obj.get("G_ema"), PersistentRecord) else "G"
    g = _check_class(obj.get(role), "Generator", role)
    gcfg = generator_config(g)
    source = SourceVariables(flatten_state(g), f"{role}.")
    _check_filters(source)
    generator = Generator(gcfg)
    fill_module(generator, _generator_rule(source), [source], f"generator {role}")
    result = ImportedNetworks(FORMAT, generator, generator_source=role)
    d = obj.get("D")
    if d is not None and include_discriminator:
        d = _check_class(d, "Discriminator", "D")
        dcfg = discriminator_config(d)
        if dcfg.resolution != gcfg.resolution:
            raise SourceFormatError(f"the discriminator works at {dcfg.resolution} px but the "
                                    f"generator at {gcfg.resolution} px")
        dsource = SourceVariables(flatten_state(d), "D.")
        _check_filters(dsource)
        discriminator = Discriminator(dcfg)
        fill_module(discriminator, _discriminator_rule(dsource), [dsource], "discriminator D")
        result.discriminator, result.discriminator_source = discriminator, "D"
    elif d is None:
        result.notes.append("the pickle holds no discriminator; the bundle has a generator only")
    else:
        result.notes.append("discriminator skipped (--generator-only)")
    return result
