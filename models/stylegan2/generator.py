"""The StyleGAN2 generator: mapping network, synthesis network and compiled inference.

Inputs may be z (mapped, then truncated), w (one vector, broadcast to every layer) or w+ (one
vector per layer, ``[N, num_ws, w_dim]``). Images come out NHWC, float32, nominally in [-1, 1]
(not clipped: the caller decides, see ``models.images``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from models.precision import compute_dtype, render_precision
from models.stylegan2 import ops
from models.stylegan2.config import LABEL_LR_MULTIPLIER, GeneratorConfig
from models.stylegan2.layers import Dense, NamedModule, SynthesisLayer, ToRGB

NOISE_MODES: tuple[str, ...] = ("const", "random", "none")


class MappingNetwork(NamedModule):
    """z (and labels) → w: second-moment normalisation and ``mapping_layers`` dense layers with
    lr multiplier.

    A conditional network (``cfg.label_groups``) embeds the label vector, normalises the
    embedding like z, and adds it to the first layer's input through a dense layer of its own
    (``label_fc``): at :data:`LABEL_LR_MULTIPLIER` × the learning rate, not the mapping's 0.01
    multiplier, so that a label path started near-silent on a trained unconditional network
    (``--resume-from``) grows in tens of kimg, not thousands. Called without labels it draws them from z itself
    (:meth:`labels_from_z`), so every caller that maps z gets faces of every group, in the
    training data's shares, reproducibly.
    """

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator) -> None:
        super().__init__("mapping")
        self.cfg = cfg
        self._label_only = ("embed", "label_fc", "label_prior")
        self.layers = []
        features = cfg.z_dim
        for i in range(cfg.mapping_layers):
            layer = Dense(f"fc{i}", features, cfg.w_dim, rng, act="lrelu",
                          lr_multiplier=cfg.mapping_lr_multiplier)
            self.layers.append(self.add_child(f"fc{i}", layer))
            features = cfg.w_dim
        self.embed = self.label_fc = None
        if cfg.c_dim:
            lr = LABEL_LR_MULTIPLIER
            self.embed = self.add_child("embed", Dense("embed", cfg.c_dim, cfg.w_dim, rng,
                                                       lr_multiplier=lr))
            self.label_fc = self.add_child("label_fc", Dense("label_fc", cfg.w_dim, cfg.w_dim,
                                                             rng, lr_multiplier=lr))
            # Each group's share within its trait (set from the training data), for drawing
            # labels when none are given.
            prior = np.concatenate([np.full(n, 1.0 / n) for n in cfg.label_groups])
            self.label_prior = self.add_var("label_prior", prior, trainable=False)

    def __call__(self, z: tf.Tensor, labels: tf.Tensor | None = None) -> tf.Tensor:
        x = ops.normalize_2nd_moment(z)
        offset = None
        if self.embed is not None:
            if labels is None:
                labels = self.labels_from_z(z)
            c = ops.normalize_2nd_moment(self.embed(tf.convert_to_tensor(labels, tf.float32)))
            offset = self.label_fc(c)
        for i, layer in enumerate(self.layers):
            x = layer(x, offset) if i == 0 else layer(x)
        return x

    def labels_from_z(self, z: tf.Tensor) -> tf.Tensor:
        """One label vector per z [N, c_dim]: trait ``k``'s group is where the normal CDF of
        ``z[:, k]`` falls among the cumulative shares of :attr:`label_prior`, so groups come in
        the prior's shares and a z always gets the same labels ([N, 0] when unconditional)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if self.embed is None:
            return tf.zeros([tf.shape(z)[0], 0], tf.float32)
        blocks, start = [], 0
        for k, n in enumerate(self.cfg.label_groups):
            shares = self.label_prior[start:start + n]
            bounds = tf.cumsum(shares)[:-1] / tf.reduce_sum(shares)
            u = 0.5 * (1.0 + tf.math.erf(z[:, k] / np.sqrt(2.0)))
            index = tf.reduce_sum(tf.cast(u[:, None] > bounds[None], tf.int32), axis=1)
            blocks.append(tf.one_hot(index, n, dtype=tf.float32))
            start += n
        return tf.concat(blocks, axis=1)


class SynthesisBlock(NamedModule):
    """One resolution of the synthesis network (skip architecture)."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, rng: np.random.Generator) -> None:
        super().__init__(f"b{resolution}")
        self.resolution = resolution
        out_ch = cfg.channels(resolution)
        clamp = cfg.conv_clamp
        if resolution == 4:
            self.const = self.add_var("const", rng.standard_normal((4, 4, out_ch)))
            self.conv0 = None
        else:
            in_ch = cfg.channels(resolution // 2)
            self.const = None
            self.conv0 = self.add_child("conv0", SynthesisLayer(
                "conv0", in_ch, out_ch, cfg.w_dim, resolution, rng, up=True, clamp=clamp))
        # The 4×4 block's first layer reads the learned constant, which has no activation gain.
        self.conv1 = self.add_child("conv1", SynthesisLayer(
            "conv1", out_ch, out_ch, cfg.w_dim, resolution, rng, clamp=clamp,
            input_gain=1.0 if resolution == 4 else ops.LRELU_GAIN))
        self.torgb = self.add_child("torgb", ToRGB("torgb", out_ch, cfg.img_channels, cfg.w_dim,
                                                   rng, clamp=clamp))

    @property
    def layers(self) -> list[SynthesisLayer]:
        return [layer for layer in (self.conv0, self.conv1) if layer is not None]


class SynthesisNetwork(NamedModule):
    """w+ → image, from a learned 4×4 constant through modulated convolutions with ToRGB skips."""

    def __init__(self, cfg: GeneratorConfig, rng: np.random.Generator) -> None:
        super().__init__("synthesis")
        self.cfg = cfg
        self.blocks = [self.add_child(f"b{r}", SynthesisBlock(cfg, r, rng))
                       for r in cfg.block_resolutions]

    @property
    def noise_layers(self) -> list[SynthesisLayer]:
        return [layer for block in self.blocks for layer in block.layers]

    def __call__(self, ws: tf.Tensor, noise_mode: str = "const",
                 noise_seeds: tf.Tensor | None = None,
                 dtype: tf.DType = tf.float32) -> tf.Tensor:
        """Render ``ws`` ([N, num_ws, w_dim]); the image is float32 whatever ``dtype``.

        With ``noise_mode="random"``, sample ``i`` draws its noise from ``noise_seeds[i]``
        (int32 [N]; zeros when None), so a face's noise does not depend on its batch.
        ``dtype`` is that of the feature maps and convolutions (``models.precision``); styles,
        demodulation and the 3-channel image skips stay float32.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        n = tf.shape(ws)[0]
        if noise_seeds is None:
            noise_seeds = tf.zeros([n], dtype=tf.int32)
        x = img = None
        w_idx = 0
        for block in self.blocks:
            if block.const is not None:
                x = tf.cast(tf.tile(block.const[None], [n, 1, 1, 1]), dtype)
            for layer in block.layers:
                noise = self._noise(layer, n, noise_mode, noise_seeds, w_idx)
                x = layer(x, ws[:, w_idx], noise)
                w_idx += 1
            rgb = tf.cast(block.torgb(x, ws[:, w_idx]), tf.float32)
            img = rgb if img is None else ops.upsample_2d(img) + rgb
        return img

    @staticmethod
    def _noise(layer: SynthesisLayer, n: tf.Tensor, mode: str, seeds: tf.Tensor,
               index: int) -> tf.Tensor | None:
        r = layer.resolution
        if mode == "none":
            return None
        if mode == "const":
            return layer.noise_const[None, :, :, None]  # broadcast over the batch by the layer
        return tf.map_fn(
            lambda s: tf.random.stateless_normal([r, r, 1], seed=tf.stack([s, index])),
            seeds, fn_output_signature=tf.float32)


class Generator(NamedModule):
    """Mapping plus synthesis, with the tracked average ``w_avg`` and compiled inference."""

    def __init__(self, cfg: GeneratorConfig, seed: int = 0) -> None:
        super().__init__("generator")
        self.cfg = cfg
        rng = np.random.default_rng(seed)
        self.mapping = self.add_child("mapping", MappingNetwork(cfg, rng))
        self.synthesis = self.add_child("synthesis", SynthesisNetwork(cfg, rng))
        self.w_avg = self.add_var("w_avg", np.zeros([cfg.w_dim]), trainable=False)
        self._compiled: dict[str, tf.types.experimental.GenericFunction] = {}
        # The precision :meth:`synthesize` renders in unless told otherwise (models.precision).
        self.precision = "float32"

    @property
    def compute_dtype(self) -> tf.DType:
        """The dtype of :attr:`precision`, for the eager and differentiable paths (projector,
        refine, encoder training) that call :attr:`synthesis` directly."""
        return compute_dtype(self.precision)

    def use_precision(self, precision: str) -> None:
        """Render in ``precision`` from now on (``float32`` or ``bfloat16``; ``float16`` is a
        training recipe and renders in float32)."""
        self.precision = render_precision(precision)

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    # -- eager building blocks (also used by training) --------------------------------------

    def map(self, z: tf.Tensor, truncation_psi: float | tf.Tensor = 1.0,
            truncation_cutoff: int | None = None, labels: tf.Tensor | None = None) -> tf.Tensor:
        """z [N, z_dim] → w+ [N, num_ws, w_dim], truncated toward ``w_avg`` for the first
        ``truncation_cutoff`` entries (all when None). ``labels`` [N, c_dim]: the groups a
        conditional generator draws (models.conditioning); None: drawn from z."""
        w = self.mapping(tf.convert_to_tensor(z, tf.float32), labels)
        ws = tf.tile(w[:, None, :], [1, self.num_ws, 1])
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)

    def __call__(self, z: tf.Tensor, truncation_psi: float = 1.0,
                 truncation_cutoff: int | None = None, noise_mode: str = "const") -> tf.Tensor:
        return self.synthesis(self.map(z, truncation_psi, truncation_cutoff), noise_mode)

    def update_w_avg(self, w: tf.Tensor) -> None:
        """Move ``w_avg`` toward the batch mean of ``w`` ([N, w_dim]), as during training."""
        beta = self.cfg.w_avg_beta
        self.w_avg.assign(tf.reduce_mean(w, axis=0) * (1.0 - beta) + self.w_avg * beta)

    # -- compiled inference ---------------------------------------------------------------------

    def _compiled_fn(self, key: str):
        """One ``tf.function`` per noise mode / entry point; the batch axis is left open so that
        no batch size triggers a retrace."""
        if key in self._compiled:
            return self._compiled[key]
        cfg = self.cfg
        ws_spec = tf.TensorSpec([None, cfg.num_ws, cfg.w_dim], tf.float32)
        seed_spec = tf.TensorSpec([None], tf.int32)
        if key == "map":
            fn = tf.function(
                lambda z, labels, psi, cutoff: truncate(
                    tf.tile(self.mapping(z, labels)[:, None, :], [1, cfg.num_ws, 1]),
                    self.w_avg, psi, cutoff),
                input_signature=[tf.TensorSpec([None, cfg.z_dim], tf.float32),
                                 tf.TensorSpec([None, cfg.c_dim], tf.float32),
                                 tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)],
                reduce_retracing=True)
        else:
            _, mode, precision = key.split(":")
            dtype = compute_dtype(precision)
            fn = tf.function(lambda ws, seed: self.synthesis(ws, mode, seed, dtype),
                             input_signature=[ws_spec, seed_spec], reduce_retracing=True)
        self._compiled[key] = fn
        return fn

    def map_compiled(self, z: np.ndarray | tf.Tensor, truncation_psi: float = 1.0,
                     truncation_cutoff: int | None = None,
                     reproducible: bool = True,
                     labels: np.ndarray | tf.Tensor | None = None) -> tf.Tensor:
        """Compiled :meth:`map`; ``reproducible`` maps row by row, so that a z record's w does
        not depend on its batch (see :meth:`synthesize`)."""
        cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
        psi, cut = tf.constant(truncation_psi, tf.float32), tf.constant(cutoff, tf.int32)
        z = tf.convert_to_tensor(z, tf.float32)
        labels = self.mapping.labels_from_z(z) if labels is None else \
            tf.convert_to_tensor(labels, tf.float32)
        if labels.shape != (z.shape[0], self.cfg.c_dim):
            raise ValueError(f"labels must be [{z.shape[0]}, {self.cfg.c_dim}] for this "
                             f"generator, got {list(labels.shape)}")
        return _rows(lambda z, c: self._compiled_fn("map")(z, c, psi, cut), z, labels,
                     one_by_one=reproducible)

    def synthesize(self, ws: np.ndarray | tf.Tensor, noise_mode: str = "const",
                   noise_seeds: Sequence[int] | np.ndarray | int = 0,
                   precision: str | None = None, reproducible: bool = True) -> tf.Tensor:
        """Compiled synthesis of w+ ``ws`` [N, num_ws, w_dim] (a [N, w_dim] w is broadcast).

        ``noise_seeds``: one int per sample, or one for all, used when ``noise_mode`` is
        ``"random"`` (seeds are taken modulo 2**31). ``precision``: that of a face record being
        re-rendered; None renders in :attr:`precision`.

        ``reproducible`` (for every face that gets a record) renders the faces one by one:
        the CPU's matrix and convolution kernels treat the last rows of a batch with other
        code than the first (measured: rows 7–8 of 8 round differently), so a face's pixels
        would depend on its place in its batch, and re-rendering it alone would differ by a
        grey level here and there. Statistics over many faces (metrics, PCA, directions)
        pass False and render the whole batch at once, about twice as fast at 64 px.
        """
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        ws = tf.convert_to_tensor(ws, tf.float32)
        if ws.shape.rank == 2:
            ws = tf.tile(ws[:, None, :], [1, self.num_ws, 1])
        if ws.shape.rank != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.cfg.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.cfg.w_dim}] or "
                             f"[N, {self.cfg.w_dim}], got {list(ws.shape)}")
        seeds = np.broadcast_to(np.asarray(noise_seeds, dtype=np.int64) % (2 ** 31),
                                [ws.shape[0]]).astype(np.int32)
        precision = self.precision if precision is None else render_precision(precision)
        fn = self._compiled_fn(f"synth:{noise_mode}:{precision}")
        return _rows(fn, ws, tf.constant(seeds), one_by_one=reproducible)


def _rows(fn, *batch: tf.Tensor, one_by_one: bool) -> tf.Tensor:
    """``fn(*batch)``, or ``fn`` on one row of every argument at a time, concatenated (see
    :meth:`Generator.synthesize`: a row's result must not depend on its batch)."""
    n = int(batch[0].shape[0])
    if not one_by_one or n <= 1:
        return fn(*batch)
    return tf.concat([fn(*(b[i:i + 1] for b in batch)) for i in range(n)], axis=0)


def truncate(ws: tf.Tensor, w_avg: tf.Tensor, psi: float | tf.Tensor,
             cutoff: int | tf.Tensor | None = None) -> tf.Tensor:
    """The truncation trick: ``w_avg + psi * (w - w_avg)`` on the first ``cutoff`` w+ entries."""
    psi = tf.cast(psi, ws.dtype)
    truncated = w_avg + psi * (ws - w_avg)
    num_ws = tf.shape(ws)[1]
    limit = num_ws if cutoff is None else tf.cast(cutoff, tf.int32)
    # psi = 1 returns w itself, bit for bit (w_avg + 1 * (w - w_avg) may round differently).
    mask = tf.logical_and(tf.range(num_ws) < limit, tf.not_equal(psi, 1.0))
    return tf.where(mask[None, :, None], truncated, ws)


def mix_styles(ws_a: tf.Tensor, ws_b: tf.Tensor, layers: Sequence[int] | range) -> tf.Tensor:
    """w+ of A with the entries in ``layers`` taken from B (style mixing)."""
    ws_a = tf.convert_to_tensor(ws_a, tf.float32)
    ws_b = tf.convert_to_tensor(ws_b, tf.float32)
    num_ws = ws_a.shape[1]
    chosen = set(int(i) for i in layers)
    bad = sorted(i for i in chosen if not 0 <= i < num_ws)
    if bad:
        raise ValueError(f"style layers {bad} are outside 0..{num_ws - 1}")
    mask = tf.constant([i in chosen for i in range(num_ws)])[None, :, None]
    return tf.where(mask, ws_b, ws_a)
