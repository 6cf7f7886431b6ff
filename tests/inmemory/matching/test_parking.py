"""`ParkedRounds` on its own (services/matching/parking.py), over the in-memory read model: a
parked request whose round keeps failing is dead-lettered after its attempts and forgotten, so
the region's next request runs; a failure that is transient never uses up an attempt."""

from __future__ import annotations

import asyncio
import uuid

from services.matching.adapters.repository import ParkedRequest
from services.matching.parking import ParkedRounds, parked_record
from services.matching.wakeup import InputSignals
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import record_headers
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork

REGION = "SE-AB"


def _request(inputs: int | None = None) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(
        round_id=uuid.uuid4(), region=REGION, inputs_published=inputs
    )
    return ev.MatchingRoundRequested(producer="placements", data=data)


async def test_a_request_that_keeps_failing_is_dead_lettered_and_the_next_one_runs() -> None:
    fake = InMemoryMatchingUnitOfWork()
    poison, after = _request(inputs=1), _request()
    ran: list[uuid.UUID] = []
    dead: list[tuple[ParkedRequest, str, int]] = []
    calls = {"transient": 0}

    async def run(request: ev.MatchingRoundRequested) -> None:
        if request.event_id == poison.event_id:
            calls["transient"] += 1
            if calls["transient"] <= 2:  # the database was down twice: not an attempt
                raise ConnectionError("database unavailable")
            raise ValueError("a bug in the round")
        ran.append(request.data.round_id)

    async def dead_letter(parked: ParkedRequest, error: BaseException, attempts: int) -> None:
        dead.append((parked, str(error), attempts))

    parking = ParkedRounds(
        lambda: fake,
        InputSignals(),
        run,
        deadline=3600.0,
        dead_letter=dead_letter,
        max_attempts=3,
        transient=(ConnectionError,),
        retry_initial=0.001,
    )
    assert not await parking.admit(poison)  # its one input is not applied: parked
    assert not await parking.admit(after)  # behind it
    fake.model.inputs_applied[("placements", REGION)] = 1
    parking.signals.applied("placements", REGION)
    await asyncio.wait_for(parking.idle(), 10)
    await parking.close()

    assert [(p.request.event_id, why, n) for p, why, n in dead] == [
        (poison.event_id, "a bug in the round", 3)
    ]
    assert calls["transient"] == 5  # two transient failures, then three attempts
    assert ran == [after.data.round_id]
    assert fake.model.parked == {}


def test_a_parked_record_is_the_request_as_the_consumer_read_it() -> None:
    request = _request(inputs=4)
    parked = ParkedRequest(request, {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    record = parked_record(Topics("t."), parked)
    assert record.topic == "t.apl.round-requests.v1"
    assert record.value == request.to_json()
    assert record.key == REGION.encode()
    headers = record_headers(record)
    assert headers["event-type"] == "MatchingRoundRequested"
    assert headers["event-id"] == str(request.event_id)
    assert headers["traceparent"] == parked.trace["traceparent"]
