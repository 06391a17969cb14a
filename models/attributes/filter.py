"""Attribute filters ("men, 40-49, beard, no glasses, not smiling") and generating faces that
match one.

A filter is a comma-separated list of phrases, all of which must hold (AND). Each phrase is a
gender (``men``/``women``), an age group or a range of whole decades (``40-49``, ``30-49``,
``40s``, ``70+``), an ethnicity group (``white``, ``black``, ``asian``, ``indian``, ``other
ethnicity``) or a binary trait, optionally negated with ``no``/``not``/``without``
(``beard``, ``no glasses``, ``not smiling``, ``blond hair``, ``pale skin``, ``young``) or a
head pose (``frontal``, ``facing left``, ``facing right``; landmark-based, rejection only).
Unknown words, age ranges that cut a decade group, and contradictions are errors that say what
is accepted.

:func:`generate_matching` samples faces until ``n`` match. *Guided*: many latents are drawn
and mapped to W (cheap, no image), ranked by the fitted boundaries' joint estimate that they
meet every constraint, and only the best are rendered and checked by the classifier — so every
accepted face matches per the classifier just as in blind rejection. Optionally each chosen w
is also pushed ``margin`` spreads beyond every boundary
(``w += max(0, margin·scale − s·(n·w + b)) · s·n``, ``s = ±1``, a few rounds since the
boundaries are not orthogonal). *Blind*: plain sampling and rejection. Both count every
rendered candidate.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np

from models.attributes.heads import AGE_GROUPS, READ_CLASSES
from models.conditioning import bundle_traits, draw_labels

GENDER_WORDS = {"men": "male", "man": "male", "male": "male", "males": "male",
                "women": "female", "woman": "female", "female": "female", "females": "female"}
ETHNICITY_WORDS = {"white": "white", "black": "black", "asian": "asian", "indian": "indian",
                   "other ethnicity": "other", "ethnicity other": "other"}
TRAIT_WORDS = {
    "beard": "beard", "bearded": "beard", "glasses": "glasses", "eyeglasses": "glasses",
    "smiling": "smiling", "smile": "smiling", "black hair": "black_hair",
    "black-haired": "black_hair", "blond hair": "blond_hair", "blonde hair": "blond_hair",
    "blond": "blond_hair", "blonde": "blond_hair", "brown hair": "brown_hair",
    "gray hair": "gray_hair", "grey hair": "gray_hair", "pale skin": "pale_skin",
    "pale": "pale_skin", "young": "young",
}
POSE_WORDS = {"frontal": "frontal", "facing front": "frontal", "facing left": "left",
              "turned left": "left", "facing right": "right", "turned right": "right"}
NEGATIONS = ("not ", "no ", "without ", "non-", "non ")
_AGE_RANGE = re.compile(r"^(?:age[sd]?\s+)?(\d+)\s*(?:-|–|to)\s*(\d+)$")
_AGE_DECADE = re.compile(r"^(?:age[sd]?\s+)?(\d+)s$")
_AGE_PLUS = re.compile(r"^(?:age[sd]?\s+)?(\d+)\s*\+$")


class FilterError(ValueError):
    """A filter phrase cannot be understood; the message names it and what is accepted."""


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``trait`` must have a label in ``values`` (class traits) or equal ``present`` (binary)."""

    trait: str
    values: frozenset[str] | None = None
    present: bool | None = None

    def holds(self, prediction: dict[str, Any]) -> bool:
        label = prediction[self.trait]["label"]
        return label in self.values if self.values is not None else bool(label) == self.present

    def describe(self) -> str:
        if self.values is not None:
            return f"{self.trait} in {{{', '.join(sorted(self.values))}}}"
        return f"{'' if self.present else 'not '}{self.trait}"


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    text: str
    constraints: tuple[Constraint, ...]

    def describe(self) -> str:
        return ", ".join(c.describe() for c in self.constraints)


def _age_groups(lo: int, hi: int | None, phrase: str) -> frozenset[str]:
    """Inclusive years lo–hi (hi None: lo and older) → whole age groups, or an error."""
    last = 10 * (len(AGE_GROUPS) - 1)  # 70: the open group
    if lo % 10 or lo > last:
        raise FilterError(f"age {phrase!r}: ranges must start at a decade from 0 to {last} "
                          f"(groups: {', '.join(AGE_GROUPS)})")
    if hi is None:
        return frozenset(AGE_GROUPS[lo // 10:])
    if hi < lo:
        raise FilterError(f"age {phrase!r}: the end is before the start")
    if hi < last and hi % 10 != 9:
        raise FilterError(f"age {phrase!r}: ranges must end at a decade's last year (…9) so "
                          f"they cover whole groups ({', '.join(AGE_GROUPS)})")
    return frozenset(AGE_GROUPS[lo // 10:min(hi, last) // 10 + 1])


# Plain wording ("a man with a beard, wearing glasses, who is smiling") → the phrases below:
# these words separate phrases, or start a negated one.
_SEPARATORS = re.compile(r"\b(?:with|who is|who are|who has|who have|having|has|have|wearing|"
                         r"wears|in (?:his|her|their))\b")
_WITHOUT = re.compile(r"\bwithout\b")
_FILLER_WORDS = {"a", "an", "the", "some", "any", "people", "person", "persons", "faces", "face"}


def _plain(text: str) -> str:
    """Plain wording as comma-separated phrases: "man with beard" → "man, beard", "woman
    without glasses" → "woman, without glasses"."""
    text = _WITHOUT.sub(", without ", text.lower())
    return _SEPARATORS.sub(",", text)


def _split_noun(phrase: str) -> list[str]:
    """Adjectives before a gender noun are phrases of their own: "asian man" → "asian", "man";
    "smiling young women" → "smiling young", "women" (read again below)."""
    words = phrase.split()
    if len(words) > 1 and words[-1] in GENDER_WORDS:
        rest = [w for w in words[:-1] if w not in _FILLER_WORDS]
        if not rest:
            return [words[-1]]
        if rest[0] in ("no", "not", "non", "without"):  # "no men": refused whole, below
            return [phrase]
        head = " ".join(rest)
        # several adjectives ("smiling young") are several phrases unless they are one known
        # phrase ("black hair", "pale skin")
        pieces = [head] if _singular(head) in TRAIT_WORDS or head in ETHNICITY_WORDS else rest
        return pieces + [words[-1]]
    return [phrase]


def _known_phrases() -> list[str]:
    return sorted(set(GENDER_WORDS) | set(ETHNICITY_WORDS) | set(TRAIT_WORDS) | set(POSE_WORDS)
                  | {"clean-shaven", "old"})


def _singular(p: str) -> str:
    """``beards`` → ``beard`` when only the plural is unknown (men/women are known words)."""
    if p in TRAIT_WORDS or p in GENDER_WORDS or p in ETHNICITY_WORDS:
        return p
    for cut in ("es", "s"):
        if p.endswith(cut) and (p[:-len(cut)] in TRAIT_WORDS or p[:-len(cut)] in ETHNICITY_WORDS):
            return p[:-len(cut)]
    return p


def _parse_phrase(phrase: str) -> Constraint:
    words = phrase.lower().split()
    while len(words) > 1 and words[0] in _FILLER_WORDS:
        words = words[1:]
    words = [w for i, w in enumerate(words) if i == 0 or w not in ("a", "an", "the")]
    p = " ".join(words)
    if p in _FILLER_WORDS:
        raise FilterError(f"{phrase.strip()!r} says nothing about the faces; name a trait, "
                          f"e.g. 'women, 20-29, no glasses'")
    p = _singular(p)
    if p in GENDER_WORDS:
        return Constraint("gender", values=frozenset([GENDER_WORDS[p]]))
    if p in POSE_WORDS:
        return Constraint("head_pose", values=frozenset([POSE_WORDS[p]]))
    if p in ETHNICITY_WORDS:
        return Constraint("ethnicity", values=frozenset([ETHNICITY_WORDS[p]]))
    if m := _AGE_RANGE.match(p):
        return Constraint("age_group", values=_age_groups(int(m[1]), int(m[2]), phrase))
    if m := _AGE_DECADE.match(p):
        return Constraint("age_group", values=_age_groups(int(m[1]), int(m[1]) + 9, phrase))
    if m := _AGE_PLUS.match(p):
        return Constraint("age_group", values=_age_groups(int(m[1]), None, phrase))
    present = True
    for neg in NEGATIONS:
        if p.startswith(neg):
            p, present = p[len(neg):].strip(), False
            break
    if p == "clean-shaven" or p == "clean shaven":
        return Constraint("beard", present=not present)
    if p == "old" and present:
        return Constraint("young", present=False)
    p = _singular(p)
    if p in TRAIT_WORDS:
        return Constraint(TRAIT_WORDS[p], present=present)
    import difflib

    near = difflib.get_close_matches(p, _known_phrases(), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise FilterError(
        f"unknown filter phrase {phrase.strip()!r}; {hint}use men/women, an age group like 40-49, "
        f"30-49, 40s or 70+, an ethnicity ({', '.join(sorted(set(ETHNICITY_WORDS)))}) or a "
        f"trait ({', '.join(sorted(set(TRAIT_WORDS)))}), optionally with no/not/without, or a "
        f"head pose ({', '.join(sorted(POSE_WORDS))})")


def parse_filter(text: str) -> FilterSpec:
    """Comma-separated phrases (``and`` also separates) → a :class:`FilterSpec`."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("the filter is empty; say what faces you want, e.g. "
                          "'women, 20-29, no glasses'")
    phrases = [q for p in re.split(r",|;|\band\b", _plain(text)) for q in _split_noun(p)
               if q.strip()]
    by_trait: dict[str, Constraint] = {}
    for phrase in phrases:
        c = _parse_phrase(phrase)
        if c.trait in by_trait and by_trait[c.trait] != c:
            raise FilterError(f"{c.trait.replace('_', ' ')} is asked for twice with different "
                              f"values ({by_trait[c.trait].describe()} and {c.describe()}); "
                              f"keep one")
        by_trait[c.trait] = c
    return FilterSpec(text, tuple(by_trait.values()))


def matches(prediction: dict[str, Any], spec: FilterSpec) -> bool:
    """Whether one face's prediction (from :func:`predict_attributes`) satisfies every
    constraint."""
    missing = [c.trait for c in spec.constraints if c.trait not in prediction]
    if missing:
        hint = ("predict with head_pose=True" if missing == ["head_pose"]
                else "is it from predict_attributes?")
        raise ValueError(f"the prediction lacks {', '.join(missing)}; {hint}")
    return all(c.holds(prediction) for c in spec.constraints)


def filter_faces(predictions: list[dict[str, Any]], spec: FilterSpec) -> list[int]:
    """Indices of the faces whose predictions match ``spec``."""
    return [i for i, p in enumerate(predictions) if matches(p, spec)]


# -- generating matching faces -------------------------------------------------------------


@dataclasses.dataclass
class MatchResult:
    ws: np.ndarray            # [k, num_ws, w_dim] of the accepted faces (k ≤ n)
    images: np.ndarray        # uint8 [k, R, R, 3]
    predictions: list[dict]
    candidates: int           # faces rendered and classified
    guided: bool
    unguided: list[str]       # constraints no direction could guide (rejection only)
    latents_drawn: int = 0    # z mapped to W (guided: the pool the candidates were chosen from)
    labelled: list[str] = dataclasses.field(default_factory=list)  # constraints a conditional
    # generator was asked to draw through its labels (still checked by the classifier)

    @property
    def accepted(self) -> int:
        return len(self.predictions)

    @property
    def candidates_per_face(self) -> float:
        return self.candidates / self.accepted if self.accepted else math.inf


def guides_for(spec: FilterSpec, directions) -> tuple[list[tuple[str, list, float]], list[str]]:
    """Per constraint the directions that guide it: (trait, [(Direction, sign)], …)."""
    guides, unguided = [], []
    for c in spec.constraints:
        if c.trait == "head_pose":
            unguided.append(c.describe())  # landmark-based: no W direction, rejection only
        elif c.values is not None:
            keys = [f"{c.trait}={v}" for v in sorted(c.values)]
            found = [directions.items[k] for k in keys if k in directions.items]
            if len(c.values) == len(READ_CLASSES[c.trait]):
                continue  # every class allowed: nothing to guide or reject
            if found:
                guides.append((c.describe(), found, 1.0))
            else:
                unguided.append(c.describe())
        elif c.trait in directions.items:
            guides.append((c.describe(), [directions.items[c.trait]], 1.0 if c.present else -1.0))
        else:
            unguided.append(c.describe())
    return guides, unguided


def match_log_prob(w: np.ndarray, guides) -> np.ndarray:
    """Per w [N, w_dim] the boundaries' joint estimate (log) that it meets every guided
    constraint: the product over constraints, for a set of allowed classes the sum of their
    one-vs-rest probabilities (capped at 1)."""
    total = np.zeros(len(w))
    for _, dirs, sign in guides:
        p = np.stack([d.probability(w) for d in dirs], axis=1)
        p = np.minimum(p.sum(axis=1), 1.0) if sign > 0 else 1.0 - p[:, 0]
        total += np.log(np.clip(p, 1e-12, 1.0))
    return total


def guide_ws(w: np.ndarray, guides, margin: float, rounds: int = 3) -> np.ndarray:
    """Move w [N, w_dim] to ``margin``·scale on the wanted side of every guiding boundary.

    For a set of allowed classes each sample is steered toward the allowed class whose
    boundary it is already nearest to crossing (the least movement)."""
    w = np.array(w, np.float64)
    if margin <= 0:
        return w.astype(np.float32)
    for _ in range(rounds):
        for _, dirs, sign in guides:
            dist = np.stack([d.distance(w) for d in dirs], axis=1) * sign
            best = dist.argmax(axis=1)
            for j, d in enumerate(dirs):
                rows = best == j
                need = np.maximum(0.0, margin * d.scale - dist[rows, j])
                w[rows] += (need * sign)[:, None] * d.normal[None]
    return w.astype(np.float32)


def generate_matching(bundle, spec: FilterSpec, n: int, *, guided: bool = True,
                      max_candidates: int = 1000, psi: float = 1.0, pool: int = 64,
                      margin: float = 0.0, batch_size: int = 16, seed: int = 0) -> MatchResult:
    """Up to ``n`` faces that match ``spec`` per the classifier, trying at most
    ``max_candidates``; the result says how many candidates were rendered.

    Guided: for every batch of ``batch_size`` candidates, ``pool`` × as many latents are
    drawn and mapped to W (cheap: no image), ranked by the fitted boundaries' joint estimate
    that they match, and the best are rendered and classified; with ``margin`` > 0 they are
    also pushed to that margin beyond every boundary (off by default: pushed latents leave
    the sampled distribution and the classifier follows the boundaries less there)."""
    from models.attributes.directions import Directions
    from models.attributes.model import load_attribute_model, predict_attributes
    from models.images import to_uint8

    if not 1 <= n <= 10_000:
        raise ValueError(f"n must be from 1 to 10,000 faces, got {n}")
    if not 1 <= max_candidates <= 1_000_000:
        raise ValueError(f"max_candidates must be from 1 to 1,000,000, got {max_candidates}")
    if not 1 <= pool <= 10_000:
        raise ValueError(f"pool must be from 1 to 10,000 latents per candidate, got {pool}")
    if not (math.isfinite(margin) and 0.0 <= margin <= 5.0):
        raise ValueError(f"margin must be from 0 to 5 (units of each direction's spread), got "
                         f"{margin}")
    if not (math.isfinite(psi) and 0.0 < psi <= 2.0):
        raise ValueError(f"psi must be in (0, 2], got {psi}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    g = bundle.generator
    traits = bundle_traits(bundle.manifest, g.cfg.label_groups)
    # A conditional generator draws the groups a constraint allows directly, through its labels.
    allowed = {c.trait: c.values for c in spec.constraints
               if c.values is not None and c.trait in traits}
    model = load_attribute_model(bundle)
    guides, unguided = (guides_for(spec, Directions.from_bundle(bundle)) if guided
                        else ([], [c.describe() for c in spec.constraints]))
    wants_pose = any(c.trait == "head_pose" for c in spec.constraints)
    rng = np.random.default_rng(seed)
    ws_out, images_out, preds_out, tried, drawn = [], [], [], 0, 0
    while len(preds_out) < n and tried < max_candidates:
        k = min(batch_size, max_candidates - tried)
        m = k * pool if guides else k
        z = rng.standard_normal((m, g.cfg.z_dim)).astype(np.float32)
        labels = (draw_labels(traits, g.mapping.label_prior.numpy(), m, rng, allowed)
                  if traits else None)
        w = g.map_compiled(z, psi, reproducible=False, labels=labels).numpy()[:, 0]
        drawn += m
        if guides:
            w = guide_ws(w[np.argsort(-match_log_prob(w, guides), kind="stable")[:k]], guides,
                         margin)
        ws = np.repeat(w[:, None], g.num_ws, axis=1)
        # Classify the saved 8-bit image, so a record's stored prediction is what anyone gets
        # by rendering it again.
        images = to_uint8(g.synthesize(ws).numpy())
        preds = predict_attributes(model, images, head_pose=wants_pose)
        tried += k
        for i, p in enumerate(preds):
            if len(preds_out) < n and matches(p, spec):
                ws_out.append(ws[i])
                images_out.append(images[i])
                preds_out.append(p)
    res = bundle.resolution
    return MatchResult(
        ws=np.stack(ws_out) if ws_out else np.zeros((0, g.num_ws, g.cfg.w_dim), np.float32),
        images=np.stack(images_out) if images_out
        else np.zeros((0, res, res, 3), np.uint8),
        predictions=preds_out, candidates=tried, guided=guided, unguided=unguided,
        latents_drawn=drawn,
        labelled=[c.describe() for c in spec.constraints if c.trait in allowed])
