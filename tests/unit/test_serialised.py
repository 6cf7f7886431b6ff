"""Events serialised from templates (shared/serialised.py) are the bytes their models give, and
the matching round's MatchProposed rows (services/matching/round_events.py) are the events a
consumer expects."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.synthetic import generate_round
from services.matching.adapters.engine import engine_solver
from services.matching.domain.model import NewProposal, RoundProblem, SolveResult
from services.matching.handlers import outcome_parts
from services.matching.round_events import ProposedEvents, outcome_rows
from shared.contracts import events as ev
from shared.serialised import EventTemplate, Serialised, json_str, json_uuid, random_uuids
from shared.uow import system_actor

AWKWARD = [
    "s-000123",
    'quote " and backslash \\ inside',
    "non-ASCII: åäö ÅÄÖ ü — €",
    "braces {0} {{}} and %s",
    "tab\tnew\nline\rreturn\x08\x0c and \x01\x1f controls",
    "hole-0123456789abcdef",
]


def _proposed(**h: Any) -> ev.Event:
    return ev.MatchProposed(
        event_id=h["event_id"],
        occurred_at=datetime(2027, 1, 11, 8, 0, 0, 123456, tzinfo=UTC),
        producer="matching",
        data=ev.MatchProposedData(
            match_id=h["match_id"],
            region="SE-AB",
            student_id=h["student_id"],
            placement_id=h["placement_id"],
            round_id=uuid.UUID(int=7),
            company_id=h["company_id"],
            rank=2,
        ),
    ).by(system_actor("matching"))


HOLES: dict[str, Any] = {
    "event_id": "uuid",
    "match_id": "uuid",
    "student_id": "str",
    "placement_id": "str",
    "company_id": "str",
}


@pytest.mark.parametrize("text", AWKWARD)
def test_a_template_renders_the_bytes_of_the_model(text: str) -> None:
    template = EventTemplate(_proposed, HOLES, key="SE-AB")
    event_id, match_id = uuid.uuid4(), uuid.uuid4()
    values: dict[str, Any] = {
        "event_id": event_id,
        "match_id": match_id,
        "student_id": text,
        "placement_id": f"p-{text}",
        "company_id": f"{text}-c",
    }
    rendered = template.render(
        [
            json_uuid(event_id),
            json_uuid(match_id),
            json_str(values["student_id"]),
            json_str(values["placement_id"]),
            json_str(values["company_id"]),
        ]
    )
    expected = _proposed(**values)
    assert rendered == expected.to_json()
    assert ev.parse_event(ev.MatchProposed.topic, rendered) == expected


def test_a_stand_in_that_appears_twice_is_refused() -> None:
    def same(**h: Any) -> ev.Event:  # the student id also used as the company id
        return _proposed(**{**h, "company_id": h["student_id"]})

    holes = {k: v for k, v in HOLES.items() if k != "company_id"}
    with pytest.raises(ValueError, match="more than once"):
        EventTemplate(same, holes, key="SE-AB")


def test_random_uuids_are_distinct_version_4_uuids_in_canonical_text() -> None:
    ids = random_uuids(2000)
    assert len(set(ids)) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    assert random_uuids(0) == []


def test_a_rounds_proposals_are_the_events_its_models_would_be() -> None:
    actor = system_actor("matching")
    round_id = uuid.uuid4()
    made = [
        ("5f0e0b4c-0000-4000-8000-000000000001", NewProposal("s-1", "p-1", "c-1", 1)),
        (
            "5f0e0b4c-0000-4000-8000-000000000002",
            NewProposal("s-2", "p-9", "c-9", None, filled=True),
        ),
        ("5f0e0b4c-0000-4000-8000-000000000003", NewProposal('s-"3"', "p-1", "c-1", 3)),
    ]
    events = ProposedEvents("SE-AB", round_id, actor)
    rows = events.rows(made)
    assert [type(r) for r in rows] == [Serialised] * 3
    assert {(r.topic, r.key, r.event_type) for r in rows} == {
        (ev.MatchProposed.topic, "SE-AB", "MatchProposed")
    }
    parsed = [ev.parse_event(r.topic, r.payload) for r in rows]
    assert len({e.event_id for e in parsed}) == 3
    assert [str(e.event_id) for e in parsed] == [str(r.event_id) for r in rows]
    for (match_id, p), event, row in zip(made, parsed, rows, strict=True):
        assert isinstance(event, ev.MatchProposed)
        expected = ev.MatchProposed(
            event_id=event.event_id,
            occurred_at=events.occurred_at,
            producer="matching",
            data=ev.MatchProposedData(
                match_id=uuid.UUID(match_id),
                region="SE-AB",
                student_id=p.student_id,
                placement_id=p.placement_id,
                round_id=round_id,
                company_id=p.company_id,
                rank=p.rank,
                filled=p.filled,
            ),
            actor=actor,
        )
        assert event == expected
        assert row.payload == expected.to_json()  # byte for byte
        assert json.loads(row.payload)["actor"] == actor.model_dump()


def _solved(n_students: int, *, seed: int = 2) -> SolveResult:
    generated = generate_round(n_students, seed=seed)
    students = tuple(s.model_copy(update={"region": "SE-AB"}) for s in generated.students)
    placements = tuple(p.model_copy(update={"region": "SE-AB"}) for p in generated.placements)
    return engine_solver(
        RoundProblem(
            students=students,
            placements=placements,
            fill=True,
            previous={s.student_id: placements[0].placement_id for s in students[:1]},
        )
    )


@pytest.mark.parametrize(
    ("n_students", "parts", "dry_run", "participant", "actor"),
    [
        (450, 3, False, "student", system_actor("matching")),
        (400, 2, True, "student", None),  # exactly two full parts
        (201, 2, False, "teacher", system_actor("matching")),
        (0, 0, False, "student", system_actor("matching")),
    ],
)
def test_a_rounds_outcome_parts_are_the_bytes_of_their_models(
    n_students: int, parts: int, dry_run: bool, participant: Any, actor: Any
) -> None:
    solved = _solved(n_students)
    assert solved.outcome_texts is not None
    round_id = uuid.uuid4()
    rows = outcome_rows(
        round_id,
        "SE-AB",
        solved.outcome_texts(),
        dry_run=dry_run,
        participant=participant,
        actor=actor,
    )
    models = outcome_parts(
        round_id, "SE-AB", solved.student_outcomes, dry_run=dry_run, participant=participant
    )
    assert len(rows) == len(models) == parts
    for row, model in zip(rows, models, strict=True):
        assert (row.topic, row.key, row.event_type) == (
            ev.MatchingRoundOutcomes.topic,
            "SE-AB",
            "MatchingRoundOutcomes",
        )
        parsed = ev.parse_as(ev.MatchingRoundOutcomes, row.payload)
        assert parsed.event_id == row.event_id
        assert parsed.data == model.data
        assert parsed.actor == actor
        same = model.by(actor).model_copy(
            update={"event_id": parsed.event_id, "occurred_at": parsed.occurred_at}
        )
        assert row.payload == same.to_json()  # byte for byte
