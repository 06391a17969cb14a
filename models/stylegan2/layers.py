"""StyleGAN2 layers with equalised learning rate, as ``tf.Module`` objects with stable names.

Every variable has a dotted name (``synthesis.b8.conv0.affine.weight``) that the bundle format
stores and that importers of published weights map onto. Variables hold the *unscaled*
parameters; the equalised-learning-rate gain is applied at run time, as in the originals.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import tensorflow as tf

from models.stylegan2 import ops


class NamedModule(tf.Module):
    """A module whose variables and sub-modules are registered under explicit short names."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name.replace(".", "_"))
        self._own_vars: dict[str, tf.Variable] = {}
        self._children: dict[str, NamedModule] = {}

    def add_var(self, name: str, initial: np.ndarray, trainable: bool = True) -> tf.Variable:
        # ONLY_FIRST_REPLICA: under a tf.distribute strategy every replica applies the same
        # all-reduced update in replica context; the first replica's value is kept.
        var = tf.Variable(np.asarray(initial, dtype=np.float32), trainable=trainable,
                          name=name.replace(".", "_"),
                          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._own_vars[name] = var
        return var

    def add_child(self, name: str, module: "NamedModule") -> "NamedModule":
        self._children[name] = module
        return module

    def named_variables(self, prefix: str = "") -> Iterator[tuple[str, tf.Variable]]:
        """All variables under this module, with dotted names, in a fixed order."""
        for name, var in self._own_vars.items():
            yield prefix + name, var
        for name, child in self._children.items():
            yield from child.named_variables(prefix + name + ".")

    def weight_gains(self, prefix: str = "") -> dict[str, float]:
        """The run-time gain of every ``weight`` variable under this module (equalised learning
        rate: 1/√fan-in), by dotted name; a weight's effect is its value times its gain."""
        gains = {}
        if "weight" in self._own_vars and hasattr(self, "weight_gain"):
            gains[prefix + "weight"] = float(self.weight_gain)
        for name, child in self._children.items():
            gains.update(child.weight_gains(prefix + name + "."))
        return gains

    def appended_inputs(self, prefix: str = "") -> dict[str, tuple[int, int]]:
        """Weights whose last ``n`` entries along ``axis`` take inputs appended after the
        features (name → (axis, n)), which stay last when the features widen
        (:func:`models.bundle.widen_weights`). None by default; a module that appends declares
        them in ``_appended_inputs``."""
        out = {prefix + name: spec
               for name, spec in getattr(self, "_appended_inputs", {}).items()}
        for name, child in self._children.items():
            out.update(child.appended_inputs(prefix + name + "."))
        return out

    def label_variables(self, prefix: str = "") -> set[str]:
        """Variables that only a conditional network has (models.conditioning): those of the
        own variables and children named in ``_label_only``; an unconditional network's weights
        lack them, and :func:`models.bundle.widen_weights` starts them fresh."""
        own = getattr(self, "_label_only", ())
        out = {prefix + name for name in self._own_vars if name in own}
        for name, child in self._children.items():
            if name in own:
                out.update(n for n, _ in child.named_variables(prefix + name + "."))
            else:
                out.update(child.label_variables(prefix + name + "."))
        return out


class Dense(NamedModule):
    """Fully connected layer with equalised learning rate and an optional learning-rate multiplier.

    ``weight`` is [in, out].
    """

    def __init__(self, name: str, in_features: int, out_features: int, rng: np.random.Generator,
                 act: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__(name)
        self.act = act
        self.weight = self.add_var(
            "weight", rng.standard_normal((in_features, out_features)) / lr_multiplier)
        self.bias = self.add_var("bias", np.full([out_features], bias_init / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def __call__(self, x: tf.Tensor, offset: tf.Tensor | None = None) -> tf.Tensor:
        """``x @ weight`` (plus ``offset``, another input's contribution before the bias and
        activation), bias, activation."""
        w = tf.cast(self.weight * self.weight_gain, x.dtype)
        x = tf.matmul(x, w)
        if offset is not None:
            x = x + tf.cast(offset, x.dtype)
        return ops.bias_act(x, self.bias * self.bias_gain, act=self.act)


class Conv(NamedModule):
    """Plain (discriminator) convolution with optional 2× downsampling; ``weight`` is [k, k, in, out]."""

    def __init__(self, name: str, in_channels: int, out_channels: int, kernel: int,
                 rng: np.random.Generator, act: str = "linear", bias: bool = True,
                 down: bool = False, gain: float = 1.0, clamp: float | None = None) -> None:
        super().__init__(name)
        self.act, self.down, self.gain = act, down, gain
        self.clamp = clamp
        self.weight = self.add_var("weight",
                                   rng.standard_normal((kernel, kernel, in_channels, out_channels)))
        self.bias = self.add_var("bias", np.zeros([out_channels])) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel * kernel)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        w = tf.cast(self.weight * self.weight_gain, x.dtype)
        x = ops.conv2d_down(x, w) if self.down else ops.conv2d(x, w)
        act_gain = (ops.LRELU_GAIN if self.act == "lrelu" else 1.0) * self.gain
        clamp = None if self.clamp is None else self.clamp * self.gain
        return ops.bias_act(x, self.bias, act=self.act, gain=act_gain, clamp=clamp)


class SynthesisLayer(NamedModule):
    """Modulated 3×3 convolution, per-pixel noise with learned strength, bias and leaky ReLU.

    The output leaves out the leaky ReLU's gain √2: every consumer (the next layer, ToRGB)
    multiplies its input by per-channel styles anyway and takes the gain there
    (``input_gain``), which saves one full pass over the activations. Clamping commutes with
    that positive gain (the official clamp at ±conv_clamp·√2 after the gain is a clamp at
    ±conv_clamp before it).
    """

    def __init__(self, name: str, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 rng: np.random.Generator, up: bool = False, clamp: float | None = None,
                 input_gain: float = ops.LRELU_GAIN) -> None:
        super().__init__(name)
        self.up, self.resolution, self.clamp = up, resolution, clamp
        self.input_gain = input_gain
        self.affine = self.add_child("affine", Dense("affine", w_dim, in_channels, rng,
                                                     bias_init=1.0))
        # Upsampling layers keep their kernel in the scatter layout that the transposed
        # convolution consumes ([3, 3, out, in]); see ops.conv2d_up.
        shape = (3, 3, out_channels, in_channels) if up else (3, 3, in_channels, out_channels)
        self.weight = self.add_var("weight", rng.standard_normal(shape))
        self.bias = self.add_var("bias", np.zeros([out_channels]))
        self.noise_strength = self.add_var("noise_strength", np.zeros([]))
        self.noise_const = self.add_var("noise_const",
                                        rng.standard_normal((resolution, resolution)),
                                        trainable=False)
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)

    def __call__(self, x: tf.Tensor, w: tf.Tensor, noise: tf.Tensor | None) -> tf.Tensor:
        """``noise`` is [N, H, W, 1] (or [1, H, W, 1], shared by the batch) or None."""
        styles = self.affine(w)
        x = ops.modulated_conv2d(x, self.weight, styles, self.weight_gain, demodulate=True,
                                 up=self.up, input_gain=self.input_gain)
        # Noise and bias are summed first: with constant noise that sum has batch 1, so the
        # full-size activations take one addition instead of two.
        bias = self.bias if noise is None else noise * self.noise_strength + self.bias
        return ops.bias_act(x, bias, act="lrelu", gain=1.0, clamp=self.clamp)


class ToRGB(NamedModule):
    """Modulated 1×1 convolution to image channels, without demodulation.

    Its input comes from a :class:`SynthesisLayer`, so it applies that layer's gain √2.
    """

    def __init__(self, name: str, in_channels: int, out_channels: int, w_dim: int,
                 rng: np.random.Generator, clamp: float | None = None) -> None:
        super().__init__(name)
        self.clamp = clamp
        self.affine = self.add_child("affine", Dense("affine", w_dim, in_channels, rng,
                                                     bias_init=1.0))
        self.weight = self.add_var("weight", rng.standard_normal((1, 1, in_channels, out_channels)))
        self.bias = self.add_var("bias", np.zeros([out_channels]))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def __call__(self, x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        styles = self.affine(w)
        x = ops.modulated_conv2d(x, self.weight, styles, self.weight_gain, demodulate=False,
                                 input_gain=ops.LRELU_GAIN)
        return ops.bias_act(x, self.bias, clamp=self.clamp)
