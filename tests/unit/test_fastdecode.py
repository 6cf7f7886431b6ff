"""The fast decoder of contract records gives what the pydantic models give, or defers to them."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devtools.synthetic import generate_round
from shared.contracts.fastdecode import FastDecoder, Unsupported, fast_decoder
from shared.contracts.profiles import PinnedPair, PlacementOffer, StudentProfile, Supervisor


def plain(value: Any) -> Any:
    """A record's values, nested records and tuples included, as plain Python values."""
    if isinstance(value, BaseModel):
        return {k: plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {k: plain(getattr(value, k)) for k in value.__struct_fields__}
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


def outcome(model: type[BaseModel], line: str, decode: Any) -> tuple[str, Any]:
    """("ok", values) or ("error", pydantic's errors) of decoding `line`."""
    try:
        return "ok", plain(decode(line))
    except ValidationError as err:
        return "error", repr(err.errors(include_url=False, include_context=False))


def same(model: type[BaseModel], line: str) -> bool:
    fast = FastDecoder(model).decode
    return outcome(model, line, fast) == outcome(
        model, line, model.__pydantic_validator__.validate_json
    )


STUDENT = {
    "student_id": "s-1",
    "region": "SE-AB",
    "programme": "EE",
    "skills": ["welding", "cad"],
    "preferences": ["p-1", "p-2"],
    "available_from": "2027-01-11",
    "available_to": "2027-03-19",
    "home": {"lat": 59.3, "lon": 18.0},
    "max_travel_km": 40,
    "priority": 1,
}
PLACEMENT = {
    "placement_id": "p-1",
    "company_id": "c-1",
    "region": "SE-AB",
    "capacity": 2,
    "title": "Electrician apprentice",
    "required_skills": ["welding"],
    "programmes": ["EE"],
    "starts_on": "2027-01-18",
    "ends_on": "2027-03-12",
    "site": {"lat": 59.4, "lon": 18.1},
    "supervisor": {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"},
    "ranking": ["s-1"],
}


def with_(base: dict[str, Any], **changes: Any) -> str:
    return json.dumps({**base, **changes})


def test_a_plain_record_takes_the_fast_way_with_the_same_values() -> None:
    for model, base in ((StudentProfile, STUDENT), (PlacementOffer, PLACEMENT)):
        line = json.dumps(base)
        record = FastDecoder(model).decode(line)
        assert not isinstance(record, model)  # the derived struct
        assert plain(record) == plain(model.model_validate_json(line))


@pytest.mark.parametrize(
    "line",
    [
        with_(STUDENT, student_id=" s-1"),  # stripped by pydantic
        with_(STUDENT, skills=["cad\t"]),
        with_(STUDENT, region="SE-AB\u00a0"),  # a non-breaking space
        with_(STUDENT, student_id="s-\u0000"),
        with_(STUDENT, priority=1.0),
        with_(STUDENT, priority=True),
        with_(STUDENT, priority=10**30),
        with_(STUDENT, max_travel_km=1e400),
        with_(STUDENT, max_travel_km="40"),
        with_(STUDENT, available_from="2027-01-11T00:00:00"),
        with_(STUDENT, available_from="2027-02-30"),
        with_(STUDENT, available_to="2026-01-01"),  # before available_from
        with_(STUDENT, preferences=["p-1", "p-1"]),
        with_(STUDENT, preferences=[f"p-{i}" for i in range(11)]),
        with_(STUDENT, participant="teacher", available_weeks=["2027-W03\n"]),
        with_(STUDENT, participant="teacher", available_weeks=["2027-W53"]),
        with_(STUDENT, participant="robot"),
        with_(STUDENT, subject="Welding"),  # a student has no subject
        with_(STUDENT, home={"lat": 91, "lon": 0}),
        with_(STUDENT, home={"lat": 1, "lon": 0, "alt": 3}),
        with_(STUDENT, unknown=1),
        with_(STUDENT, programme=None),
        with_(STUDENT, programme="x" * 101),
        with_(STUDENT, skills=["å" * 100]),
        with_(STUDENT, skills=["å" * 101]),
        '{"student_id":"s-1","student_id":"s-2","region":"SE-AB"}',
        '{"student_id":"s-1","region":"SE-AB","max_travel_km":NaN}',
        '{"student_id":"s-1","region":"SE-AB","skills":["\\ud800"]}',
        '{"student_id":"s-1","region":"SE-AB"',
        "[1]",
        "",
        with_(PLACEMENT, supervisor={"name": "A", "email": "Anna@Example.SE"}),  # normalised
        with_(PLACEMENT, supervisor={"name": "A", "email": "not an address"}),
        with_(PLACEMENT, supervisor={"name": "A", "email": "info@example.se"}),
        with_(PLACEMENT, ranking=["s-1", "s-1"]),
        with_(PLACEMENT, ranking=None),
        with_(PLACEMENT, ranking=[" s-1"]),
        with_(PLACEMENT, capacity=-1),
        with_(PLACEMENT, capacity="2"),
        with_(PLACEMENT, ends_on="2027-01-01"),
        with_(PLACEMENT, kind="teacher"),
    ],
)
def test_a_doubtful_line_gets_what_pydantic_gives(line: str) -> None:
    model = PlacementOffer if '"placement_id"' in line else StudentProfile
    assert same(model, line)


def test_the_synthetic_round_decodes_alike() -> None:
    rnd = generate_round(400, seed=3)
    for model, records in ((StudentProfile, rnd.students), (PlacementOffer, rnd.placements)):
        for record in records:
            line = record.model_dump_json(exclude_none=True)
            assert same(model, line)
            assert same(model, json.dumps(json.loads(line), indent=1))  # spaces between tokens


_text = st.text(
    alphabet=st.sampled_from(["a", "-", " ", "\t", "\n", "\u00a0", "\u2028", "\u001f", "å", "0"]),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    student_id=_text,
    region=_text,
    skills=st.lists(_text, max_size=3),
    programme=st.none() | _text,
    priority=st.integers(-2, 2) | st.floats(allow_nan=False) | st.booleans(),
    weeks=st.lists(st.sampled_from(["2027-W03", "2027-W3", "2027-W03 ", "2026-W53"]), max_size=2),
    teacher=st.booleans(),
)
def test_generated_students_decode_alike(
    student_id: str,
    region: str,
    skills: list[str],
    programme: str | None,
    priority: Any,
    weeks: list[str],
    teacher: bool,
) -> None:
    line = json.dumps(
        {
            "student_id": student_id,
            "region": region,
            "skills": skills,
            "programme": programme,
            "priority": priority,
            "participant": "teacher" if teacher else "student",
            "available_weeks": weeks,
        }
    )
    assert same(StudentProfile, line)


def test_the_contract_models_are_supported() -> None:
    for model in (StudentProfile, PlacementOffer, PinnedPair, Supervisor):
        assert fast_decoder(model) is not None


def test_a_model_the_derivation_cannot_follow_is_unsupported() -> None:
    class Lax(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int

    class Validated(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        n: int

        @field_validator("n")
        @classmethod
        def _odd(cls, n: int) -> int:
            return n

    class Aliased(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        n: int = Field(alias="number")

    class Factory(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        ns: list[int] = Field(default_factory=list)

    for model in (Lax, Validated, Aliased, Factory):
        with pytest.raises(Unsupported):
            FastDecoder(model)
        assert fast_decoder(model) is None
