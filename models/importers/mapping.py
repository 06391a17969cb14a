"""Shared machinery for mapping a published network's variables onto ours.

A converter names, for each of our variables, the source variable it comes from and the layout
transform; :func:`fill_module` applies that rule to every variable of our network and reports,
all at once and by name, every source variable that is missing, misshapen, not a float array
or left over. Nothing is assigned unless the whole mapping is exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from models.importers.errors import MappingError, SourceFormatError

#: How many names of each kind an error message lists before "… and N more".
MAX_LISTED = 10


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" … and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


class SourceVariables:
    """The named arrays of one source network, remembering which ones were used.

    ``label`` prefixes names in messages (``G_synthesis/``, ``G_ema.``) so that people can find
    the variable in the original code or pickle.
    """

    def __init__(self, arrays: dict[str, Any], label: str) -> None:
        self.arrays = dict(arrays)
        self.label = label
        self.used: set[str] = set()
        self.missing: list[str] = []
        self.bad: list[str] = []

    def full_name(self, name: str) -> str:
        return f"{self.label}{name}"

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def take(self, name: str) -> np.ndarray | None:
        """The float32 array ``name``, or None (recorded as missing or bad) when unusable."""
        if name not in self.arrays:
            self.missing.append(self.full_name(name))
            return None
        self.used.add(name)
        value = self.arrays[name]
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            self.bad.append(f"{self.full_name(name)} is not a numeric array "
                            f"({type(value).__name__})")
            return None
        value = value.astype(np.float32)
        if not np.all(np.isfinite(value)):
            self.bad.append(f"{self.full_name(name)} holds NaN or infinite values")
            return None
        return value

    def ignore(self, name: str) -> None:
        """Mark ``name`` as accounted for without mapping it (e.g. fixed FIR filter buffers)."""
        self.used.add(name)

    def leftovers(self) -> list[str]:
        return sorted(self.full_name(n) for n in self.arrays if n not in self.used)


#: A rule maps one of our variable names to (source, source name, transform), or None when the
#: name has no counterpart (a bug in the converter, reported as such).
Rule = Callable[[str], "tuple[SourceVariables, str, Callable[[np.ndarray], np.ndarray]] | None"]


def identity(x: np.ndarray) -> np.ndarray:
    return x


def fill_module(module, rule: Rule, sources: list[SourceVariables], where: str) -> None:
    """Assign every variable of ``module`` from the sources through ``rule``, or raise
    :class:`MappingError` listing every missing, misshapen, unusable and left-over variable."""
    from models.bundle import assign_weights

    arrays: dict[str, np.ndarray] = {}
    unmapped: list[str] = []
    shape_errors: list[str] = []
    for name, var in module.named_variables():
        spec = rule(name)
        if spec is None:
            unmapped.append(name)
            continue
        source, src_name, transform = spec
        value = source.take(src_name)
        if value is None:
            continue
        try:
            value = np.array(transform(value), dtype=np.float32, order="C")
        except (ValueError, IndexError) as exc:
            shape = list(np.shape(source.arrays[src_name]))
            shape_errors.append(f"{source.full_name(src_name)} {shape} cannot become {name}: {exc}")
            continue
        if tuple(value.shape) != tuple(var.shape):
            src_shape = list(np.shape(source.arrays[src_name]))
            shape_errors.append(
                f"{source.full_name(src_name)} {src_shape} → {name} "
                f"{list(value.shape)}, but the architecture needs {list(var.shape)}")
            continue
        arrays[name] = value
    problems: list[str] = []
    missing = [m for s in sources for m in s.missing]
    if missing:
        problems.append(f"missing in the pickle: {_listed(missing)}")
    if shape_errors:
        problems.append(f"wrong shape: {_listed(shape_errors)}")
    bad = [b for s in sources for b in s.bad]
    if bad:
        problems.append(f"unusable: {_listed(bad)}")
    leftovers = [n for s in sources for n in s.leftovers()]
    if leftovers:
        problems.append(f"not used by the architecture (left over): {_listed(leftovers)}")
    if unmapped:
        problems.append(f"no source for our variables: {_listed(unmapped)}")
    if problems:
        raise MappingError(f"{where}: the published variables do not map exactly onto LiGAN's "
                           f"network: " + "; ".join(problems))
    assign_weights(module, arrays, where)


def scalar_setting(value: Any, name: str, kind: type = int) -> Any:
    """A setting read from the pickle as a Python ``int``/``float`` (NumPy scalars accepted)."""
    if isinstance(value, np.generic):
        value = value.item()
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SourceFormatError(f"setting {name} is {value!r}, expected {kind.__name__}")
    return value


@dataclass
class ImportedNetworks:
    """The result of a conversion: our networks holding the published weights."""

    format: str
    generator: Any
    discriminator: Any = None
    generator_source: str = ""
    discriminator_source: str = ""
    notes: list[str] = field(default_factory=list)
