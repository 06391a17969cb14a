"""Official StyleGAN2 (TensorFlow 1) pickles → our generator and discriminator.

An official pickle holds the tuple ``(G, D, Gs)`` of ``dnnlib.tflib.Network`` states (read as
:class:`~models.importers.unpickle.TFNetworkRecord`); ``Gs`` (the moving average of ``G``) is the
generator that was published for sampling. Layouts (derived from NVIDIA's
``training/networks_stylegan2.py``, NCHW activations but HWIO kernels):

* dense and modulation weights are ``[in, out]`` like ours; modulation biases exclude the
  constant +1 that our affine bias includes;
* convolution kernels are ``[kh, kw, in, out]`` correlation kernels like ours, except that our
  upsampling layer (``Conv0_up``) keeps the transposed-convolution (scatter) layout;
* ``noise{i}`` is ``[1, 1, r, r]`` for synthesis layer ``i`` (``b4.conv1``, ``b8.conv0``, …);
* the constant input is ``[1, C, 4, 4]``; ours is ``[4, 4, C]``;
* the discriminator's ``Dense0`` weight flattens the 4×4 features in NCHW order, as ours does.

Channels at resolution ``r`` are ``fmap_base * 2 / r`` (clipped), i.e. ``channel_base = 2 *
fmap_base`` in the StyleGAN2-ADA convention that our configs use.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from models.importers.errors import SourceFormatError
from models.importers.mapping import (ImportedNetworks, SourceVariables, fill_module, identity,
                                      scalar_setting)
from models.importers.unpickle import TFNetworkRecord
from models.stylegan2 import ops
from models.stylegan2.config import ConfigError, DiscriminatorConfig, GeneratorConfig

FORMAT = "stylegan2-tf"
SUPPORTED_BUILDERS = {"G": "G_main", "mapping": "G_mapping", "synthesis": "G_synthesis_stylegan2",
                      "D": "D_stylegan2"}
DEFAULT_KERNEL = [1, 3, 3, 1]

#: Settings that only steer evaluation or training in the original code, not the weights.
RUNTIME_KWARGS = {"truncation_psi", "truncation_cutoff", "truncation_psi_val",
                  "truncation_cutoff_val", "style_mixing_prob", "randomize_noise", "is_training",
                  "is_validation", "is_template_graph", "dtype", "fused_modconv", "num_fp16_res",
                  "structure", "return_dlatents", "dlatent_broadcast", "components",
                  "synthesis_func", "mapping_func", "freeze_layers"}
G_KWARGS = {"latent_size", "label_size", "dlatent_size", "resolution", "num_channels",
            "mapping_layers", "mapping_fmaps", "mapping_lrmul", "mapping_nonlinearity",
            "nonlinearity", "normalize_latents", "fmap_base", "fmap_decay", "fmap_min",
            "fmap_max", "architecture", "resample_kernel", "dlatent_avg_beta", "conv_clamp",
            "use_noise", "w_avg_beta", "label_fmaps"}
D_KWARGS = {"label_size", "resolution", "num_channels", "fmap_base", "fmap_decay", "fmap_min",
            "fmap_max", "architecture", "nonlinearity", "mbstd_group_size",
            "mbstd_num_features", "resample_kernel", "conv_clamp", "mapping_layers",
            "mapping_fmaps", "mapping_lrmul"}


def is_tf_pickle(obj: Any) -> bool:
    """A ``(G, D, Gs)`` tuple or a single network from the official TensorFlow code."""
    if isinstance(obj, TFNetworkRecord):
        return True
    return isinstance(obj, tuple) and len(obj) > 0 and all(isinstance(n, TFNetworkRecord)
                                                           for n in obj)


def _pick(obj: Any) -> tuple[TFNetworkRecord, str, TFNetworkRecord | None]:
    """(generator network, which one it is, discriminator or None)."""
    nets = (obj,) if isinstance(obj, TFNetworkRecord) else tuple(obj)
    if len(nets) == 3:
        g, d, gs = nets
        return gs, "Gs", d
    if len(nets) == 1:
        return nets[0], "G", None
    raise SourceFormatError(f"expected the (G, D, Gs) tuple of an official StyleGAN2 pickle, "
                            f"found {len(nets)} networks")


def _check_builder(net: TFNetworkRecord, role: str) -> None:
    want = SUPPORTED_BUILDERS[role]
    got = net.build_func_name
    if got != want:
        hint = (" (StyleGAN1 and StyleGAN2 configs A–D are not supported; use a config E/F "
                "network)" if "stylegan" in got.lower() or got in {"G_style", "D_basic"} else "")
        raise SourceFormatError(f"network {net.name!r} is built by {got!r}; LiGAN imports "
                                f"{want!r} networks only{hint}")


def _kwargs(nets: list[TFNetworkRecord], known: set[str], what: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for net in nets:
        merged.update(net.static_kwargs)
    unknown = sorted(set(merged) - known - RUNTIME_KWARGS)
    if unknown:
        raise SourceFormatError(f"{what} has setting(s) LiGAN does not know: {', '.join(unknown)}; "
                                f"the mapping cannot be checked, so the import stops")
    return merged


def _common_checks(kw: dict[str, Any], what: str, architecture: str) -> None:
    if scalar_setting(kw.get("label_size", 0) or 0, "label_size") != 0:
        raise SourceFormatError(f"{what} is conditional (label_size={kw['label_size']}): LiGAN "
                                f"imports unconditional networks only (its own conditional "
                                f"ones take trait labels)")
    arch = kw.get("architecture", architecture)
    if arch != architecture:
        raise SourceFormatError(f"{what} uses the {arch!r} architecture; LiGAN's "
                                f"{'generator' if architecture == 'skip' else 'discriminator'} "
                                f"is {architecture!r} (StyleGAN2 config E/F)")
    for key in ("nonlinearity", "mapping_nonlinearity"):
        if kw.get(key, "lrelu") != "lrelu":
            raise SourceFormatError(f"{what} uses {key}={kw[key]!r}; only 'lrelu' is supported")
    if list(kw.get("resample_kernel", DEFAULT_KERNEL) or []) != DEFAULT_KERNEL:
        raise SourceFormatError(f"{what} uses resample_kernel={kw['resample_kernel']!r}; only "
                                f"{DEFAULT_KERNEL} is supported")
    if float(kw.get("fmap_decay", 1.0)) != 1.0:
        raise SourceFormatError(f"{what} uses fmap_decay={kw['fmap_decay']!r}; only 1.0 is "
                                f"supported")


def _check_lod(net: TFNetworkRecord, source: SourceVariables) -> None:
    """The progressive-growing level of detail must be 0 (fully grown); then it is unused."""
    if "lod" in source:
        lod = np.asarray(source.arrays["lod"], dtype=np.float64)
        if lod.size != 1 or float(lod.reshape(())) != 0.0:
            raise SourceFormatError(f"{net.name}/lod is {lod.tolist()}: the network is not fully "
                                    f"grown (progressive growing is not supported)")
        source.ignore("lod")


def generator_config(g: TFNetworkRecord) -> GeneratorConfig:
    mapping, synthesis = _components(g, ("mapping", "synthesis"))
    _check_builder(g, "G")
    _check_builder(mapping, "mapping")
    _check_builder(synthesis, "synthesis")
    kw = _kwargs([g, mapping, synthesis], G_KWARGS, f"generator {g.name!r}")
    _common_checks(kw, f"generator {g.name!r}", "skip")
    if kw.get("normalize_latents", True) is not True:
        raise SourceFormatError("the generator does not normalise its latents; not supported")
    if kw.get("use_noise", True) is not True:
        raise SourceFormatError("the generator has no noise inputs (use_noise=False); not "
                                "supported")
    w_dim = scalar_setting(kw.get("dlatent_size", 512), "dlatent_size")
    fmaps = scalar_setting(kw.get("mapping_fmaps", 512), "mapping_fmaps")
    if scalar_setting(kw.get("mapping_layers", 8), "mapping_layers") > 1 and fmaps != w_dim:
        raise SourceFormatError(f"the mapping network's hidden width ({fmaps}) differs from "
                                f"dlatent_size ({w_dim}); LiGAN's mapping uses w_dim throughout")
    beta = kw.get("dlatent_avg_beta", 0.995)
    clamp = kw.get("conv_clamp")
    try:
        return GeneratorConfig(
            resolution=scalar_setting(kw.get("resolution", 1024), "resolution"),
            z_dim=scalar_setting(kw.get("latent_size", 512), "latent_size"), w_dim=w_dim,
            mapping_layers=scalar_setting(kw.get("mapping_layers", 8), "mapping_layers"),
            mapping_lr_multiplier=scalar_setting(kw.get("mapping_lrmul", 0.01), "mapping_lrmul",
                                                 float),
            img_channels=scalar_setting(kw.get("num_channels", 3), "num_channels"),
            channel_base=2 * scalar_setting(kw.get("fmap_base", 16 << 10), "fmap_base"),
            channel_max=scalar_setting(kw.get("fmap_max", 512), "fmap_max"),
            conv_clamp=None if clamp is None else scalar_setting(clamp, "conv_clamp", float),
            w_avg_beta=0.995 if beta is None else scalar_setting(beta, "dlatent_avg_beta", float))
    except ConfigError as exc:
        raise SourceFormatError(f"generator {g.name!r}: {exc}") from None


def discriminator_config(d: TFNetworkRecord) -> DiscriminatorConfig:
    _check_builder(d, "D")
    kw = _kwargs([d], D_KWARGS, f"discriminator {d.name!r}")
    _common_checks(kw, f"discriminator {d.name!r}", "resnet")
    group = scalar_setting(kw.get("mbstd_group_size", 4), "mbstd_group_size")
    if group <= 1:
        raise SourceFormatError(f"the discriminator has no minibatch-stddev layer "
                                f"(mbstd_group_size={group}); not supported")
    clamp = kw.get("conv_clamp")
    try:
        return DiscriminatorConfig(
            resolution=scalar_setting(kw.get("resolution", 1024), "resolution"),
            img_channels=scalar_setting(kw.get("num_channels", 3), "num_channels"),
            channel_base=2 * scalar_setting(kw.get("fmap_base", 16 << 10), "fmap_base"),
            channel_max=scalar_setting(kw.get("fmap_max", 512), "fmap_max"),
            mbstd_group_size=group,
            mbstd_num_channels=scalar_setting(kw.get("mbstd_num_features", 1),
                                              "mbstd_num_features"),
            conv_clamp=None if clamp is None else scalar_setting(clamp, "conv_clamp", float))
    except ConfigError as exc:
        raise SourceFormatError(f"discriminator {d.name!r}: {exc}") from None


def _components(g: TFNetworkRecord, names: tuple[str, ...]) -> list[TFNetworkRecord]:
    comps = g.components
    out = []
    for name in names:
        comp = comps.get(name)
        if not isinstance(comp, TFNetworkRecord):
            raise SourceFormatError(f"generator {g.name!r} has no {name!r} sub-network")
        out.append(comp)
    extra = sorted(set(comps) - set(names))
    if extra:
        raise SourceFormatError(f"generator {g.name!r} has unexpected sub-networks: "
                                f"{', '.join(extra)}")
    return out


def _sources(net: TFNetworkRecord) -> SourceVariables:
    return SourceVariables(net.variables, f"{net.name}/")


def _layer_scope(res: int, conv: str) -> str:
    if res == 4:
        return "4x4/Conv"
    return f"{res}x{res}/{'Conv0_up' if conv == 'conv0' else 'Conv1'}"


def _noise_index(res: int, conv: str) -> int:
    return 0 if res == 4 else 2 * int(math.log2(res)) - (5 if conv == "conv0" else 4)


def _plus_one(x: np.ndarray) -> np.ndarray:
    return x + 1.0


def _const(x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError("expected [1, C, 4, 4]")
    return x[0].transpose(1, 2, 0)


def _noise(x: np.ndarray) -> np.ndarray:
    if x.ndim != 4 or x.shape[:2] != (1, 1):
        raise ValueError("expected [1, 1, r, r]")
    return x[0, 0]


def _scatter(x: np.ndarray) -> np.ndarray:
    if x.ndim != 4:
        raise ValueError("expected a [kh, kw, in, out] kernel")
    return ops.to_scatter_layout(x)


_SYN = re.compile(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)")
_DBLOCK = re.compile(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)")


def _generator_rule(top: SourceVariables, mapping: SourceVariables, synthesis: SourceVariables):
    def rule(name: str):
        if name == "w_avg":
            return top, "dlatent_avg", identity
        m = re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", name)
        if m:
            return mapping, f"Dense{m[1]}/{m[2]}", identity
        if name == "synthesis.b4.const":
            return synthesis, "4x4/Const/const", _const
        m = _SYN.fullmatch(name)
        if not m:
            return None
        res, layer, var = int(m[1]), m[2], m[3]
        scope = f"{res}x{res}/ToRGB" if layer == "torgb" else _layer_scope(res, layer)
        if var == "noise_const":
            return synthesis, f"noise{_noise_index(res, layer)}", _noise
        if var == "affine.weight":
            return synthesis, f"{scope}/mod_weight", identity
        if var == "affine.bias":
            return synthesis, f"{scope}/mod_bias", _plus_one
        if var == "weight":
            return synthesis, f"{scope}/weight", _scatter if layer == "conv0" else identity
        return synthesis, f"{scope}/{var}", identity  # bias, noise_strength
    return rule


def _discriminator_rule(source: SourceVariables):
    def rule(name: str):
        m = _DBLOCK.fullmatch(name)
        if m:
            res, layer, var = int(m[1]), m[2], m[3]
            scope = {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down",
                     "skip": "Skip"}[layer]
            return source, f"{res}x{res}/{scope}/{var}", identity
        m = re.fullmatch(r"b4\.(conv|fc|out)\.(weight|bias)", name)
        if m:
            scope = {"conv": "4x4/Conv", "fc": "4x4/Dense0", "out": "Output"}[m[1]]
            return source, f"{scope}/{m[2]}", identity
        return None
    return rule


def convert(obj: Any, include_discriminator: bool = True) -> ImportedNetworks:
    """Build our networks from an official TensorFlow pickle's records, mapping every
    variable exactly (see the module docstring for the layouts)."""
    from models.stylegan2 import Discriminator, Generator

    g_net, g_role, d_net = _pick(obj)
    gcfg = generator_config(g_net)
    mapping_net, synthesis_net = _components(g_net, ("mapping", "synthesis"))
    top, mapping, synthesis = _sources(g_net), _sources(mapping_net), _sources(synthesis_net)
    for net, src in ((g_net, top), (mapping_net, mapping), (synthesis_net, synthesis)):
        _check_lod(net, src)
    generator = Generator(gcfg)
    fill_module(generator, _generator_rule(top, mapping, synthesis),
                [top, mapping, synthesis], f"generator {g_role} ({g_net.name})")
    result = ImportedNetworks(FORMAT, generator, generator_source=g_role)
    if d_net is not None and include_discriminator:
        dcfg = discriminator_config(d_net)
        if dcfg.resolution != gcfg.resolution:
            raise SourceFormatError(f"the discriminator works at {dcfg.resolution} px but the "
                                    f"generator at {gcfg.resolution} px")
        source = _sources(d_net)
        _check_lod(d_net, source)
        discriminator = Discriminator(dcfg)
        fill_module(discriminator, _discriminator_rule(source), [source],
                    f"discriminator D ({d_net.name})")
        result.discriminator, result.discriminator_source = discriminator, "D"
    elif d_net is None:
        result.notes.append("the pickle holds no discriminator; the bundle has a generator only")
    else:
        result.notes.append("discriminator skipped (--generator-only)")
    return result
