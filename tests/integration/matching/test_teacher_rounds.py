"""A round of teachers beside a round of students, on real Kafka and PostgreSQL with the real
engine and the service as an OS process: the demo's 60 teachers and their working-life periods
(devtools/synthetic.py) and 400 students of the same region. Each round places only its own
participants at placements of their kind, says whose it was, and the teacher round places no
teacher in a week they did not give. The teacher round's figures are printed (`-s`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.synthetic import generate_round, generate_teachers
from shared.contracts import events as ev
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.topics import Topics
from tests.integration.matching.support import (
    prepared_schema,
    publish_all,
    replica,
    wait_for_read_model,
)
from tests.support.infra import Infra
from tests.support.kafka import read_records

pytestmark = pytest.mark.infra

REGION = "SE-AB"


def _weeks(starts: Any, ends: Any) -> set[str]:
    monday = starts - timedelta(days=starts.weekday())
    found = set()
    while monday <= ends:
        year, week, _ = monday.isocalendar()
        found.add(f"{year:04d}-W{week:02d}")
        monday += timedelta(days=7)
    return found


def _request(**options: Any) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=REGION, **options)
    return ev.MatchingRoundRequested(producer="placements", data=data)


async def test_a_round_of_teachers_beside_a_round_of_students(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    proc = replica(env, tmp_path, "matching-teachers")
    generated = generate_round(400, seed=3)
    students = [s.model_copy(update={"region": REGION}) for s in generated.students]
    offers = [p.model_copy(update={"region": REGION}) for p in generated.placements]
    teachers = generate_teachers(60, seed=2027, region=REGION)  # the demo's default
    placement_events = [
        ev.PlacementPosted(producer="placements", data=p) for p in [*offers, *teachers.placements]
    ]
    person_events = [
        ev.StudentRegistered(producer="placements", data=s) for s in [*students, *teachers.students]
    ]
    students_round, teachers_round = _request(), _request(participant="teacher", fill=True)
    wanted = {students_round.data.round_id, teachers_round.data.round_id}

    def done(records: list[Any]) -> bool:
        events = [json.loads(r.value) for r in records]
        counted = {
            uuid.UUID(e["data"]["round_id"]): e["data"]["proposed"]
            for e in events
            if e["type"] == "MatchingRoundCompleted"
        }
        proposed = Counter(
            uuid.UUID(e["data"]["round_id"]) for e in events if e["type"] == "MatchProposed"
        )
        # the matches topic is read beside the rounds topic: a completion can come first
        return all(counted.get(r) == proposed[r] for r in wanted)

    try:
        await asyncio.to_thread(proc.start)
        await publish_all(infra.kafka, topics, [*placement_events, *person_events])
        await wait_for_read_model(database_url, schema, placement_events, person_events)
        await publish_all(infra.kafka, topics, [students_round, teachers_round])
        records = await read_records(
            infra.kafka, topics.rounds, topics.matches, until=done, wait=180
        )
    finally:
        proc.stop()
    events = [json.loads(r.value) for r in records if json.loads(r.value)["producer"] == "matching"]

    def of(kind: str, round_id: uuid.UUID) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in events
            if e["type"] == kind and e["data"]["round_id"] == str(round_id)
        ]

    (s_done,) = of("MatchingRoundCompleted", students_round.data.round_id)
    (t_done,) = of("MatchingRoundCompleted", teachers_round.data.round_id)
    assert (s_done["participant"], t_done["participant"]) == ("student", "teacher")
    assert s_done["figures"]["students"] == len(students)
    assert t_done["figures"]["students"] == len(teachers.students)
    t_parts = of("MatchingRoundOutcomes", teachers_round.data.round_id)
    assert {p["participant"] for p in t_parts} == {"teacher"}
    outcomes = {
        o["student_id"]: StudentOutcome.model_validate_json(json.dumps(o)).model_dump(mode="json")
        for p in t_parts
        for o in p["outcomes"]
    }
    assert set(outcomes) == {t.student_id for t in teachers.students}

    period = {p.placement_id: p for p in teachers.placements}
    teacher = {t.student_id: t for t in teachers.students}
    proposed = of("MatchProposed", teachers_round.data.round_id)
    assert len(proposed) == t_done["proposed"] > 0
    for p in proposed:
        offer = period[p["placement_id"]]  # a working-life period, never a student placement
        weeks = teacher[p["student_id"]].available_weeks
        assert not weeks or _weeks(offer.starts_on, offer.ends_on) <= set(weeks)
    student_ids = {s.student_id for s in students}
    assert {
        p["student_id"] for p in of("MatchProposed", students_round.data.round_id)
    } <= student_ids
    # every teacher the weeks kept out is explained by them
    by_weeks = [
        o
        for o in outcomes.values()
        for note in o["explanation"]["better_choices"]
        for rule in note["rules"]
        if rule["rule"] == "available_weeks"
    ]
    assert by_weeks
    f = t_done["figures"]
    print(
        "\nteacher round (real Kafka, PostgreSQL, matching service):"
        f" teachers={f['students']} places={sum(p.capacity for p in teachers.placements)}"
        f" periods={len(teachers.placements)} placed={f['placed']} filled={f['filled']}"
        f" placed_without_fill={f['placed'] - f['filled']} first_choice={f['first_choice']}"
        f" top3={f['top3']} unplaced={dict(t_done['unplaced_by_reason'])}"
        f" blocking_pairs={f['blocking_pairs']} solver={f['solver']}"
        f" proposed={t_done['proposed']} outcome_parts={t_done['outcome_parts']}"
        f" | students round: students={s_done['figures']['students']}"
        f" placed={s_done['figures']['placed']}"
    )
