"""Fillers that share the suspect's traits.

Lineup guidance asks that fillers match the suspect's description. The suspect's traits are read
once — from the photo when the suspect is a photo (its record keeps that reading as
``photo_attributes``), else from the face itself — by the bundle's attribute model; a photo's
gender, ethnicity and age group are read by it together with the bundle's trait probe on the
photo's dlib embedding where it has one (:mod:`models.attributes.identity_probe`: the two read
photos better than the attribute model alone). Each filler candidate is read by the attribute
model; a candidate whose reading contradicts a matched trait is left out before dlib looks at
it. The administrator may relax a trait (``any``) or fix it to another value (``male``,
``30-39``, ``blond``, ``yes``…): the witness's description may know better than the photo.
A read age matches its decade and the neighbouring decade its reading leans to (the side
holding more of the rest of its probability, :func:`near_read_age`): a fixed age matches one
decade either side, as a witness reads age no closer;
hair colour matches its neighbours in darkness (black–brown–blond–gray), and a candidate whose
hair reads ``unsure`` contradicts no colour. A suspect whose own hair reads ``unsure`` (the
tight crop often hides it) has no hair colour to match, so ``auto`` leaves hair out.

The request for a page names, per trait, ``auto`` (the suspect's reading, the default), ``any``
or a value; ``none`` matches nothing (the unmatched fillers of before).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from models.attributes.filter import Constraint, FilterSpec, matches
from models.attributes.heads import (AGE_GROUPS, BINARY_TRAITS, HAIR_COLOURS, READ_CLASSES,
                                     UNSURE)

#: The traits a page matches unless the request relaxes them.
MATCHED_TRAITS = ("gender", "ethnicity", "age_group", "hair", "beard", "glasses")
AUTO, ANY, NONE = "auto", "any", "none"
#: The record parameter of an inversion that keeps the attribute reading of its photo.
PHOTO_ATTRIBUTES = "photo_attributes"
_YES = {"yes": True, "true": True, "present": True, "with": True,
        "no": False, "false": False, "absent": False, "without": False}


class TraitRequestError(ValueError):
    """A trait request cannot be understood; the message says what is accepted."""


def requestable_values(trait: str) -> tuple[str, ...]:
    """The values a request or a description may fix ``trait`` to."""
    if trait == "hair":
        return HAIR_COLOURS
    return READ_CLASSES[trait] if trait in READ_CLASSES else ("yes", "no")


def _accepted(trait: str) -> str:
    values = requestable_values(trait)
    return f"{AUTO}, {ANY} or one of {', '.join(values)}"


def parse_trait_request(value: Any) -> dict[str, str | bool] | None:
    """A page's trait request → {trait: AUTO | ANY | value}, or None for no matching.

    Accepted: ``None`` or ``"auto"`` (every trait of :data:`MATCHED_TRAITS` from the suspect),
    ``"none"``, a mapping (API) or ``"trait=value,…"`` (command line); traits left out are
    ``auto``. Values: class names (``female``, ``asian``, ``30-39``) or yes/no for beard and
    glasses, ``auto`` or ``any``."""
    if value is None or value == AUTO:
        return {t: AUTO for t in MATCHED_TRAITS}
    if value == NONE:
        return None
    if isinstance(value, str):
        pairs = {}
        for part in (p.strip() for p in value.split(",") if p.strip()):
            trait, eq, val = part.partition("=")
            if not eq:
                raise TraitRequestError(f"{part!r} is not trait=value (e.g. "
                                        f"gender=female,age_group=any), auto or none")
            pairs[trait.strip()] = val.strip()
        value = pairs
    if not isinstance(value, Mapping):
        raise TraitRequestError("must be auto, none or an object of trait: value")
    request: dict[str, str | bool] = {t: AUTO for t in MATCHED_TRAITS}
    for trait, raw in value.items():
        if trait not in MATCHED_TRAITS:
            raise TraitRequestError(f"unknown trait {trait!r}; the matched traits are "
                                    f"{', '.join(MATCHED_TRAITS)}")
        text = raw if isinstance(raw, bool) else str(raw).strip().lower()
        if text in (AUTO, ANY):
            request[trait] = text
        elif trait in READ_CLASSES and text in requestable_values(trait):
            request[trait] = text
        elif trait in BINARY_TRAITS and (isinstance(text, bool) or text in _YES):
            request[trait] = text if isinstance(text, bool) else _YES[text]
        else:
            raise TraitRequestError(f"{trait}: {raw!r} is not accepted; use "
                                    f"{_accepted(trait)}")
    return request


def near_values(trait: str, label: str) -> tuple[str, ...]:
    """The readings that do not contradict a wanted class ``label`` of ``trait``: an age group
    and its neighbours (a witness's description is no closer than a decade), a hair
    colour, its neighbours and ``unsure`` (hidden hair contradicts no colour); else the label."""
    if trait == "age_group":
        i = AGE_GROUPS.index(label)
        return tuple(AGE_GROUPS[max(i - 1, 0):i + 2])
    if trait == "hair":
        i = HAIR_COLOURS.index(label)
        return (*HAIR_COLOURS[max(i - 1, 0):i + 2], UNSURE)
    return (label,)


def near_read_age(reading: dict) -> tuple[str, ...]:
    """The age groups that do not contradict a *read* age: the read decade and the neighbour
    on the side where the rest of the reading's probability lies. A photo read as 20–29 with
    more of its probability above than below most likely shows someone of 20–39, so fillers
    of 10–19 would be two decades off as often as not. On held-out UTKFace adults this raised
    page-1 fillers within a decade of the labelled age from 80 % to 87 % (docs/model_card.md)."""
    i = AGE_GROUPS.index(reading["label"])
    p = [reading["p"].get(g, 0.0) for g in AGE_GROUPS]
    above, below = sum(p[i + 1:]), sum(p[:i])
    j = i + 1 if (above >= below and i + 1 < len(AGE_GROUPS)) or i == 0 else i - 1
    return tuple(AGE_GROUPS[k] for k in sorted((i, j)))


@dataclasses.dataclass(frozen=True)
class TraitMatch:
    """What every filler of a page must share, and where each wanted value came from."""

    spec: FilterSpec
    source: dict[str, str]  # trait → "suspect" (read from the suspect) or "request"
    suspect: dict[str, dict]  # the suspect's reading of each matched trait: {"label", "p"}

    def holds(self, reading: dict) -> bool:
        return matches(reading, self.spec)

    def contradicted(self, reading: dict) -> list[str]:
        """The matched traits that ``reading`` contradicts."""
        return [c.trait for c in self.spec.constraints if not c.holds(reading)]

    def shortfall_warning(self, kept: int, wanted: int, candidates: int,
                          rejections: Mapping[str, int]) -> str:
        """Why a page has only ``kept`` of ``wanted`` fillers, naming the traits that left
        out most candidates (``rejections``: trait → candidates it contradicted), so the
        administrator knows which one to relax."""
        accepted = {t: v["accepted"] for t, v in self.describe().items()}
        words = {t: ("yes" if v else "no") if isinstance(v, bool) else "/".join(v)
                 for t, v in accepted.items()}
        worst = sorted(rejections.items(), key=lambda item: -item[1])
        named = ", ".join(f"{trait.replace('_', ' ')} ({words[trait]}) by {count}"
                          for trait, count in worst if count)
        first = worst[0][0] if worst and worst[0][1] else None
        advice = (f"relax {first.replace('_', ' ')} (set it to 'any') for a full page"
                  if first else "relax a trait (set it to 'any') for a full page")
        return (f"only {kept} of {wanted} fillers share the suspect's traits after "
                f"{candidates} candidates" + (f"; left out: {named}" if named else "")
                + f"; {advice}")

    def describe(self) -> dict[str, Any]:
        """JSON-ready: per matched trait the accepted values and their source."""
        out: dict[str, Any] = {}
        for c in self.spec.constraints:
            out[c.trait] = {"accepted": sorted(c.values) if c.values is not None else c.present,
                            "source": self.source[c.trait],
                            "suspect": self.suspect.get(c.trait, {}).get("label")}
        return out

    def record(self, reading: dict) -> dict[str, Any]:
        """What a filler's record keeps: per matched trait the accepted values, their source,
        the filler's reading and how sure the model was of it."""
        out = self.describe()
        for trait, entry in out.items():
            read = reading[trait]
            p = read["p"][read["label"]] if isinstance(read["p"], dict) else \
                (read["p"] if read["label"] else 1.0 - read["p"])
            entry.update(read=read["label"], p=round(float(p), 4))
        return out


def trait_match(suspect_reading: dict | None,
                request: Mapping[str, str | bool] | None) -> TraitMatch | None:
    """The constraints of a page: the request's values, ``auto`` ones from the suspect's
    reading (:func:`near_values`). None when nothing is matched (request None, every trait
    ``any``), or when ``auto`` traits are asked but there is no reading (no attribute model).
    An ``auto`` trait the reading lacks (a record read before the trait was) or reads
    ``unsure`` is not matched."""
    if request is None:
        return None
    constraints, source = [], {}
    for trait in MATCHED_TRAITS:
        wanted = request.get(trait, AUTO)
        if wanted == ANY:
            continue
        if wanted == AUTO:
            if suspect_reading is None or trait not in suspect_reading or \
                    suspect_reading[trait]["label"] == UNSURE:
                continue
            wanted, source[trait] = suspect_reading[trait]["label"], "suspect"
        else:
            source[trait] = "request"
        if trait in BINARY_TRAITS:
            constraints.append(Constraint(trait, present=bool(wanted)))
        else:
            allowed = near_read_age(suspect_reading[trait]) \
                if trait == "age_group" and source[trait] == "suspect" \
                else near_values(trait, wanted)
            constraints.append(Constraint(trait, values=frozenset(allowed)))
    if not constraints:
        return None
    suspect = {t: suspect_reading[t] for t in source} if suspect_reading else {}
    text = ", ".join(f"{t}={request.get(t, AUTO)}" for t in MATCHED_TRAITS)
    return TraitMatch(FilterSpec(text, tuple(constraints)), source, suspect)


def read_traits(bundle, images: np.ndarray) -> list[dict] | None:
    """The attribute model's readings of aligned faces, or None when the bundle has none."""
    from models.attributes.model import ATTRIBUTES_PART, predict_attributes

    if not bundle.has_part(ATTRIBUTES_PART) or not len(images):
        return None
    return predict_attributes(bundle, images)


def suspect_reading(bundle, record, face_image: np.ndarray) -> dict | None:
    """The suspect's traits: its photo's reading when the record keeps one, else the reading
    of the face itself (a generated suspect); None without an attribute model."""
    kept = record.parameters.get(PHOTO_ATTRIBUTES) if record is not None else None
    if kept:
        return kept
    readings = read_traits(bundle, face_image[None])
    return readings[0] if readings else None
