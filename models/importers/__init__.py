"""Import published StyleGAN2 networks (official TensorFlow 1 and StyleGAN2-ADA PyTorch pickles)
into LiGAN bundles, without running any code from the pickle.

``import_pickle(path)`` reads the file through the restricted unpickler, recognises the format,
maps every variable onto our generator (and discriminator, when present) and returns the
networks; ``import_to_bundle`` also writes the bundle, recording the source file's sha256.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from models.importers.errors import (MappingError, NetworkImportError, RefusedGlobalError,
                                     SourceFormatError)
from models.importers.mapping import ImportedNetworks

FORMATS = ("stylegan2-tf", "stylegan2-ada-pytorch")


def read_pickle(path: str | os.PathLike) -> Any:
    """The pickle's content with every global replaced by an inert record (see ``unpickle``)."""
    from models.importers.unpickle import load_restricted

    path = Path(path)
    if not path.is_file():
        raise SourceFormatError(f"no file at {path}")
    with open(path, "rb") as f:
        return load_restricted(f)


def convert(obj: Any, include_discriminator: bool = True) -> ImportedNetworks:
    """Recognise the format of unpickled content and map it onto our networks."""
    from models.importers import ada_pytorch, tf_stylegan2

    if tf_stylegan2.is_tf_pickle(obj):
        converter = tf_stylegan2.convert
    elif ada_pytorch.is_ada_pickle(obj):
        converter = ada_pytorch.convert
    else:
        raise SourceFormatError(f"the pickle holds a {type(obj).__name__}, not an official "
                                f"StyleGAN2 (G, D, Gs) tuple or a StyleGAN2-ADA network dict")
    try:
        return converter(obj, include_discriminator)
    except NetworkImportError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # Allowed content in an unexpected arrangement (a damaged or hand-made file).
        raise SourceFormatError(f"the pickle's structure is not that of a published network: "
                                f"{type(exc).__name__}: {exc}") from None


def import_pickle(path: str | os.PathLike, include_discriminator: bool = True) -> ImportedNetworks:
    """Read and convert a published network pickle."""
    return convert(read_pickle(path), include_discriminator)


def import_to_bundle(source: str | os.PathLike, out: str | os.PathLike, *, name: str,
                     licence: str, note: str = "", training_data: str = "",
                     include_discriminator: bool = True,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Import ``source`` into a new bundle directory ``out``.

    Returns ``{"hash", "sha256", "format", "parts", "notes"}``. The manifest's ``source`` entry
    records the file name, its sha256, the format, which networks were used and the note.
    """
    from models.bundle import save_bundle, sha256_file

    say = progress or (lambda message: None)
    source = Path(source)
    if (Path(out) / "manifest.json").exists():
        raise NetworkImportError(f"{out} already holds a bundle; choose another directory")
    say(f"hashing {source} ({source.stat().st_size / 1e6:.1f} MB)")
    digest = sha256_file(source)
    say(f"sha256 {digest}")
    say("reading the pickle (restricted: no code from it runs)")
    content = read_pickle(source)
    say("mapping the variables onto LiGAN's networks")
    nets = convert(content, include_discriminator)
    cfg = nets.generator.cfg
    say(f"format {nets.format}: {cfg.resolution} px, z {cfg.z_dim}, w {cfg.w_dim}, generator "
        f"from {nets.generator_source}"
        + (f", discriminator from {nets.discriminator_source}" if nets.discriminator else ""))
    record = {"file": source.name, "sha256": digest, "format": nets.format,
              "generator": nets.generator_source, "note": note}
    if nets.discriminator is not None:
        record["discriminator"] = nets.discriminator_source
    description = f"imported from {source.name} ({nets.format})" + (f": {note}" if note else "")
    data = {"description": training_data or "as published with the source file (see source)",
            "licence": licence}
    say(f"writing bundle {out}")
    bundle_hash = save_bundle(out, nets.generator, nets.discriminator, name=name,
                              description=description, creator="ligan bundle import",
                              licence=licence, training_data=data, extra={"source": record})
    return {"hash": bundle_hash, "sha256": digest, "format": nets.format,
            "parts": ["generator"] + (["discriminator"] if nets.discriminator else []),
            "notes": nets.notes}


__all__ = ["FORMATS", "ImportedNetworks", "MappingError", "NetworkImportError",
           "RefusedGlobalError", "SourceFormatError", "convert", "import_pickle",
           "import_to_bundle", "read_pickle"]
