"""The attribute vocabulary: which heads the model has, where their labels come from, and how
raw head outputs become the per-face predictions stored in face records.

Two kinds of head. *Class* heads (softmax) are trained on UTKFace: ``age_group`` (decades, 70+
last), ``gender`` and ``ethnicity`` (UTKFace's five groups). *Binary* heads (sigmoid) are
trained on CelebA attributes. A face's prediction is a dict of *traits*; every trait is
``{"label": ..., "p": ...}``: for class traits the label is a class name and ``p`` maps every
class to its probability; for binary traits the label is a bool and ``p`` the probability that
the trait is present. ``beard`` is reported as ``1 − No_Beard`` (CelebA's column is negative).
``gender`` combines the UTKFace head with CelebA's ``Male`` head (mean of the two p(male)), so
both datasets teach the one trait that both label.
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
TRAITS = (*CLASS_HEADS, *BINARY_TRAITS)


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
        faces: list[dict] = []
        for i in range(len(self)):
            face: dict = {}
            for trait, names in CLASS_HEADS.items():
                p = scores[trait][i]
                face[trait] = {"label": names[int(np.argmax(p))],
                               "p": {n: round(float(v), 4) for n, v in zip(names, p)}}
            for trait in BINARY_TRAITS:
                p = float(scores[trait][i])
                face[trait] = {"label": p >= 0.5, "p": round(p, 4)}
            faces.append(face)
        return faces
