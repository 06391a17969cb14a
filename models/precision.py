"""Numeric precision of the heavy tensor work: which one to use on this machine, and why.

Three precisions exist. Weights, optimiser state, the mapping network, ``w_avg``, losses,
logits and the demodulation statistics always stay float32; only the convolutions and the
activations around them change:

* ``float32`` — exact: the importer parity with NVIDIA's code and bit-for-bit face records;
* ``bfloat16`` — the synthesis and discriminator/encoder/attribute convolutions in bfloat16, for
  CPUs whose matrix units compute it natively (Intel AMX, AVX-512 BF16). bfloat16 has float32's
  exponent range, so it needs no loss scaling and no clamping;
* ``float16`` — StyleGAN2-ADA's GPU recipe: the discriminator's highest-resolution blocks in
  float16 with activations clamped between blocks (training only; rendering stays float32).

``auto`` resolves to one of them from the hardware (:func:`resolve_precision`), and for
rendering also from the generator's size (:func:`resolve_render_precision`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

PRECISIONS = ("float32", "bfloat16", "float16")
SETTINGS = ("auto",) + PRECISIONS
# CPU flags (as /proc/cpuinfo spells them) of native bfloat16 arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


class PrecisionError(ValueError):
    """A precision name LiGAN does not know."""


@dataclasses.dataclass(frozen=True)
class Precision:
    """A resolved precision and the reason it was chosen (for logs and health answers)."""

    name: str
    reason: str


def check_precision(name: str, allow_auto: bool = True) -> str:
    """``name`` lower-cased if it is a known precision (or ``auto``), else PrecisionError."""
    value = str(name).strip().lower()
    known = SETTINGS if allow_auto else PRECISIONS
    if value not in known:
        raise PrecisionError(f"precision must be one of {', '.join(known)}, got {name!r}")
    return value


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU feature flags of the first processor in ``cpuinfo`` (the text of
    /proc/cpuinfo; read from the system when None; empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def resolve_precision(setting: str = "auto", *, flags: Iterable[str] | None = None,
                      gpus: int | None = None) -> Precision:
    """The precision to run in for ``setting``.

    ``auto`` picks float16 mixed precision when TensorFlow sees a GPU, bfloat16 on CPUs with
    native bfloat16 units (:data:`BF16_CPU_FLAGS`), float32 otherwise. ``flags`` and ``gpus``
    default to this machine's; tests pass them to simulate another machine.
    """
    setting = check_precision(setting)
    if setting != "auto":
        return Precision(setting, "set explicitly")
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:
        return Precision("float16", f"auto: {gpus} GPU(s) visible")
    have = sorted(set(BF16_CPU_FLAGS) & set(cpu_flags() if flags is None else flags))
    if have:
        return Precision("bfloat16", f"auto: the CPU computes bfloat16 natively "
                                     f"({', '.join(have)})")
    return Precision("float32", f"auto: the CPU has no native bfloat16 units "
                                f"(none of {', '.join(BF16_CPU_FLAGS)}), so bfloat16 would "
                                f"only be emulated")


#: ``auto`` renders in bfloat16 only for generators of at least this many GFLOP a face: smaller
#: ones leave the CPU's bfloat16 units idle and lose to float32 on casts. Measured on an AMX
#: Xeon (``tests/bench/generator.py``, ``tests/bench/inversion.py``): the default 64-px
#: generator, 0.35 GFLOP, renders at bf16/fp32 0.84 (batch 1) and 1.30 (batch 8) and projects
#: at 0.94; one of 3.8 GFLOP at 1.41 and 2.07, of 5.6 GFLOP at 1.31 and 1.81.
BF16_RENDER_MIN_GFLOP = 1.0


def resolve_render_precision(setting: str, generator_cfg, *, flags: Iterable[str] | None = None,
                             gpus: int | None = None) -> Precision:
    """The precision to *render* in with a generator of ``generator_cfg``
    (:class:`models.stylegan2.GeneratorConfig`) for ``setting``: :func:`resolve_precision`,
    except that ``auto`` keeps a generator smaller than :data:`BF16_RENDER_MIN_GFLOP` in float32
    on a CPU with bfloat16 units (training decides by the hardware alone: there the default
    network gains 1.5×)."""
    from models.stylegan2.config import generator_flops

    chosen = resolve_precision(setting, flags=flags, gpus=gpus)
    if check_precision(setting) != "auto" or chosen.name != "bfloat16":
        return chosen
    gflop = generator_flops(generator_cfg)["flops_per_image"] / 1e9
    if gflop < BF16_RENDER_MIN_GFLOP:
        return Precision("float32", f"auto: the CPU computes bfloat16 natively, but this "
                                    f"generator ({gflop:.2f} GFLOP a face, under "
                                    f"{BF16_RENDER_MIN_GFLOP:g}) renders faster in float32")
    return Precision("bfloat16", f"{chosen.reason}; the generator ({gflop:.1f} GFLOP a face) "
                                 f"is large enough to gain from it")


def compute_dtype(precision: str):
    """The TensorFlow dtype the activations of a network run in under ``precision``: bfloat16
    for ``bfloat16``, float32 otherwise (float16 is applied block by block by the GAN trainer,
    see ``models.training.stylegan2.discriminate_mixed``)."""
    import tensorflow as tf

    return tf.bfloat16 if precision == "bfloat16" else tf.float32


def render_precision(precision: Precision | str) -> str:
    """The precision faces are *rendered* in under ``precision`` (float16 is a training-only
    recipe; rendering then stays float32)."""
    name = precision.name if isinstance(precision, Precision) else check_precision(precision,
                                                                                  False)
    return "bfloat16" if name == "bfloat16" else "float32"
