"""The labels a conditional generator draws faces for, and where training reads them.

A conditional StyleGAN2 (``GeneratorConfig.label_groups``) takes, beside z, a label vector made
of one one-hot block per trait. Its discriminator scores a face *given* its labels (a
projection term), so the generator is pushed to draw every group the data holds, the rare
ones included, instead of the few easiest faces. The one layout LiGAN trains with is
UTKFace's: gender, age group (decades) and ethnicity, read from the file names
(``AGE_GENDER_RACE_*``). The trait names and groups are those of the attribute model
(``models.attributes.heads``), so a label and an attribute reading mean the same thing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from models.attributes.data import UTK_NAME
from models.attributes.heads import AGE_GROUPS, ETHNICITIES, GENDERS, age_group

#: Label layouts by name (``TrainConfig.conditioning``): trait → its groups, in vector order.
LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "utkface": {"gender": GENDERS, "age_group": AGE_GROUPS, "ethnicity": ETHNICITIES},
}

#: Largest share of training files without labels in their names that is tolerated (UTKFace
#: itself has a few malformed names); more means the folder is not labelled, which is an error.
MAX_UNLABELLED_SHARE = 0.01


def check_layout(name: str) -> dict[str, tuple[str, ...]]:
    """The layout called ``name``; ValueError naming the known ones otherwise."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown label layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def label_groups(layout: str) -> tuple[int, ...]:
    """Group counts of every trait of ``layout`` (``GeneratorConfig.label_groups``)."""
    return tuple(len(groups) for groups in check_layout(layout).values())


def utkface_traits(files: Sequence[str]) -> list[dict[str, str] | None]:
    """Every UTKFace file's traits (gender, age group, ethnicity), None where its name carries
    no labels."""
    traits: list[dict[str, str] | None] = []
    for f in files:
        match = UTK_NAME.match(Path(f).name)
        if match is None:
            traits.append(None)
            continue
        age, gender, race = (int(match.group(i)) for i in (1, 2, 3))
        traits.append({"gender": GENDERS[gender], "age_group": AGE_GROUPS[age_group(age)],
                       "ethnicity": ETHNICITIES[race]})
    return traits


def label_vector(layout: str, traits: Mapping[str, str]) -> np.ndarray:
    """The label vector of one face with ``traits`` (every trait of the layout), float32."""
    spec = check_layout(layout)
    unknown = sorted(set(traits) - set(spec))
    missing = sorted(set(spec) - set(traits))
    if unknown or missing:
        raise ValueError(f"labels of layout {layout!r} need exactly the traits "
                         f"{', '.join(spec)} (missing: {', '.join(missing) or 'none'}; "
                         f"unknown: {', '.join(unknown) or 'none'})")
    blocks = []
    for trait, groups in spec.items():
        if traits[trait] not in groups:
            raise ValueError(f"{trait} {traits[trait]!r} is not one of {', '.join(groups)}")
        blocks.append(np.eye(len(groups), dtype=np.float32)[groups.index(traits[trait])])
    return np.concatenate(blocks)


def file_labels(files: Sequence[str], layout: str) -> np.ndarray:
    """Label vectors [N, label dims] of training files from their names; all zeros for the few
    without labels (the discriminator's label term is then silent on them). ValueError when
    more than :data:`MAX_UNLABELLED_SHARE` of the files have none."""
    check_layout(layout)
    traits = utkface_traits(files)
    unlabelled = [Path(f).name for f, t in zip(files, traits) if t is None]
    if len(unlabelled) > MAX_UNLABELLED_SHARE * len(files):
        raise ValueError(f"labels of layout {layout!r} come from UTKFace file names "
                         f"(AGE_GENDER_RACE_*); {len(unlabelled)} of {len(files)} files have "
                         f"none, e.g. {unlabelled[0]!r}")
    width = sum(label_groups(layout))
    return np.stack([label_vector(layout, t) if t is not None else np.zeros(width, np.float32)
                     for t in traits])


def label_slices(traits: Mapping[str, Sequence[str]]) -> dict[str, slice]:
    """Where each trait's one-hot block lies in the label vector (traits in vector order)."""
    out, start = {}, 0
    for trait, groups in traits.items():
        out[trait] = slice(start, start + len(groups))
        start += len(groups)
    return out


def group_shares(labels: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Each group's share within its trait over the labelled rows of ``labels`` (the prior a
    conditional generator draws labels from when none are given)."""
    labels = np.asarray(labels, np.float64)
    labels = labels[labels.sum(axis=1) > 0]
    if not len(labels):
        raise ValueError("no labelled rows to take group shares from")
    shares, start = [], 0
    for n in groups:
        counts = labels[:, start:start + n].sum(axis=0)
        shares.append(counts / counts.sum())
        start += n
    return np.concatenate(shares).astype(np.float32)


def manifest_labels(layout: str) -> dict[str, Any]:
    """What a conditional bundle's manifest records of its labels (``labels``): the layout's
    name and every trait with its groups, in vector order (a list: the manifest's keys are
    sorted), so a bundle describes its own labels."""
    return {"layout": layout, "traits": [{"trait": t, "groups": list(g)}
                                         for t, g in check_layout(layout).items()]}


def bundle_traits(manifest: Mapping[str, Any],
                  groups: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """The traits and groups of a bundle's label vector (empty for an unconditional generator,
    whose ``groups`` are empty). ValueError when the manifest does not describe the
    generator's labels."""
    if not groups:
        return {}
    traits = {entry["trait"]: tuple(entry["groups"])
              for entry in (manifest.get("labels") or {}).get("traits", [])}
    if tuple(len(g) for g in traits.values()) != tuple(groups):
        raise ValueError(f"the bundle's generator takes labels of {list(groups)} groups, but its "
                         f"manifest describes {[len(g) for g in traits.values()] or 'none'}")
    return traits


def draw_labels(traits: Mapping[str, Sequence[str]], prior: np.ndarray, n: int,
                rng: np.random.Generator,
                allowed: Mapping[str, Collection[str]] | None = None) -> np.ndarray:
    """``n`` label vectors [n, dims], each trait's group drawn from its ``prior`` shares,
    restricted to the ``allowed`` groups where given (a filter that fixes a trait)."""
    allowed = allowed or {}
    unknown = sorted(set(allowed) - set(traits))
    if unknown:
        raise ValueError(f"these labels have no trait {', '.join(unknown)}")
    blocks, slices = [], label_slices(traits)
    for trait, groups in traits.items():
        shares = np.asarray(prior[slices[trait]], np.float64)
        if trait in allowed:
            bad = sorted(set(allowed[trait]) - set(groups))
            if bad:
                raise ValueError(f"{trait} {', '.join(bad)} is not one of {', '.join(groups)}")
            shares = shares * np.isin(groups, list(allowed[trait]))
            if shares.sum() <= 0:  # groups the data lacks: draw them evenly
                shares = np.isin(groups, list(allowed[trait])).astype(np.float64)
        index = rng.choice(len(groups), size=n, p=shares / shares.sum())
        blocks.append(np.eye(len(groups), dtype=np.float32)[index])
    return np.concatenate(blocks, axis=1)
