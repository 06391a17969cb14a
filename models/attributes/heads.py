"""The attribute vocabulary: which heads the model has, where their labels come from, and how
raw head outputs become the per-face predictions stored in face records.

Two kinds of head. *Class* heads (softmax) are trained on UTKFace: ``age_group`` (decades, 70+
last), ``gender`` and ``ethnicity`` (UTKFace's five groups). *Binary* heads (sigmoid) are
trained on CelebA attributes. A face's prediction is a dict of *traits*; every trait is
``{"label": ..., "p": ...}``: for class traits the label is a class name and ``p`` maps every
class to its probability; for binary traits the label is a bool and ``p`` the probability that
the trait is present. ``beard`` is reported as ``1 − No_Beard`` (CelebA's column is negative).
``gender`` combines the UTKFace head with CelebA's ``Male`` head (mean of the two p(male)), so
both datasets teach the one trait that both label. ``hair`` is read as a class trait from the four
CelebA hair heads (:func:`hair_distribution`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AGE_GROUPS = ("0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
GENDERS = ("male", "female")  # UTKFace: 0 male, 1 female
ETHNICITIES = ("white", "black", "asian", "indian", "other")  # UTKFace race 0–4

CLASS_HEADS: dict[str, tuple[str, ...]] = {
    "age_group": AGE_GROUPS, "gender": GENDERS, "ethnicity": ETHNICITIES,
}
# CelebA columns with a head of their own (trained only on CelebA faces).
CELEBA_HEADS = ("Male", "No_Beard", "Eyeglasses", "Smiling", "Black_Hair", "Blond_Hair",
                "Brown_Hair", "Gray_Hair", "Pale_Skin", "Young")
# Binary traits reported per face: trait → (CelebA column, whether the column is negated).
BINARY_TRAITS: dict[str, tuple[str, bool]] = {
    "beard": ("No_Beard", True), "glasses": ("Eyeglasses", False),
    "smiling": ("Smiling", False), "black_hair": ("Black_Hair", False),
    "blond_hair": ("Blond_Hair", False), "brown_hair": ("Brown_Hair", False),
    "gray_hair": ("Gray_Hair", False), "pale_skin": ("Pale_Skin", False),
    "young": ("Young", False),
}
#: Hair colours, darkest first (a colour's neighbours are the ones a reading or a witness may
#: confuse it with), and the hair trait's class for "no colour is likely".
HAIR_COLOURS = ("black", "brown", "blond", "gray")
UNSURE = "unsure"
HAIR_HEADS = ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair")  # in HAIR_COLOURS' order
#: Every trait a reading labels with one of several classes: the heads' and the derived ``hair``.
READ_CLASSES: dict[str, tuple[str, ...]] = {**CLASS_HEADS, "hair": (*HAIR_COLOURS, UNSURE)}
TRAITS = (*READ_CLASSES, *BINARY_TRAITS)


def hair_distribution(p_colours: np.ndarray) -> np.ndarray:
    """The four hair heads' probabilities [N, 4] (independent sigmoids) → a distribution over
    ``READ_CLASSES["hair"]`` [N, 5]: the colours keep their probabilities (scaled down where they
    sum past 1) and ``unsure`` takes what they leave: in a tight 64-px crop the hair is often out
    of sight, and bald heads or red hair have no CelebA column."""
    p = np.asarray(p_colours, np.float64)
    total = p.sum(axis=1, keepdims=True)
    colours = p / np.maximum(total, 1.0)
    return np.concatenate([colours, 1.0 - colours.sum(axis=1, keepdims=True)], axis=1)


#: Class traits whose classes are ordered: a reading names their median class (:func:`label_index`).
ORDERED_TRAITS = ("age_group",)


def label_index(trait: str, p: np.ndarray) -> np.ndarray | np.intp:
    """The class a reading of ``trait`` names, from its probabilities ``p`` [..., k].

    The most probable class, except for an ordered trait (:data:`ORDERED_TRAITS`): there the
    median class, where the cumulative probability first reaches one half. A flat age reading
    then names a middle decade instead of a stray peak at either end, and a reading's label is
    within one decade of the true age more often (docs/model_card.md, "Reading a photo's
    age")."""
    p = np.asarray(p, np.float64)
    if trait in ORDERED_TRAITS:
        half = 0.5 * p.sum(axis=-1, keepdims=True)
        return np.argmax(np.cumsum(p, axis=-1) >= half, axis=-1)
    return np.argmax(p, axis=-1)


def age_group(age: int) -> int:
    """Age in years → index into :data:`AGE_GROUPS`."""
    return min(max(int(age), 0) // 10, len(AGE_GROUPS) - 1)


@dataclass(frozen=True)
class HeadOutputs:
    """Raw probabilities of a batch: class heads [N, k] (softmax) and CelebA heads [N, 10]."""

    classes: dict[str, np.ndarray]
    celeba: np.ndarray

    def __len__(self) -> int:
        return len(self.celeba)

    def trait_scores(self) -> dict[str, np.ndarray]:
        """Per trait the probabilities a filter and the direction fitting use: [N, k] for class
        traits, [N] (probability present) for binary traits."""
        out = dict(self.classes)
        male = self.celeba[:, CELEBA_HEADS.index("Male")]
        p_male = 0.5 * (self.classes["gender"][:, 0] + male)
        out["gender"] = np.stack([p_male, 1.0 - p_male], axis=1)
        for trait, (column, negated) in BINARY_TRAITS.items():
            p = self.celeba[:, CELEBA_HEADS.index(column)]
            out[trait] = 1.0 - p if negated else p
        return out

    def to_dicts(self) -> list[dict]:
        """One JSON-ready prediction dict per face (see the module docstring)."""
        scores = self.trait_scores()
        scores["hair"] = hair_distribution(
            self.celeba[:, [CELEBA_HEADS.index(c) for c in HAIR_HEADS]])
        faces: list[dict] = []
        for i in range(len(self)):
            face: dict = {}
            for trait, names in READ_CLASSES.items():
                p = scores[trait][i]
                face[trait] = {"label": names[int(label_index(trait, p))],
                               "p": {n: round(float(v), 4) for n, v in zip(names, p)}}
            for trait in BINARY_TRAITS:
                p = float(scores[trait][i])
                face[trait] = {"label": p >= 0.5, "p": round(p, 4)}
            faces.append(face)
        return faces
