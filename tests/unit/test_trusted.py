"""Models rebuilt from JSON validated before (shared/trusted.py) equal the validated models, for
every field of the profiles the matching service stores, for older JSON without the newer
fields, and for JSON as PostgreSQL's jsonb gives it back (keys reordered, spaces)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pydantic_core
import pytest
from pydantic import BaseModel

from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile, Supervisor
from shared.trusted import Trusted


def _student(**kw: Any) -> StudentProfile:
    base: dict[str, Any] = {
        "student_id": "s-1",
        "region": "SE-AB",
        "programme": "EE",
        "skills": ("wiring", "cad"),
        "preferences": ("p-1", "p-7"),
        "available_from": date(2027, 1, 11),
        "available_to": date(2027, 3, 19),
        "home": GeoPoint(lat=59.3, lon=18.0),
        "max_travel_km": 40.5,
        "priority": 2,
    }
    return StudentProfile.model_validate({**base, **kw}, strict=False)


TEACHER = _student(
    student_id="t-1",
    participant="teacher",
    subject="Electrical installation",
    available_weeks=("2027-W10", "2027-W11"),
    home=None,
    max_travel_km=None,
)
OFFER = PlacementOffer.model_validate(
    {
        "placement_id": "p-1",
        "company_id": "c-1",
        "region": "SE-AB",
        "capacity": 3,
        "title": "Electrician apprentice — Umeå",
        "required_skills": ("wiring",),
        "programmes": ("EE", "IN"),
        "starts_on": date(2027, 1, 18),
        "ends_on": date(2027, 3, 12),
        "site": GeoPoint(lat=63.8, lon=20.3),
        "supervisor": Supervisor(name="Anna Berg", email="anna@example.se", language="fi"),
        "ranking": ("s-2", "s-1"),
    },
    strict=False,
)
BARE_OFFER = PlacementOffer(placement_id="p-2", company_id="c-2", region="SE-AB", capacity=1)


@pytest.mark.parametrize(
    "model", [_student(), TEACHER, _student(home=None, programme=None), OFFER, BARE_OFFER]
)
def test_a_stored_model_comes_back_equal_to_the_validated_one(model: BaseModel) -> None:
    cls = type(model)
    text = model.model_dump_json()
    loaded = Trusted(cls).load(text)
    assert loaded == cls.model_validate_json(text)
    assert type(loaded) is cls
    assert loaded.model_dump_json() == text  # it serialises as the original
    assert loaded.model_fields_set == cls.model_validate_json(text).model_fields_set


def test_json_as_jsonb_gives_it_back_loads_the_same() -> None:
    text = OFFER.model_dump_json()
    reordered = json.dumps(dict(sorted(json.loads(text).items(), reverse=True)), indent=1)
    assert Trusted(PlacementOffer).load(reordered) == OFFER
    assert Trusted(PlacementOffer).load(reordered.encode()) == OFFER


def test_older_json_gets_the_defaults_of_the_fields_it_lacks() -> None:
    old = json.loads(_student().model_dump_json())
    for newer in ("participant", "subject", "available_weeks", "priority"):
        del old[newer]
    loaded = Trusted(StudentProfile).load(json.dumps(old))
    assert loaded == StudentProfile.model_validate_json(json.dumps(old))
    assert (loaded.participant, loaded.available_weeks, loaded.priority) == ("student", (), 0)
    assert "participant" not in loaded.model_fields_set


def test_a_field_the_model_no_longer_has_is_left_out_and_a_missing_required_one_refused() -> None:
    stored = json.loads(BARE_OFFER.model_dump_json())
    assert Trusted(PlacementOffer).load(json.dumps({**stored, "gone": 1})) == BARE_OFFER
    del stored["capacity"]
    with pytest.raises(ValueError, match="capacity"):
        Trusted(PlacementOffer).load(json.dumps(stored))


def test_a_float_written_as_an_integer_is_a_float() -> None:
    stored = json.loads(_student().model_dump_json())
    stored["max_travel_km"] = 40
    stored["home"] = {"lat": 59, "lon": 18}
    loaded = Trusted(StudentProfile).load(json.dumps(stored))
    assert type(loaded.max_travel_km) is float
    assert loaded.home is not None
    assert type(loaded.home.lat) is float


def test_annotations_it_cannot_convert_are_refused_when_made() -> None:
    class Mapping(BaseModel):
        counts: dict[str, int]

    class Either(BaseModel):
        value: int | str

    for cls in (Mapping, Either):
        with pytest.raises(TypeError):
            Trusted(cls)


def test_profiles_take_the_fast_decoder_and_keep_their_set_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The profile models are read through the derived msgspec decoder, not pydantic's parser
    (which is then never called), with the same values and the same set fields."""
    trusted = Trusted(StudentProfile)
    assert trusted._decode_struct is not None

    def refused(_: object) -> None:
        raise AssertionError("pydantic's parser was used")

    monkeypatch.setattr(pydantic_core, "from_json", refused)
    for student in (_student(), _student().model_copy(update={"home": None, "skills": ()})):
        text = student.model_dump_json(exclude_none=True, exclude_defaults=True)
        loaded = trusted.load(text)
        expected = StudentProfile.model_validate_json(text)
        assert loaded == expected
        assert loaded.model_fields_set == expected.model_fields_set
        assert type(loaded.home) is type(expected.home)
