"""A torch-free reader for the tensors inside StyleGAN2-ADA (PyTorch) pickles.

When a tensor is pickled with plain :mod:`pickle` (as StyleGAN2-ADA does), it reduces to
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and its storage reduces to
``torch.storage._load_from_bytes(data)``, where ``data`` is the output of ``torch.save`` for that
one storage. PyTorch writes it in its legacy format (a few small pickles, then the raw bytes of
each storage) and, in some versions, in its zip format (``data.pkl`` plus one file per storage).
Both are parsed here with NumPy alone: no torch import, no ``torch.load``, and the inner pickles
go through an allow-list that only admits the storage type names.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.importers.errors import RefusedGlobalError, SourceFormatError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

#: ``torch.<Name>Storage`` → element dtype (little-endian). BFloat16 has no NumPy dtype.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"), "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class named in a pickle: just its element type."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class Storage:
    """A tensor storage read from the pickle: a flat NumPy array."""

    data: np.ndarray


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


class _StorageUnpickler(pickle.Unpickler):
    """Unpickles the object part of one ``torch.save`` output: only storage type names are
    allowed as globals, and persistent ids must be storage references."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise RefusedGlobalError(module, name)

    def persistent_load(self, pid: Any) -> _StorageRef:
        if (not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
                or not isinstance(pid[1], StorageType)):
            raise SourceFormatError(f"unexpected persistent id in a tensor storage: {pid!r:.80}")
        _, stype, key, _location, numel = pid[:5]
        if not isinstance(numel, int) or numel < 0:
            raise SourceFormatError(f"bad storage size {numel!r} in a tensor storage")
        return _StorageRef(str(key), stype.dtype, numel)


def load_storage_bytes(data: bytes) -> Storage:
    """Parse the argument of ``torch.storage._load_from_bytes`` into a :class:`Storage`."""
    if not isinstance(data, (bytes, bytearray)):
        raise SourceFormatError("a tensor storage in the pickle is not a byte string")
    if data[:2] == b"PK":
        return _load_zip(bytes(data))
    return _load_legacy(bytes(data))


def _load_legacy(data: bytes) -> Storage:
    f = io.BytesIO(data)
    try:
        magic = _StorageUnpickler(f).load()
        protocol = _StorageUnpickler(f).load()
        sys_info = _StorageUnpickler(f).load()
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise SourceFormatError("a tensor storage is not in a known torch.save format")
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise SourceFormatError("big-endian tensor storages are not supported")
        ref = _StorageUnpickler(f).load()
        keys = _StorageUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise SourceFormatError(f"a tensor storage in the pickle is damaged: {exc}") from None
    if not isinstance(ref, _StorageRef) or not isinstance(keys, list) or keys != [ref.key]:
        raise SourceFormatError("a tensor storage holds something other than one storage")
    header = f.read(8)
    if len(header) != 8:
        raise SourceFormatError("a tensor storage in the pickle is truncated")
    (numel,) = struct.unpack("<q", header)
    nbytes = numel * ref.dtype.itemsize
    if numel != ref.numel or len(data) - f.tell() < nbytes:
        raise SourceFormatError("a tensor storage in the pickle is truncated or inconsistent")
    raw = data[f.tell():f.tell() + nbytes]
    return Storage(np.frombuffer(raw, dtype=ref.dtype).copy())


def _load_zip(data: bytes) -> Storage:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkl) != 1:
                raise SourceFormatError("a tensor storage archive has no single data.pkl")
            prefix = pkl[0][: -len("data.pkl")]
            ref = _StorageUnpickler(io.BytesIO(archive.read(pkl[0]))).load()
            if not isinstance(ref, _StorageRef):
                raise SourceFormatError("a tensor storage archive holds something other than a "
                                        "storage")
            raw = archive.read(f"{prefix}data/{ref.key}")
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError) as exc:
        raise SourceFormatError(f"a tensor storage in the pickle is damaged: {exc}") from None
    if len(raw) != ref.numel * ref.dtype.itemsize:
        raise SourceFormatError("a tensor storage in the pickle has the wrong size")
    return Storage(np.frombuffer(raw, dtype=ref.dtype).copy())


def rebuild_tensor(storage: Storage, offset: int, size: tuple, stride: tuple,
                   *_ignored: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` as a NumPy copy, checking that the view lies inside
    its storage (a strided view is otherwise a read of arbitrary memory)."""
    if not isinstance(storage, Storage):
        raise SourceFormatError("a tensor in the pickle does not refer to a storage")
    size, stride = tuple(size), tuple(stride)
    if (not isinstance(offset, int) or offset < 0 or len(size) != len(stride)
            or not all(isinstance(v, int) and v >= 0 for v in size + stride)):
        raise SourceFormatError(f"a tensor in the pickle has an invalid layout "
                                f"(offset {offset!r}, size {size!r}, stride {stride!r})")
    flat = storage.data
    if 0 in size:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= flat.size:
        raise SourceFormatError("a tensor in the pickle reaches outside its storage")
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=[s * item for s in stride], writeable=False)
    return np.array(view)


def rebuild_parameter(data: np.ndarray, *_ignored: Any) -> np.ndarray:
    """``torch._utils._rebuild_parameter`` (and ``…_with_state``): the parameter's data."""
    if not isinstance(data, np.ndarray):
        raise SourceFormatError("a parameter in the pickle does not hold a tensor")
    return data
