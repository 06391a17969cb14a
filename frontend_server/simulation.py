"""The builder's live fairness panel: simulated mock witnesses on the lineup being built.

It reads only what the face records already hold (each filler's identity distance to the
suspect's photo and its trait reading, the suspect's photo reading kept by its inversion), so
an answer takes milliseconds and loads no model. ``models.simulated_witnesses`` does the
simulation; this module turns a lineup body into its members.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from frontend_server import faces as face_records
from frontend_server.errors import ApiError
from models.attributes.heads import BINARY_TRAITS
from models.filler_traits import (ANY, AUTO, MATCHED_TRAITS, PHOTO_ATTRIBUTES, TraitRequestError,
                                  parse_trait_request)
from models.simulated_witnesses import DEFAULT_WITNESSES, SimMember, simulate

MAX_WITNESSES = 10_000
#: What a simulated description names when the request gives none: the suspect's own reading.
DEFAULT_DESCRIBED = ("gender", "ethnicity", "age_group")


def simulate_lineup(lineup: dict, results_dir: Path, description: Any = None,
                    n: Any = None, as_shown: bool = False) -> dict[str, Any]:
    """The simulation of a validated lineup body (fillers may still be missing: at least one
    is needed). ``description``: trait → value (the suspect's reading of gender, ethnicity
    and age group when None); ``n``: simulated witnesses of each kind. Members are numbered
    suspect first, then the fillers in order; ``as_shown``: by their positions in the saved
    lineup instead (the suspect at ``suspect_position``, the fillers in the other places)."""
    n = DEFAULT_WITNESSES if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WITNESSES:
        raise ApiError(422, f"n must be a whole number from 1 to {MAX_WITNESSES}, got {n!r}.")
    if not lineup["fillers"]:
        raise ApiError(422, "Pick at least one filler before the simulated witnesses can "
                            "compare the members.")
    records = [face_records.find_record(results_dir, f["face_id"]) or {}
               for f in lineup["fillers"]]
    suspect_reading = _suspect_reading(lineup["suspect"], records, results_dir)
    described = _description(description, suspect_reading)
    count = len(records) + 1
    suspect_at = lineup["suspect_position"] if as_shown else 1
    places = [p for p in range(1, count + 1) if p != suspect_at]
    members = [SimMember(suspect_at, "suspect", 0.0, suspect_reading)] + [
        SimMember(place, "filler", _distance(rec), _filler_reading(rec))
        for place, rec in zip(places, records)]
    result = simulate(members, described, n=n)
    result["members"] = sorted([{"position": suspect_at, "role": "suspect", "face_id": None}] + [
        {"position": place, "role": "filler", "face_id": f["face_id"]}
        for place, f in zip(places, lineup["fillers"])], key=lambda m: m["position"])
    return result


def _description(value: Any, suspect_reading: dict | None) -> dict[str, Any]:
    if value is None:
        if not suspect_reading:
            return {}
        return {t: suspect_reading[t]["label"] for t in DEFAULT_DESCRIBED if t in suspect_reading}
    if not isinstance(value, dict):
        raise ApiError(422, "description must be an object of trait: value, e.g. "
                            "{\"gender\": \"female\", \"age_group\": \"30-39\"}.")
    try:
        request = parse_trait_request(value)
    except TraitRequestError as exc:
        raise ApiError(422, f"description: {exc}.") from None
    return {t: v for t, v in request.items() if v not in (AUTO, ANY)}


def _suspect_reading(suspect: dict, fillers: list[dict], results_dir: Path) -> dict | None:
    """The suspect photo's reading, kept by the inversion its fillers descend from (or by the
    suspect's own record when the suspect is a face of the session)."""
    candidates = [suspect.get("face_id")] + [p for rec in fillers
                                            for p in (rec.get("parents") or [])[:1]]
    for face_id in filter(None, candidates):
        record = face_records.find_record(results_dir, face_id) or {}
        reading = (record.get("parameters") or {}).get(PHOTO_ATTRIBUTES)
        if reading:
            return reading
    return None


def _distance(record: dict) -> float | None:
    value = (record.get("parameters") or {}).get("identity_distance")
    return float(value) if isinstance(value, (int, float)) else None


def _filler_reading(record: dict) -> dict | None:
    """A filler's kept trait reading (``parameters.traits``: per trait the read label and its
    probability) in the attribute model's format."""
    traits = (record.get("parameters") or {}).get("traits")
    if not isinstance(traits, dict):
        return None
    reading = {}
    for trait, entry in traits.items():
        if trait not in MATCHED_TRAITS or not isinstance(entry, dict) or "read" not in entry:
            continue
        label, p = entry["read"], float(entry.get("p", 1.0))
        reading[trait] = {"label": label,
                          "p": (p if label else 1.0 - p) if trait in BINARY_TRAITS else p}
    return reading or None
