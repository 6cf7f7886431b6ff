"""Round options, outcomes and overrides on real Kafka and PostgreSQL, with the real engine and
the service as an OS process: a dry run writes nothing; every outcome arrives before its
round's completion; overrides are proposed, refused on capacity, and cancel the student's
previous match; a supplementary round with fill keeps every standing proposal and places only
the unplaced.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import events as ev
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.topics import Topics
from tests.integration.matching.support import (
    prepared_schema,
    publish_all,
    read_model_count,
    replica,
    wait_for_read_model,
)
from tests.support.factories import placement, student
from tests.support.infra import Infra
from tests.support.kafka import read_records

pytestmark = pytest.mark.infra

REGION = "SE-AB"


def _request(**options: Any) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=REGION, **options)
    return ev.MatchingRoundRequested(producer="placements", data=data)


def _assignment(sid: str, pid: str) -> ev.MatchAssignmentRequested:
    data = ev.MatchAssignmentRequestedData(
        match_id=uuid.uuid4(),
        region=REGION,
        student_id=sid,
        placement_id=pid,
        company_id=f"c-{pid}",
        reason="agreed with the school",
    )
    return ev.MatchAssignmentRequested(producer="placements", data=data)


def _registered(sid: str, *prefs: str) -> ev.StudentRegistered:
    return ev.StudentRegistered(producer="placements", data=student(sid, prefs=prefs))


class Published:
    """What the service published on rounds and matches, in the order of each partition."""

    def __init__(self, records: list[Any]) -> None:
        self.records = sorted(
            (r for r in records if json.loads(r.value)["producer"] == "matching"),
            key=lambda r: (r.topic, r.partition, r.offset),
        )
        self.events = [json.loads(r.value) for r in self.records]

    def of(self, kind: str, round_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.events
            if e["type"] == kind and (round_id is None or e["data"]["round_id"] == str(round_id))
        ]

    def completed(self, round_id: uuid.UUID) -> dict[str, Any] | None:
        done = self.of("MatchingRoundCompleted", round_id)
        return done[0] if done else None

    def settled(self, round_id: uuid.UUID) -> bool:
        """The round's completion is read, and so is every proposal it counts: the matches
        topic is read beside the rounds topic, so the completion can be read first."""
        done = self.completed(round_id)
        return done is not None and len(self.of("MatchProposed", round_id)) == done["proposed"]

    def for_match(self, kind: str, match_id: uuid.UUID) -> list[dict[str, Any]]:
        return [d for d in self.of(kind) if d["match_id"] == str(match_id)]

    def outcomes(self, round_id: uuid.UUID) -> dict[str, dict[str, Any]]:
        """Each student's outcome as a consumer reads it: through the contract, with the fields
        the wire leaves out at their defaults filled in."""
        return {
            o["student_id"]: StudentOutcome.model_validate_json(json.dumps(o)).model_dump(
                mode="json"
            )
            for part in self.of("MatchingRoundOutcomes", round_id)
            for o in part["outcomes"]
        }

    def outcomes_before_completion(self, round_id: uuid.UUID) -> bool:
        """Every outcome part of the round is on the partition before its completion."""
        rid = str(round_id)
        at = [
            (r.partition, r.offset, e["type"])
            for r, e in zip(self.records, self.events, strict=True)
            if e["data"].get("round_id") == rid and r.topic.endswith("rounds.v1")
        ]
        assert at, f"nothing of round {rid}"
        assert len({p for p, _, _ in at}) == 1  # one partition: the region's
        kinds = [k for _, _, k in sorted(at)]
        return kinds[-1] == "MatchingRoundCompleted" and set(kinds[:-1]) == {
            "MatchingRoundOutcomes"
        }


async def _published(
    infra: Infra, topics: Topics, done: Callable[[Published], bool], wait: float = 120.0
) -> Published:
    records = await read_records(
        infra.kafka,
        topics.rounds,
        topics.matches,
        until=lambda rs: done(Published(rs)),
        wait=wait,
    )
    out = Published(records)
    if not done(out):
        raise TimeoutError(f"output incomplete: {len(out.events)} events")
    return out


async def test_dry_run_overrides_and_a_supplementary_round_with_fill(
    infra: Infra,
    database_url: str,
    make_topics: Callable[[], Awaitable[Topics]],
    tmp_path: Path,
) -> None:
    topics = await make_topics()
    schema, env = await prepared_schema(infra, database_url, topics)
    proc = replica(env, tmp_path, "matching-v2")
    # p-1..p-4 with one slot, nobody ranks p-3 (two slots): the vacancies
    capacity = {"p-1": 1, "p-2": 1, "p-3": 2, "p-4": 1}
    placements = [
        ev.PlacementPosted(
            producer="placements", data=placement(pid, capacity=n, company_id=f"c-{pid}")
        )
        for pid, n in capacity.items()
    ]
    students = [
        _registered("s-1", "p-1"),
        _registered("s-2", "p-1"),
        _registered("s-3", "p-1"),
        _registered("s-4", "p-2"),
        _registered("s-5", "p-4"),
    ]
    try:
        await asyncio.to_thread(proc.start)
        await publish_all(infra.kafka, topics, [*placements, *students])
        await wait_for_read_model(database_url, schema, placements, students)

        # 1. A dry run with fill: outcomes and completion, nothing written.
        dry = _request(dry_run=True, fill=True)
        await publish_all(infra.kafka, topics, [dry])
        out = await _published(infra, topics, lambda o: o.settled(dry.data.round_id))
        done = out.completed(dry.data.round_id)
        assert done is not None
        assert (done["dry_run"], done["fill"], done["proposed"], done["cancelled"]) == (
            True,
            True,
            0,
            0,
        )
        assert done["figures"]["placed"] == 5  # three by choice, two filled at p-3
        assert done["figures"]["filled"] == 2
        assert out.outcomes_before_completion(dry.data.round_id)
        assert done["outcome_parts"] == len(out.of("MatchingRoundOutcomes", dry.data.round_id))
        assert len(out.outcomes(dry.data.round_id)) == 5
        assert out.of("MatchProposed") == []
        assert await read_model_count(database_url, schema, "matches") == 0

        # 2. An ordinary round, no fill: two of s-1..s-3 are left unplaced (p-1 is full).
        first = _request()
        await publish_all(infra.kafka, topics, [first])
        out = await _published(infra, topics, lambda o: o.settled(first.data.round_id))
        assert out.outcomes_before_completion(first.data.round_id)
        outcomes = out.outcomes(first.data.round_id)
        unplaced = sorted(s for s, o in outcomes.items() if o["placement_id"] is None)
        assert len(unplaced) == 2
        assert {outcomes[s]["reason"] for s in unplaced} == {"choices_full"}
        (full,) = outcomes[unplaced[0]]["explanation"]["better_choices"]
        assert (full["placement_id"], full["status"], full["held_by"]["slots"]) == (
            "p-1",
            "full",
            1,
        )
        proposed = {p["student_id"]: p for p in out.of("MatchProposed", first.data.round_id)}
        assert {s: p["placement_id"] for s, p in proposed.items() if s in ("s-4", "s-5")} == {
            "s-4": "p-2",
            "s-5": "p-4",
        }

        # 3. Overrides: one unplaced student to the vacancy p-3 (accepted), the other to p-2,
        #    which s-4 holds (refused), and s-5 from p-4 to p-3 (its proposal is cancelled).
        x, y = unplaced
        ok, refused, moved = _assignment(x, "p-3"), _assignment(y, "p-2"), _assignment("s-5", "p-3")
        await publish_all(infra.kafka, topics, [ok, refused, moved])

        def overrides_done(o: Published) -> bool:
            return bool(
                o.for_match("MatchProposed", ok.data.match_id)
                and o.for_match("MatchCancelled", refused.data.match_id)
                and o.for_match("MatchProposed", moved.data.match_id)
            )

        out = await _published(infra, topics, overrides_done)
        (made,) = out.for_match("MatchProposed", ok.data.match_id)
        assert (made["override"], made["rank"], made["student_id"]) == (True, None, x)
        assert made["round_id"] == str(uuid.UUID(int=0))
        (no,) = out.for_match("MatchCancelled", refused.data.match_id)
        assert no["reason"] == "capacity_reduced"
        assert out.for_match("MatchProposed", refused.data.match_id) == []
        old = proposed["s-5"]["match_id"]
        assert [c["reason"] for c in out.of("MatchCancelled") if c["match_id"] == old] == [
            "overridden"
        ]

        # 4. s-4 now ranks p-4 first (an ordinary round would move it there). A supplementary
        #    round with fill keeps every standing match and fills y, the only one unplaced, at
        #    the vacancy p-4 it never ranked.
        update = ev.StudentPreferencesUpdated(
            producer="placements", data=student("s-4", prefs=("p-4", "p-2"))
        )
        await publish_all(infra.kafka, topics, [update])
        supplementary = _request(kind="supplementary", fill=True)
        await publish_all(infra.kafka, topics, [supplementary])
        rid = supplementary.data.round_id
        out = await _published(infra, topics, lambda o: o.settled(rid))
    finally:
        proc.stop()

    done = out.completed(rid)
    assert done is not None
    assert (done["kind"], done["fill"], done["dry_run"]) == ("supplementary", True, False)
    assert (done["proposed"], done["cancelled"]) == (1, 0)
    assert done["figures"]["filled"] == 1
    assert out.outcomes_before_completion(rid)
    (filled,) = out.of("MatchProposed", rid)
    assert (filled["student_id"], filled["placement_id"]) == (y, "p-4")
    assert (filled["filled"], filled["rank"]) == (True, None)
    outcomes = out.outcomes(rid)
    assert outcomes["s-4"]["placement_id"] == "p-2"
    assert outcomes["s-4"]["pinned"] is True
    assert outcomes[x]["placement_id"] == "p-3"
    assert outcomes[y]["previous_placement_id"] is None
    assert await read_model_count(database_url, schema, "rounds") == 3
