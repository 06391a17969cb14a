"""Fillers that share the suspect's traits: the request, the constraints, and real pages."""
from __future__ import annotations

import numpy as np
import pytest

from models.filler_traits import (MATCHED_TRAITS, PHOTO_ATTRIBUTES, TraitRequestError,
                                  parse_trait_request, read_traits, suspect_reading, trait_match)


def reading(gender="female", ethnicity="white", age="30-39", beard=False, glasses=False,
            hair="black"):
    """A prediction shaped like predict_attributes' (only the matched traits)."""
    def cls(label):
        return {"label": label, "p": {label: 0.9}}
    return {"gender": cls(gender), "ethnicity": cls(ethnicity), "age_group": cls(age),
            "hair": cls(hair), "beard": {"label": beard, "p": 0.8 if beard else 0.1},
            "glasses": {"label": glasses, "p": 0.7 if glasses else 0.2}}


@pytest.mark.parametrize("value,expected", [
    (None, {t: "auto" for t in MATCHED_TRAITS}),
    ("auto", {t: "auto" for t in MATCHED_TRAITS}),
    ("none", None),
    ({"gender": "Male", "beard": "no", "glasses": True},
     {"gender": "male", "ethnicity": "auto", "age_group": "auto", "hair": "auto", "beard": False,
      "glasses": True}),
    ("age_group=any, ethnicity=asian, hair=Blond",
     {"gender": "auto", "ethnicity": "asian", "age_group": "any", "hair": "blond",
      "beard": "auto", "glasses": "auto"}),
])
def test_trait_requests_from_the_api_and_the_command_line(value, expected):
    assert parse_trait_request(value) == expected


@pytest.mark.parametrize("value,message", [
    ({"hat": "red"}, "unknown trait 'hat'"),
    ({"hair": "red"}, "hair: 'red' is not accepted; use auto, any or one of black, brown, "
                      "blond, gray"),
    ({"hair": "unsure"}, "hair: 'unsure' is not accepted"),
    ({"gender": "robot"}, "gender: 'robot' is not accepted; use auto, any or one of male"),
    ({"age_group": "35"}, "one of 0-9"),
    ("gender", "is not trait=value"),
    (["gender"], "must be auto, none or an object"),
])
def test_a_request_that_cannot_be_understood_says_what_is_accepted(value, message):
    with pytest.raises(TraitRequestError, match=message):
        parse_trait_request(value)


def test_auto_traits_follow_the_suspect_and_age_allows_its_likelier_neighbour():
    suspect = reading(age="30-39", beard=True)
    suspect["age_group"]["p"] = {"20-29": 0.05, "30-39": 0.6, "40-49": 0.25, "50-59": 0.1}
    match = trait_match(suspect, parse_trait_request("auto"))
    assert match.holds(reading(age="40-49", beard=True))
    assert not match.holds(reading(age="20-29", beard=True))  # the reading leans older
    assert not match.holds(reading(age="50-59", beard=True))
    assert not match.holds(reading(age="30-39", beard=False))
    assert not match.holds(reading(gender="male", beard=True))
    described = match.describe()
    assert described["age_group"] == {"accepted": ["30-39", "40-49"],
                                      "source": "suspect", "suspect": "30-39"}
    assert described["beard"]["accepted"] is True
    kept = match.record(reading(age="40-49", beard=True))
    assert kept["age_group"]["read"] == "40-49" and kept["age_group"]["p"] == 0.9
    assert kept["beard"] == {"accepted": True, "source": "suspect", "suspect": True,
                             "read": True, "p": 0.8}
    assert kept["glasses"]["p"] == 0.8  # how sure the model is that there are none


@pytest.mark.parametrize("p, accepted", [
    ({"20-29": 0.3, "30-39": 0.4, "40-49": 0.3}, ["30-39", "40-49"]),  # a tie leans older
    ({"10-19": 0.35, "20-29": 0.4, "30-39": 0.25}, ["10-19", "20-29"]),
    ({"0-9": 0.9, "10-19": 0.0}, ["0-9", "10-19"]),  # the ends have one neighbour
    ({"60-69": 0.2, "70+": 0.8}, ["60-69", "70+"]),
])
def test_a_read_age_accepts_the_neighbour_the_reading_leans_to(p, accepted):
    from models.filler_traits import near_read_age

    label = max(p, key=p.get)
    assert list(near_read_age({"label": label, "p": p})) == accepted


def test_an_age_the_administrator_fixes_allows_one_decade_either_side():
    """A witness's description is read no closer than a decade either way."""
    match = trait_match(reading(age="30-39"), parse_trait_request("age_group=30-39"))
    assert match.describe()["age_group"]["accepted"] == ["20-29", "30-39", "40-49"]
    assert match.describe()["age_group"]["source"] == "request"


def test_hair_matches_neighbouring_shades_and_unseen_hair_contradicts_nothing():
    match = trait_match(reading(hair="black"), parse_trait_request("auto"))
    assert match.describe()["hair"] == {"accepted": ["black", "brown", "unsure"],
                                        "source": "suspect", "suspect": "black"}
    assert match.holds(reading(hair="brown")) and match.holds(reading(hair="unsure"))
    assert match.contradicted(reading(hair="blond")) == ["hair"]
    assert match.contradicted(reading(hair="gray")) == ["hair"]
    blond = trait_match(reading(hair="black"), parse_trait_request({"hair": "blond"}))
    assert blond.source["hair"] == "request"
    assert blond.describe()["hair"]["accepted"] == ["blond", "brown", "gray", "unsure"]
    assert not blond.holds(reading(hair="black"))
    # A suspect whose hair the crop hides, or a record read before hair was, matches no colour.
    for suspect in (reading(hair="unsure"), {k: v for k, v in reading().items() if k != "hair"}):
        unseen = trait_match(suspect, parse_trait_request("auto"))
        assert "hair" not in unseen.describe() and unseen.holds(reading(hair="gray"))


def test_the_api_specs_name_the_traits_and_values_that_the_code_matches():
    """docs/api: the backend's FillerTraits and the frontend's described Traits list exactly
    the matched traits and the values a request may fix them to."""
    from pathlib import Path

    import yaml

    from models.filler_traits import requestable_values

    docs = Path(__file__).resolve().parent.parent / "docs" / "api"
    backend = yaml.safe_load((docs / "backend.yaml").read_text())["components"]["schemas"]
    frontend = yaml.safe_load((docs / "frontend.yaml").read_text())["components"]["schemas"]
    fixed = backend["FillerTraits"]["oneOf"][1]["properties"]
    described = frontend["Traits"]["properties"]
    assert list(fixed) == list(described) == list(MATCHED_TRAITS)
    for trait in MATCHED_TRAITS:
        values = [str(v) for v in requestable_values(trait)]
        spec = fixed[trait]
        enum = spec["enum"] if "enum" in spec else spec["oneOf"][1]["enum"]
        assert enum == ["auto", "any", *values], trait
        assert [str(v) for v in described[trait]["enum"]] == values, trait


def test_overrides_and_relaxed_traits():
    match = trait_match(reading(gender="female"),
                        parse_trait_request({"gender": "male", "ethnicity": "any"}))
    assert match.source["gender"] == "request" and "ethnicity" not in match.source
    assert match.holds(reading(gender="male", ethnicity="black"))
    assert not match.holds(reading(gender="female"))
    everything_any = parse_trait_request({t: "any" for t in MATCHED_TRAITS})
    assert trait_match(reading(), everything_any) is None
    assert trait_match(reading(), None) is None
    # Without a reading (no attribute model) only the request's own values are matched.
    only = trait_match(None, parse_trait_request({"gender": "male"}))
    assert [c.trait for c in only.spec.constraints] == ["gender"]
    assert trait_match(None, parse_trait_request("auto")) is None


def test_a_short_page_names_the_trait_that_left_out_most_candidates():
    match = trait_match(reading(gender="male", ethnicity="white"), parse_trait_request("auto"))
    assert match.contradicted(reading(gender="female", ethnicity="white")) == ["gender"]
    assert set(match.contradicted(reading(gender="female", ethnicity="indian"))) == \
        {"gender", "ethnicity"}
    assert match.contradicted(reading(gender="male", ethnicity="white")) == []
    warning = match.shortfall_warning(3, 24, 300, {"ethnicity": 280, "gender": 9, "beard": 0,
                                                   "glasses": 2})
    assert warning.startswith("only 3 of 24 fillers share the suspect's traits after 300 "
                              "candidates")
    assert "ethnicity (white) by 280, gender (male) by 9, glasses (no) by 2" in warning
    assert "beard" not in warning
    assert warning.endswith("relax ethnicity (set it to 'any') for a full page")
    assert match.shortfall_warning(0, 24, 0, {}).endswith("relax a trait (set it to 'any') "
                                                          "for a full page")


def test_matched_pages_never_hold_a_filler_whose_reading_contradicts_a_trait(default_bundle):
    from models.fillers import filler_page
    from models.latent import LatentPCA

    g = default_bundle.generator
    center = g.map_compiled(np.random.default_rng(3).standard_normal(
        (1, g.cfg.z_dim)).astype(np.float32)).numpy()[0]
    pca = LatentPCA.from_bundle(default_bundle)
    from models.fillers import render

    suspect = suspect_reading(default_bundle, None, render(g, center[None])[0])
    other = "male" if suspect["gender"]["label"] == "female" else "female"
    for request in ("auto", {"gender": other, "age_group": "any"}):
        match = trait_match(suspect, parse_trait_request(request))
        page = filler_page(default_bundle, pca, center, per_page=4, seed=1, traits=match)
        assert page.traits == match.describe() and page.candidates >= len(page.records)
        assert sum(page.trait_rejections.values()) >= page.trait_rejected
        assert set(page.trait_rejections) <= set(match.describe())
        readings = read_traits(default_bundle, page.images)
        for record, got in zip(page.records, readings):
            assert match.holds(got), got
            assert record.parameters["traits"] == match.record(got)
        if request != "auto":
            assert {r["gender"]["label"] for r in readings} <= {other}
    plain = filler_page(default_bundle, pca, center, per_page=2, seed=1)
    assert plain.traits is None and "traits" not in plain.records[0].parameters


def test_a_photo_s_record_keeps_its_reading_for_later_pages(default_bundle):
    from models.inversion import invert_photo
    from tests.conftest import SHARED

    photo = SHARED / "faces" / "london" / "005_03.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} is absent (shared test photos)")
    inv = invert_photo(default_bundle, str(photo), steps=0)
    kept = inv.record.parameters[PHOTO_ATTRIBUTES]
    # the attribute model's reading, with gender, ethnicity and age group by the trait probe
    from models.attributes.identity_probe import load_trait_probe, read_photo
    from models.inversion import record_photo_identity

    assert load_trait_probe(default_bundle) is not None
    assert kept == read_photo(default_bundle, read_traits(default_bundle, inv.aligned[None])[0],
                              record_photo_identity(inv.record))
    # "More like this" starts from the record: the photo's reading, not the reconstruction's.
    assert suspect_reading(default_bundle, inv.record, np.zeros((64, 64, 3), np.uint8)) == kept
