"""Simulated mock witnesses: a quick, labelled-as-simulation check of a lineup while it is built.

Real mock witnesses (``models.fairness``, the web UI's mock-witness tests) are the evidence.
Before anyone is asked, two simulated witnesses tell the administrator where a lineup is heading:

* the **description witness** knows only the culprit's description (gender, ethnicity, age
  group, hair colour, beard, glasses) and picks the member whose traits, as the attribute model
  read them, fit it best: member *i* is chosen with probability ∝ exp(β · fitᵢ), fitᵢ the mean
  probability that the member has each described trait (as the fillers' matching reads it: ages
  within a decade, neighbouring hair colours and unseen hair count). A suspect who alone fits
  the description is chosen by nearly every such witness;
* the **resemblance witness** remembers someone who looks like the suspect: a copy at identity
  distance ``memory_noise`` from the suspect in a random direction. In the 128-D identity space a
  random offset is nearly orthogonal to every member's offset from the suspect, so the memory is
  at √(dᵢ² + r²) from a filler at distance dᵢ and at r from the suspect; the witness picks by the
  Luce rule, probability ∝ exp(−distance / τ). Fillers far from the suspect are never chosen,
  which lowers the lineup's effective size.

Both draw ``n`` witnesses with a fixed seed and report the measures of ``models.fairness`` on
their choices, plus the members that stand out (a trait that contradicts the description, a
near-clone of the suspect, or much farther from the suspect than the other fillers).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from models.fairness import analyse_counts
from models.faces.identity import SAME_PERSON_THRESHOLD
from models.attributes.heads import BINARY_TRAITS, READ_CLASSES, UNSURE
from models.filler_traits import MATCHED_TRAITS, near_values

SIMULATION_LABEL = ("Simulation, not evidence: simulated witnesses stand in for people only to "
                    "warn while the lineup is built.")
DEFAULT_WITNESSES = 200
DESCRIPTION_RATIONALITY = 8.0   # β: how strongly a better fit draws the description witness
MEMORY_NOISE = 0.45             # r: the remembered face's distance from the suspect
RESEMBLANCE_TEMPERATURE = 0.05  # τ: decision noise of the resemblance witness
NEAR_CLONE = 0.40               # a filler closer than this to the suspect is a near-clone
FAR_FACTOR = 1.35               # a filler farther than this × the fillers' median stands out


@dataclasses.dataclass(frozen=True)
class SimMember:
    """A member as the simulation sees it: ``distance`` to the suspect's photo (0 for the
    suspect; None when unknown) and ``reading`` (trait → ``{"label", "p"}``: ``p`` the
    probability of each label, or of the trait being present; None when not read)."""

    position: int
    role: str
    distance: float | None
    reading: Mapping[str, Any] | None


def trait_probability(entry: Mapping[str, Any], trait: str, wanted: Any) -> float:
    """How likely a member has ``wanted`` for ``trait`` by its reading ``entry``: for yes/no
    traits ``p`` is the probability of the trait being present; for the others ``p`` maps each
    label to its probability, or is the read label's alone (the rest shared evenly among the
    other labels). What does not contradict the wanted value counts
    (:func:`models.filler_traits.near_values`)."""
    label, p = entry.get("label"), entry.get("p")
    if trait in BINARY_TRAITS:
        return float(p) if bool(wanted) else 1.0 - float(p)
    wanted = str(wanted)
    known = wanted in READ_CLASSES.get(trait, ()) and wanted != UNSURE
    accepted = near_values(trait, wanted) if known else (wanted,)
    if isinstance(p, Mapping):
        return float(min(1.0, sum(float(p.get(v, 0.0)) for v in accepted)))
    share = (1.0 - float(p)) / max(len(READ_CLASSES.get(trait, ())) - 1, 1)
    return float(min(1.0, sum(float(p) if v == label else share for v in accepted)))


def description_fit(reading: Mapping[str, Any] | None,
                    description: Mapping[str, Any]) -> float | None:
    """The mean probability that a member has each described trait (None: nothing to compare)."""
    if not reading:
        return None
    probs = [trait_probability(reading[t], t, v) for t, v in description.items()
             if t in MATCHED_TRAITS and t in reading]
    return float(np.mean(probs)) if probs else None


def simulate(members: Sequence[SimMember], description: Mapping[str, Any], *,
             n: int = DEFAULT_WITNESSES, seed: int = 0) -> dict[str, Any]:
    """Both simulated witnesses' measures (None where the data are missing) and the members
    that stand out. ``description``: trait → value (e.g. ``{"gender": "female"}``)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    positions = [m.position for m in members]
    if sorted(positions) != list(range(1, len(members) + 1)):
        raise ValueError(f"positions must be 1…{len(members)}, got {positions}")
    suspects = [m.position for m in members if m.role == "suspect"]
    if len(suspects) != 1:
        raise ValueError("a lineup has exactly one suspect")
    ordered = sorted(members, key=lambda m: m.position)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"simulation": SIMULATION_LABEL, "n": n, "seed": seed,
                           "description": dict(description)}
    fits = [description_fit(m.reading, description) for m in ordered]
    if description and all(f is not None for f in fits):
        probs = _softmax(DESCRIPTION_RATIONALITY * np.array(fits))
        out["description_witness"] = _measures(rng.multinomial(n, probs), suspects[0], probs,
                                               seed)
    else:
        out["description_witness"] = None
    distances = [m.distance for m in ordered]
    if all(d is not None for d in distances):
        d = np.array(distances, np.float64)
        remembered = np.sqrt(d ** 2 + MEMORY_NOISE ** 2)
        probs = _softmax(-remembered / RESEMBLANCE_TEMPERATURE)
        out["resemblance_witness"] = _measures(rng.multinomial(n, probs), suspects[0], probs,
                                               seed)
    else:
        out["resemblance_witness"] = None
    out["stand_out"] = stand_out(ordered, description, fits)
    return out


def stand_out(members: Sequence[SimMember], description: Mapping[str, Any],
              fits: Sequence[float | None] | None = None) -> list[dict[str, Any]]:
    """Members that stand out, each ``{"position", "role", "reason", "message"}``: a filler
    whose reading contradicts a described trait (below 50 %), a near-clone of the suspect, a
    filler much farther from the suspect than the others; the suspect when it alone fits."""
    found = []
    fillers = [m for m in members if m.role == "filler"]
    far = [m.distance for m in fillers if m.distance is not None]
    median = float(np.median(far)) if far else None
    for m in members:
        if m.role != "filler":
            continue
        for trait, wanted in description.items():
            if m.reading and trait in m.reading and trait in MATCHED_TRAITS and \
                    trait_probability(m.reading[trait], trait, wanted) < 0.5:
                found.append(_flag(m, "trait", f"Member {m.position} does not fit the "
                                   f"description's {trait.replace('_', ' ')} ({_say(wanted)})."))
        if m.distance is not None and m.distance < NEAR_CLONE:
            found.append(_flag(m, "near-clone", f"Member {m.position} is a near-clone of the "
                               f"suspect (identity distance {m.distance:.2f} < {NEAR_CLONE})."))
        elif m.distance is not None and median and len(far) >= 3 and \
                m.distance > FAR_FACTOR * median and m.distance > SAME_PERSON_THRESHOLD:
            found.append(_flag(m, "far", f"Member {m.position} looks much less like the suspect "
                               f"than the other fillers (distance {m.distance:.2f}, median "
                               f"{median:.2f})."))
    if fits is not None and all(f is not None for f in fits) and description:
        suspect = next(i for i, m in enumerate(members) if m.role == "suspect")
        best_filler = max(f for i, f in enumerate(fits) if i != suspect)
        if fits[suspect] - best_filler > 0.25:
            m = members[suspect]
            found.insert(0, _flag(m, "only-fit", f"Member {m.position} (the suspect) is the only "
                                  "one who fits the description well."))
    return found


def _measures(counts: np.ndarray, suspect_position: int, probs: np.ndarray,
              seed: int) -> dict[str, Any]:
    result = analyse_counts([int(c) for c in counts], suspect_position, bootstrap=0,
                            seed=seed).to_dict()
    result["choice_probabilities"] = [round(float(p), 4) for p in probs]
    return result


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _flag(m: SimMember, reason: str, message: str) -> dict[str, Any]:
    return {"position": m.position, "role": m.role, "reason": reason, "message": message}


def _say(value: Any) -> str:
    return ("with" if value else "without") if isinstance(value, bool) else str(value)

