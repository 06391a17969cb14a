"""A restricted unpickler for published StyleGAN2 network pickles.

Unpickling calls whatever callables the pickle names, so a pickle is code. Official StyleGAN2
(TensorFlow 1) pickles would normally ``exec`` the network-building source embedded in them, and
StyleGAN2-ADA (PyTorch) pickles do the same with their ``module_src``. Here every global the
pickle names is looked up in a fixed allow-list and replaced by an inert stand-in:

* ``dnnlib.tflib.network.Network`` → :class:`TFNetworkRecord` holding the pickled state
  (name, static kwargs, components, variables); the embedded source is kept as text, never run.
* ``torch_utils.persistence._reconstruct_persistent_obj`` → :class:`PersistentRecord` holding the
  class name and state (``module_src`` is dropped, never run).
* the torch tensor, parameter and storage rebuild functions → NumPy arrays, read by
  :mod:`models.importers.torch_storage` without torch.
* NumPy's array and scalar reconstruction, ``dnnlib.util.EasyDict`` and plain containers.

Any other global raises :class:`RefusedGlobalError` before it is called.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from models.importers import torch_storage
from models.importers.errors import RefusedGlobalError, SourceFormatError


class TFNetworkRecord:
    """Inert stand-in for ``dnnlib.tflib.network.Network``: only the pickled state."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise SourceFormatError("a TensorFlow network in the pickle has no state dictionary")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", "?"))

    @property
    def static_kwargs(self) -> dict[str, Any]:
        kwargs = self.state.get("static_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise SourceFormatError(f"network {self.name!r} has no settings dictionary")
        return dict(kwargs)

    @property
    def components(self) -> dict[str, Any]:
        comps = self.state.get("components") or {}
        if not isinstance(comps, dict):
            raise SourceFormatError(f"network {self.name!r} has no sub-network dictionary")
        return dict(comps)

    @property
    def build_func_name(self) -> str:
        return str(self.state.get("build_func_name", "?"))

    @property
    def variables(self) -> dict[str, Any]:
        """This network's own variables (sub-networks excluded), by local name."""
        pairs = self.state.get("variables") or []
        if not isinstance(pairs, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                for p in pairs):
            raise SourceFormatError(f"network {self.name!r} has no (name, value) variable list")
        return dict(pairs)

    def __repr__(self) -> str:
        return f"TFNetworkRecord({self.name!r})"


class PersistentRecord:
    """Inert stand-in for a StyleGAN2-ADA persistent object (a ``torch.nn.Module``): its class
    name and its ``__dict__`` (parameters, buffers, sub-modules, attributes)."""

    def __init__(self, class_name: str, state: dict[str, Any]) -> None:
        self.class_name = class_name
        self.state = state

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name!r})"


class EasyDictRecord(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access): a plain dict."""


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise SourceFormatError("a persistent object in the pickle has unexpected metadata")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise SourceFormatError(f"persistent object {meta.get('class_name')!r} has no state")
    return PersistentRecord(str(meta.get("class_name")), dict(state))


class _NdarrayToken:
    """What ``numpy.ndarray`` resolves to: only usable as the first argument of
    ``_reconstruct`` (so the pickle cannot call the ndarray constructor with a buffer)."""


def _np_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if cls is not _NdarrayToken:
        raise SourceFormatError("numpy array reconstruction in the pickle names another class")
    return np.ndarray.__new__(np.ndarray, (0,), dtype=np.uint8)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise SourceFormatError("a numpy scalar in the pickle is not a plain number")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise SourceFormatError("a numpy dtype in the pickle is not a plain type code")
    return np.dtype(spec, align=bool(align), copy=bool(copy))


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Protocol 0/1 pickles build plain objects this way; only our records are allowed."""
    if cls not in (TFNetworkRecord, EasyDictRecord) or base not in (object, dict):
        raise SourceFormatError("copyreg reconstruction in the pickle names another class")
    return cls.__new__(cls) if base is object else cls()


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
        ("dnnlib.util", "EasyDict"): EasyDictRecord,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
        ("torch._utils", "_rebuild_tensor_v2"): torch_storage.rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch_storage.rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch_storage.rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): torch_storage.load_storage_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
        ("copyreg", "_reconstructor"): _copyreg_reconstructor,
        ("builtins", "object"): object,
        ("__builtin__", "object"): object,
    }
    for np_module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(np_module, "_reconstruct")] = _np_reconstruct
        table[(np_module, "scalar")] = _np_scalar
    table[("numpy", "ndarray")] = _NdarrayToken
    table[("numpy", "dtype")] = _np_dtype
    return table


ALLOWED_GLOBALS: dict[tuple[str, str], Any] = _allowed()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves globals only through :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobalError(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise SourceFormatError("the pickle uses persistent ids (a torch.save file, not a "
                                "network pickle); export the network with pickle")


def load_restricted(source: bytes | BinaryIO) -> Any:
    """Unpickle ``source`` with :class:`RestrictedUnpickler`.

    Raises :class:`RefusedGlobalError` for a foreign global and :class:`SourceFormatError` for
    a damaged or unrecognised file.
    """
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        return RestrictedUnpickler(f).load()
    except (RefusedGlobalError, SourceFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError) as exc:
        raise SourceFormatError(f"the file is not a readable network pickle: "
                                f"{type(exc).__name__}: {exc}") from None


__all__: list[str] = ["ALLOWED_GLOBALS", "EasyDictRecord", "PersistentRecord",
                      "RestrictedUnpickler", "TFNetworkRecord", "load_restricted"]
