"""The model bundle: one directory (or one uncompressed tar file) that holds a trained model.

A bundle is ``manifest.json`` plus one weights file per part. The generator part is required;
discriminator, encoder, attribute model, PCA and identity network are optional parts added by
their training jobs.
Weights are NumPy ``.npz`` archives read with ``allow_pickle=False``: loading a bundle never runs
code from it. The manifest records the sha256 of every file, and the *bundle hash* is the sha256
of the canonical manifest, so it names every byte a generated face depends on.

Layout of ``manifest.json`` (format version 1)::

    {"format": "ligan-bundle", "format_version": 1,
     "name": ..., "description": ..., "creator": ..., "created": ISO-8601 time,
     "licence": ..., "training_data": {"description": ..., "licence": ...},
     "resolution": R, "z_dim": ..., "w_dim": ..., "num_ws": ...,
     "style_layers": {"coarse": [start, stop], "middle": [...], "fine": [...]},
     "alignment": {"scale": ..., "dx": ..., "dy": ...},   # optional: how training faces were
                                                          # framed (absent: FFHQ's crop)
     "parts": {"generator": {"file": "generator.npz", "config": {...}}, ...},
     "files": {"generator.npz": {"sha256": ..., "bytes": ...}, ...}}
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

FORMAT_NAME = "ligan-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KNOWN_PARTS = ("generator", "discriminator", "encoder", "attributes", "pca", "identity",
               "trait_probe")


class BundleError(Exception):
    """A bundle cannot be used; the message says what is wrong and what to do."""


class BundleNotFoundError(BundleError):
    pass


class BundleFileMissingError(BundleError):
    pass


class BundleHashMismatchError(BundleError):
    pass


class BundleVersionError(BundleError):
    pass


class BundleFormatError(BundleError):
    pass


class BundleShapeError(BundleError):
    pass


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The bundle hash: sha256 of the canonical manifest (which itself pins every file)."""
    return sha256_bytes(canonical_json(manifest))


# -- reading ---------------------------------------------------------------------------------


class _Source:
    """Read access to the files of a bundle directory or of a packed tar bundle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: dict[str, bytes] | None = None
        if path.is_file():
            try:
                with tarfile.open(path, "r:") as tar:
                    self._tar = {}
                    for member in tar.getmembers():
                        if member.isfile():
                            name = member.name.split("/", 1)[-1] if "/" in member.name else member.name
                            data = tar.extractfile(member)
                            self._tar[name] = data.read() if data else b""
            except tarfile.TarError as exc:
                raise BundleFormatError(f"{path} is neither a bundle directory nor a packed bundle "
                                        f"(tar): {exc}") from None
        elif not path.is_dir():
            raise BundleNotFoundError(f"no bundle at {path}: the path does not exist")

    def exists(self, name: str) -> bool:
        if self._tar is not None:
            return name in self._tar
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        if self._tar is not None:
            return self._tar[name]
        return (self.path / name).read_bytes()

    def sha256(self, name: str) -> str:
        if self._tar is not None:
            return sha256_bytes(self._tar[name])
        return sha256_file(self.path / name)

    def size(self, name: str) -> int:
        if self._tar is not None:
            return len(self._tar[name])
        return (self.path / name).stat().st_size


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a bundle, checked for format and version (files are not hashed here)."""
    return _read_manifest(_Source(Path(path)))


def _read_manifest(src: _Source) -> dict[str, Any]:
    if not src.exists(MANIFEST):
        raise BundleFileMissingError(f"{src.path} is not a bundle: {MANIFEST} is missing")
    try:
        manifest = json.loads(src.read(MANIFEST))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"{src.path}/{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleFormatError(f"{src.path}/{MANIFEST} is not a LiGAN bundle manifest "
                                f"(expected \"format\": \"{FORMAT_NAME}\")")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleFormatError(f"{src.path}/{MANIFEST} has no integer format_version")
    if version > FORMAT_VERSION:
        raise BundleVersionError(
            f"bundle {src.path} has format version {version}, newer than this LiGAN reads "
            f"({FORMAT_VERSION}); upgrade LiGAN to use it")
    for key in ("parts", "files"):
        if not isinstance(manifest.get(key), dict):
            raise BundleFormatError(f"{src.path}/{MANIFEST} lacks the \"{key}\" table")
    if "generator" not in manifest["parts"]:
        raise BundleFormatError(f"bundle {src.path} has no generator part")
    try:
        manifest_framing(manifest)
    except BundleFormatError as exc:
        raise BundleFormatError(f"bundle {src.path}: {exc}") from None
    return manifest


def verify_files(src_path: str | os.PathLike, manifest: dict[str, Any] | None = None,
                 names: Iterable[str] | None = None) -> None:
    """Check that every listed file exists and matches its recorded sha256."""
    src = _Source(Path(src_path))
    manifest = manifest or _read_manifest(src)
    _verify(src, manifest, names)


def _verify(src: _Source, manifest: dict[str, Any], names: Iterable[str] | None = None) -> None:
    files = manifest["files"]
    for part, spec in manifest["parts"].items():
        fname = spec.get("file")
        if fname not in files:
            raise BundleFormatError(f"part {part!r} names file {fname!r}, which the manifest's "
                                    f"file table does not list")
    for name in (names if names is not None else files):
        entry = files[name]
        if not src.exists(name):
            raise BundleFileMissingError(f"bundle {src.path} is incomplete: {name} is missing")
        actual = src.sha256(name)
        if actual != entry.get("sha256"):
            raise BundleHashMismatchError(
                f"bundle {src.path}: {name} does not match its recorded sha256 (expected "
                f"{entry.get('sha256')}, found {actual}); the file is corrupt or was changed "
                f"after the bundle was made")


def load_arrays(src: _Source, name: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(src.read(name)), allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise BundleFormatError(f"bundle {src.path}: {name} is not a readable weights "
                                f"archive: {exc}") from None


def assign_weights(module, arrays: dict[str, np.ndarray], where: str) -> None:
    """Copy ``arrays`` into ``module``'s named variables, checking every name and shape."""
    variables = dict(module.named_variables())
    missing = sorted(set(variables) - set(arrays))
    extra = sorted(set(arrays) - set(variables))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:8])}{' …' if len(extra) > 8 else ''}")
        raise BundleShapeError(f"{where}: weights do not fit the architecture: {'; '.join(parts)}")
    for name, var in variables.items():
        value = arrays[name]
        if tuple(value.shape) != tuple(var.shape):
            raise BundleShapeError(f"{where}: {name} has shape {tuple(value.shape)}, the "
                                   f"architecture needs {tuple(var.shape)}")
        var.assign(value.astype(np.float32))


#: Scale of the new entries of a widened weight (:func:`widen_weights`): small enough that the
#: widened network first draws what the narrow one drew, not zero, so that every new weight has
#: a gradient from the start.
WIDEN_NEW_SCALE = 0.01


def widen_weights(module, narrow, where: str, new_scale: float = WIDEN_NEW_SCALE) -> int:
    """Start a wider network ``module`` from a narrower one, ``narrow`` (the same architecture
    but for its channel counts): every variable keeps its name, the narrow weights fill its
    leading entries — rescaled so that their effect is unchanged, since the equalised learning
    rate divides each weight by √fan-in at run time — and the rest keeps the module's fresh
    values, times ``new_scale`` for weights (vectors — biases, style biases — keep theirs). So
    new channels start as near-silent inputs to the old ones and learn from there; the function
    is nearly the narrow network's. Returns how many variables were widened. Names must match
    (the same resolution and depth) and no dimension may shrink.

    A conditional ``module`` may start from an unconditional ``narrow``: its label variables
    (``label_variables``: the mapping's label embedding and the discriminator's projection)
    start fresh, weights times ``new_scale``, so the network first draws and judges as the
    unconditional one did, whatever the labels."""
    variables = dict(module.named_variables())
    arrays = {name: var.numpy() for name, var in narrow.named_variables()}
    fresh = module.label_variables() - set(arrays)
    for name in sorted(fresh):
        var = variables.pop(name)
        var.assign(var.numpy() * (new_scale if name.endswith("weight") else 1.0))
    missing, extra = sorted(set(variables) - set(arrays)), sorted(set(arrays) - set(variables))
    if missing or extra:
        raise BundleShapeError(f"{where}: the networks differ in more than width (missing "
                               f"{', '.join(missing[:4]) or 'none'}; unexpected "
                               f"{', '.join(extra[:4]) or 'none'})")
    gains, narrow_gains = module.weight_gains(), narrow.weight_gains()
    appended = module.appended_inputs()
    widened = 0
    for name, var in variables.items():
        old, new = np.asarray(arrays[name], np.float32), tuple(var.shape)
        if old.ndim != len(new) or any(o > n for o, n in zip(old.shape, new)):
            raise BundleShapeError(f"{where}: {name} has shape {old.shape}, which does not fit "
                                   f"inside {new}")
        if old.shape == new and gains.get(name) == narrow_gains.get(name):
            var.assign(old)
            continue
        if name in gains:
            old = old * (narrow_gains[name] / gains[name])
        value = var.numpy() * (new_scale if len(new) > 1 else 1.0)
        if name in appended:  # inputs after the features move to the end of the wider axis
            axis, n = appended[name]
            tail = [slice(0, o) for o in old.shape]
            tail[axis] = slice(new[axis] - n, new[axis])
            value[tuple(tail)] = np.take(old, range(old.shape[axis] - n, old.shape[axis]), axis)
            old = np.take(old, range(old.shape[axis] - n), axis)
        value[tuple(slice(0, o) for o in old.shape)] = old
        var.assign(value)
        widened += 1
    return widened + len(fresh)


@dataclass
class Bundle:
    """A loaded bundle: its manifest, hash, and the parts that were asked for."""

    path: Path
    manifest: dict[str, Any]
    hash: str
    generator: Any = None
    discriminator: Any = None
    _src: _Source | None = field(default=None, repr=False)
    #: Read-only models built from parts on first use (e.g. the inference encoder), so that a
    #: long-lived process (a backend) builds each once.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    @property
    def style_layers(self) -> dict[str, list[int]]:
        return self.manifest["style_layers"]

    @property
    def framing(self):
        """How this generator's training faces were cut (:class:`models.faces.Framing`):
        photos must be aligned the same way before they are encoded or compared."""
        return manifest_framing(self.manifest)

    def has_part(self, part: str) -> bool:
        return part in self.manifest["parts"]

    def part_arrays(self, part: str) -> dict[str, np.ndarray]:
        """The raw arrays of any part (for parts whose model lives outside this module)."""
        if not self.has_part(part):
            raise BundleFileMissingError(f"bundle {self.path} has no {part} part")
        assert self._src is not None
        return load_arrays(self._src, self.manifest["parts"][part]["file"])


def manifest_framing(manifest: dict[str, Any]):
    """The manifest's ``alignment`` as a :class:`models.faces.Framing` (FFHQ's when absent)."""
    from models.faces.alignment import Framing

    try:
        return Framing.from_dict(manifest.get("alignment"))
    except (TypeError, ValueError) as exc:
        raise BundleFormatError(f"the manifest's alignment is invalid: {exc}") from None


def research_only_notice(manifest: dict[str, Any]) -> str | None:
    """The notice every lineup made with this bundle must show, or None: a bundle whose
    ``licence`` (or its training data's) limits it to research — non-commercial or "research
    only" terms, as the default bundle's UTKFace and CelebA terms do."""
    licences = [str(manifest.get("licence") or ""),
                str((manifest.get("training_data") or {}).get("licence") or "")]
    for text in licences:
        low = text.lower()
        if "research" in low and ("only" in low or "non-commercial" in low):
            return (f"RESEARCH ONLY: the faces come from the model {manifest.get('name', '?')}, "
                    f"whose licence is \"{text}\". Its synthetic faces are for research, not "
                    "for lineups shown to real witnesses.")
    return None


def set_framing(directory: str | os.PathLike, framing) -> str:
    """Record how the training faces were framed in a bundle directory's manifest; returns the
    new bundle hash (the framing changes what every photo inversion produces)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    manifest["alignment"] = framing.to_dict()
    _write_manifest(directory, manifest)
    return manifest_hash(manifest)


#: The manifest's free-text fields that say what a bundle is (``ligan bundle set-info``).
INFO_FIELDS = ("name", "description", "creator", "licence")


def set_info(directory: str | os.PathLike, **fields: str) -> str:
    """Set some of :data:`INFO_FIELDS` in a bundle directory's manifest (e.g. when a trained
    bundle becomes the default: what it is, who made it, its licence); returns the new bundle
    hash. The weights are untouched. Raises ValueError for an unknown or empty field."""
    unknown = sorted(set(fields) - set(INFO_FIELDS))
    if unknown:
        raise ValueError(f"unknown bundle fields {unknown}; known: {', '.join(INFO_FIELDS)}")
    if not fields:
        raise ValueError(f"nothing to set: give at least one of {', '.join(INFO_FIELDS)}")
    empty = sorted(k for k, v in fields.items() if not str(v).strip())
    if empty:
        raise ValueError(f"bundle fields cannot be empty: {', '.join(empty)}")
    directory = Path(directory)
    manifest = read_manifest(directory)
    manifest.update({k: str(v).strip() for k, v in fields.items()})
    _write_manifest(directory, manifest)
    return manifest_hash(manifest)


def load_bundle(path: str | os.PathLike, parts: Iterable[str] = ("generator",),
                verify: bool = True) -> Bundle:
    """Open a bundle, verify every file's hash, and build the networks named in ``parts``.

    Raises a :class:`BundleError` subclass with a message naming the problem for: a missing
    path or file, a hash mismatch, a newer format version, or weights whose names or shapes do
    not fit the architecture in the manifest.
    """
    from models.stylegan2 import (ConfigError, Discriminator, DiscriminatorConfig, Generator,
                                  GeneratorConfig)

    src = _Source(Path(path))
    manifest = _read_manifest(src)
    if verify:
        _verify(src, manifest)
    bundle = Bundle(path=Path(path), manifest=manifest, hash=manifest_hash(manifest), _src=src)
    builders: dict[str, tuple[Callable, Callable]] = {
        "generator": (GeneratorConfig.from_dict, Generator),
        "discriminator": (DiscriminatorConfig.from_dict, Discriminator),
    }
    for part in parts:
        if part not in builders:
            raise ValueError(f"load_bundle builds {sorted(builders)}; use Bundle.part_arrays "
                             f"for {part!r}")
        if part not in manifest["parts"]:
            raise BundleFileMissingError(f"bundle {path} has no {part} part")
        spec = manifest["parts"][part]
        make_config, make_net = builders[part]
        try:
            net = make_net(make_config(spec.get("config", {})))
        except ConfigError as exc:
            raise BundleFormatError(f"bundle {path}: {part} config is invalid: {exc}") from None
        assign_weights(net, load_arrays(src, spec["file"]), f"bundle {path}, {part}")
        setattr(bundle, part, net)
    return bundle


# -- writing ---------------------------------------------------------------------------------


def module_arrays(module) -> dict[str, np.ndarray]:
    """The named variables of a network as NumPy arrays, ready for a bundle part."""
    return {name: var.numpy() for name, var in module.named_variables()}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / MANIFEST)


def save_bundle(directory: str | os.PathLike, generator, discriminator=None, *, name: str,
                description: str = "", creator: str = "", licence: str = "unspecified",
                training_data: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> str:
    """Write a new bundle directory from networks and return its hash."""
    directory = Path(directory)
    if (directory / MANIFEST).exists():
        raise BundleError(f"{directory} already holds a bundle; choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    cfg = generator.cfg
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
        "name": name, "description": description, "creator": creator,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "licence": licence,
        "training_data": training_data or {"description": "none", "licence": "n/a"},
        "resolution": cfg.resolution, "z_dim": cfg.z_dim, "w_dim": cfg.w_dim,
        "num_ws": cfg.num_ws, "style_layers": cfg.style_ranges(),
        "parts": {}, "files": {},
    }
    if extra:
        manifest.update(extra)
    _write_part(directory, manifest, "generator", module_arrays(generator), cfg.to_dict())
    if discriminator is not None:
        _write_part(directory, manifest, "discriminator", module_arrays(discriminator),
                    discriminator.cfg.to_dict())
    _write_manifest(directory, manifest)
    return manifest_hash(manifest)


def add_part(directory: str | os.PathLike, part: str, arrays: dict[str, np.ndarray],
             config: dict[str, Any] | None = None) -> str:
    """Add or replace one part of a bundle directory and return the new bundle hash.

    Training jobs use this to attach their encoder, attribute model or PCA to a bundle.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    _write_part(directory, manifest, part, arrays, config or {})
    _write_manifest(directory, manifest)
    return manifest_hash(manifest)


def set_part_config(directory: str | os.PathLike, part: str, config: dict[str, Any]) -> str:
    """Replace the config of an existing part (its weights untouched); the new bundle hash."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if part not in manifest["parts"]:
        raise BundleFileMissingError(f"bundle {directory} has no {part} part")
    manifest["parts"][part]["config"] = config
    _write_manifest(directory, manifest)
    return manifest_hash(manifest)


def _write_part(directory: Path, manifest: dict[str, Any], part: str,
                arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Write a part's weights file and record it in ``manifest`` (not yet saved)."""
    if part not in KNOWN_PARTS:
        raise ValueError(f"unknown bundle part {part!r}; known parts: {', '.join(KNOWN_PARTS)}")
    fname = f"{part}.npz"
    _write_npz(directory / fname, arrays)
    manifest["parts"][part] = {"file": fname, "config": config}
    manifest["files"][fname] = {"sha256": sha256_file(directory / fname),
                                "bytes": (directory / fname).stat().st_size}


def pack_bundle(directory: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Pack a verified bundle directory into one uncompressed tar file (weights are already
    compact; plain tar keeps loading fast and the file listable with standard tools)."""
    directory, out_file = Path(directory), Path(out_file)
    manifest = read_manifest(directory)
    verify_files(directory, manifest)
    tmp = out_file.with_name(out_file.name + ".tmp")
    with tarfile.open(tmp, "w:") as tar:
        for name in [MANIFEST, *sorted(manifest["files"])]:
            tar.add(directory / name, arcname=name)
    os.replace(tmp, out_file)
    return out_file


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A summary of a bundle for people: manifest facts, parts, sizes and hash."""
    src = _Source(Path(path))
    manifest = _read_manifest(src)
    return {
        "path": str(path),
        "hash": manifest_hash(manifest),
        "name": manifest.get("name"),
        "description": manifest.get("description"),
        "creator": manifest.get("creator"),
        "created": manifest.get("created"),
        "licence": manifest.get("licence"),
        "training_data": manifest.get("training_data"),
        "format_version": manifest["format_version"],
        "resolution": manifest.get("resolution"),
        "z_dim": manifest.get("z_dim"), "w_dim": manifest.get("w_dim"),
        "num_ws": manifest.get("num_ws"),
        "style_layers": manifest.get("style_layers"),
        "alignment": manifest_framing(manifest).to_dict(),
        "parts": {part: {"file": spec.get("file"), "config": spec.get("config", {}),
                         "bytes": manifest["files"].get(spec.get("file"), {}).get("bytes")}
                  for part, spec in manifest["parts"].items()},
    }
