"""Carrying a bundle's face-reading parts over to a bundle with a new generator.

The attribute model, the identity network and the trait probe read *images*: they do not
depend on which generator drew them, so a retrained generator can reuse them instead of
training them again (hours on a CPU). What is tied to the generator's W is not carried: the
encoder and the PCA must be fitted to the new generator, and the attribute model's directions
in W (``ligan attributes directions``) are dropped so they are refitted.

Both bundles must read faces of the same size cut the same way (resolution and framing).
"""
from __future__ import annotations

import os
from pathlib import Path

from models.attributes.model import ATTRIBUTES_PART, DIRECTION_PREFIX
from models.attributes.identity_probe import PROBE_PART
from models.bundle import BundleError, add_part, load_bundle, manifest_framing, read_manifest
from models.faces.identity import IDENTITY_PART

#: Parts that read images only and may be carried to a bundle with another generator.
CARRIABLE_PARTS = (ATTRIBUTES_PART, IDENTITY_PART, PROBE_PART)
#: What the destination must refit after a carry, by part (shown to the user).
REFIT_AFTER = {ATTRIBUTES_PART: "ligan attributes directions (the directions in W were dropped)"}


def carry_parts(source: str | os.PathLike, destination: str | os.PathLike,
                parts: tuple[str, ...] = CARRIABLE_PARTS) -> str:
    """Copy ``parts`` of the bundle ``source`` into the bundle directory ``destination``
    (replacing any it has) and return the destination's new hash.

    Each carried part's config records the source bundle's hash under ``carried_from``.
    Raises ValueError for a part that cannot be carried or that ``source`` lacks, and for
    bundles whose faces differ in resolution or framing.
    """
    destination = Path(destination)
    if not destination.is_dir():
        raise ValueError(f"{destination} is not a bundle directory (unpack a packed bundle first)")
    for part in parts:
        if part not in CARRIABLE_PARTS:
            raise ValueError(f"the {part} part cannot be carried to another generator's bundle "
                             f"(it is fitted to the generator's latent space); carriable parts: "
                             f"{', '.join(CARRIABLE_PARTS)}")
    src = load_bundle(source, parts=())
    dst = read_manifest(destination)
    missing = [p for p in parts if not src.has_part(p)]
    if missing:
        raise ValueError(f"bundle {source} has no {', '.join(missing)} part")
    if int(src.manifest["resolution"]) != int(dst["resolution"]):
        raise ValueError(f"{source} reads {src.manifest['resolution']}-px faces, {destination} "
                         f"draws {dst['resolution']}-px faces")
    if manifest_framing(src.manifest) != manifest_framing(dst):
        raise ValueError(f"{source} and {destination} frame faces differently "
                         f"({manifest_framing(src.manifest).name} against "
                         f"{manifest_framing(dst).name})")
    digest = ""
    for part in parts:
        arrays = src.part_arrays(part)
        config = dict(src.manifest["parts"][part]["config"])
        if part == ATTRIBUTES_PART:
            arrays = {k: v for k, v in arrays.items() if not k.startswith(DIRECTION_PREFIX)}
            config.pop("directions", None)
        config["carried_from"] = src.hash
        try:
            digest = add_part(destination, part, arrays, config)
        except BundleError as exc:
            raise ValueError(str(exc)) from None
    return digest
