"""Simulated mock witnesses (models/simulated_witnesses.py): who they pick, the measures of their
choices, and the members that stand out."""
from __future__ import annotations

import pytest

from models.simulated_witnesses import (SIMULATION_LABEL, SimMember, simulate, stand_out,
                                        trait_probability)


def reading(gender: str, p: float = 0.95, age: str = "30-39") -> dict:
    other = "male" if gender == "female" else "female"
    return {"gender": {"label": gender, "p": {gender: p, other: 1 - p}},
            "age_group": {"label": age, "p": {age: 0.8, "20-29": 0.1, "40-49": 0.1}},
            "beard": {"label": False, "p": 0.1}}


def members(fillers: list[tuple[float | None, dict | None]], suspect: dict | None) -> list:
    return [SimMember(1, "suspect", 0.0, suspect)] + [
        SimMember(i + 2, "filler", d, r) for i, (d, r) in enumerate(fillers)]


def test_trait_probabilities_from_full_and_label_only_readings():
    r = reading("female", 0.9)
    assert trait_probability(r["gender"], "gender", "female") == pytest.approx(0.9)
    assert trait_probability(r["gender"], "gender", "male") == pytest.approx(0.1)
    # An age within a decade of the described one counts.
    assert trait_probability(r["age_group"], "age_group", "40-49") == pytest.approx(0.9)
    assert trait_probability(r["age_group"], "age_group", "60-69") == pytest.approx(0.0)
    assert trait_probability(r["beard"], "beard", True) == pytest.approx(0.1)
    assert trait_probability(r["beard"], "beard", False) == pytest.approx(0.9)
    # Only the read label's probability kept: the rest is shared by the other labels.
    label_only = {"label": "white", "p": 0.6}
    assert trait_probability(label_only, "ethnicity", "white") == pytest.approx(0.6)
    assert trait_probability(label_only, "ethnicity", "asian") == pytest.approx(0.1)
    # Hair: the described colour, its neighbouring shades and unseen hair count, as in matching.
    hair = {"label": "black", "p": {"black": 0.6, "brown": 0.1, "blond": 0.05, "gray": 0.05,
                                    "unsure": 0.2}}
    assert trait_probability(hair, "hair", "brown") == pytest.approx(0.95)
    assert trait_probability(hair, "hair", "blond") == pytest.approx(0.4)
    assert trait_probability(hair, "hair", "gray") == pytest.approx(0.3)


def test_a_suspect_who_alone_fits_the_description_is_picked_by_description_witnesses():
    lineup = members([(0.5, reading("male"))] * 5, reading("female"))
    out = simulate(lineup, {"gender": "female"}, n=300, seed=1)
    assert out["simulation"] == SIMULATION_LABEL and out["n"] == 300
    d = out["description_witness"]
    assert d["counts"][0] > 250 and sum(d["counts"]) == 300
    assert d["tredoux_e"] < 1.5 and d["bias"] == "against suspect"
    reasons = [(f["position"], f["reason"]) for f in out["stand_out"]]
    assert reasons[0] == (1, "only-fit")
    assert {p for p, r in reasons if r == "trait"} == {2, 3, 4, 5, 6}


def test_members_who_all_fit_share_the_choices():
    lineup = members([(0.5, reading("female"))] * 5, reading("female"))
    out = simulate(lineup, {"gender": "female", "age_group": "30-39"}, n=600, seed=2)
    d = out["description_witness"]
    assert d["choice_probabilities"] == [pytest.approx(1 / 6, abs=1e-3)] * 6
    assert d["tredoux_e"] > 5 and d["bias"] == "none"
    assert [f for f in out["stand_out"] if f["reason"] in ("trait", "only-fit")] == []
    # Same seed, same choices.
    assert simulate(lineup, {"gender": "female"}, n=600, seed=2)["description_witness"][
        "counts"] == simulate(lineup, {"gender": "female"}, n=600, seed=2)[
        "description_witness"]["counts"]


def test_resemblance_witnesses_avoid_far_fillers_and_near_clones_are_named():
    lineup = members([(0.30, None), (0.50, None), (0.52, None), (0.55, None), (0.95, None)],
                     None)
    out = simulate(lineup, {}, n=500, seed=3)
    assert out["description_witness"] is None  # no readings, no description
    r = out["resemblance_witness"]
    probs = r["choice_probabilities"]
    assert probs[0] == max(probs) and probs[1] > probs[2] > probs[4]
    assert probs[5] < 0.01  # the far filler is practically never chosen
    flags = {(f["position"], f["reason"]) for f in out["stand_out"]}
    assert flags == {(2, "near-clone"), (6, "far")}
    assert "near-clone of the suspect (identity distance 0.30" in next(
        f["message"] for f in out["stand_out"] if f["reason"] == "near-clone")


def test_unknown_distances_leave_out_the_resemblance_witness():
    out = simulate(members([(None, reading("female"))] * 3, reading("female")),
                   {"gender": "female"}, n=10)
    assert out["resemblance_witness"] is None and out["description_witness"]["n"] == 10


def test_a_lineup_has_one_suspect_and_positions_from_one():
    two = [SimMember(1, "suspect", 0.0, None), SimMember(2, "suspect", 0.5, None)]
    with pytest.raises(ValueError, match="exactly one suspect"):
        simulate(two, {})
    with pytest.raises(ValueError, match="positions must be 1…2"):
        simulate([SimMember(1, "suspect", 0.0, None), SimMember(3, "filler", 0.5, None)], {})
    with pytest.raises(ValueError, match="n must be at least 1"):
        simulate(members([(0.5, None)], None), {}, n=0)
    assert stand_out(members([(0.5, None)], None), {}) == []
