"""The matching subscribers on FastStream's in-memory TestKafkaBroker, over the in-memory read
model (`tests/support/fakes/matching.py`): no Kafka, no PostgreSQL.

The container is the one `build` wires (its router, its `EventPolicy`, its automatic rounds),
with the fake unit of work and a deterministic solver double; what the service publishes is what
its committed transactions wrote to the (fake) outbox. The handlers themselves are tested in
tests/handlers/matching.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import KafkaMessage, TestKafkaBroker

from services.matching import handlers
from services.matching.bootstrap import Container, build
from services.matching.settings import MatchingSettings
from shared.contracts import events as ev
from shared.contracts.topics import dlt
from shared.kafka import publish_event
from tests.support.factories import every_event, placement, student
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork
from tests.support.waiting import eventually
from tests.unit.matching_service.doubles import greedy_solver

REGION = "SE-AB"


def _settings(**overrides: Any) -> MatchingSettings:
    return MatchingSettings(
        kafka_bootstrap="localhost:9092",
        database_url="postgresql://unused/apl",
        topic_prefix="",
        max_attempts=2,
        **overrides,
    )


def _container(fake: InMemoryMatchingUnitOfWork, **overrides: Any) -> Container:
    c = build(_settings(**overrides), solver=greedy_solver, unit_of_work=lambda: fake)
    c.policy.backoff_initial = 0.001
    return c


@pytest.fixture
async def fake() -> InMemoryMatchingUnitOfWork:
    return InMemoryMatchingUnitOfWork()


@pytest.fixture
async def service(fake: InMemoryMatchingUnitOfWork) -> AsyncIterator[Container]:
    c = _container(fake)
    yield c
    await c.auto.close()
    await c.round_requests.close()


def _registered(sid: str, *prefs: str) -> ev.StudentRegistered:
    return ev.StudentRegistered(producer="placements", data=student(sid, prefs=prefs))


def _posted(pid: str, capacity: int = 2) -> ev.PlacementPosted:
    return ev.PlacementPosted(producer="placements", data=placement(pid, capacity=capacity))


def _request(inputs: int | None = None) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(
        round_id=uuid.uuid4(), region=REGION, inputs_published=inputs
    )
    return ev.MatchingRoundRequested(producer="placements", data=data)


async def _round(br: Any, service: Container, request: ev.MatchingRoundRequested) -> None:
    """Publish a round request and wait until its round is done: a request is handled in its
    region's queue (services/matching/round_requests.py), not while the consumer waits."""
    await publish_event(br, service.settings.topics, request)
    await service.round_requests.idle()


def _response(
    cls: type[ev.MatchAccepted] | type[ev.MatchDeclined], p: ev.MatchProposed, **fields: Any
) -> ev.Event:
    d = p.data
    ids = {"match_id": d.match_id, "region": d.region, "student_id": d.student_id}
    data = {**ids, "placement_id": d.placement_id, **fields}
    if cls is ev.MatchAccepted:
        return ev.MatchAccepted(
            producer="placements", data=ev.MatchAcceptedData.model_validate(data, strict=False)
        )
    return ev.MatchDeclined(
        producer="placements", data=ev.MatchDeclinedData.model_validate(data, strict=False)
    )


def _proposed(fake: InMemoryMatchingUnitOfWork) -> list[ev.MatchProposed]:
    return [e for e in fake.published if isinstance(e, ev.MatchProposed)]


def _completed(fake: InMemoryMatchingUnitOfWork) -> list[ev.MatchingRoundCompleted]:
    return [e for e in fake.published if isinstance(e, ev.MatchingRoundCompleted)]


async def test_every_topic_reaches_its_handler_and_other_events_are_ignored(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    async with TestKafkaBroker(service.broker) as br:
        # order across topics does not matter: the students rank p-2 before p-2 exists
        await publish_event(br, topics, _registered("s-1", "p-2"))
        await publish_event(br, topics, _registered("s-2", "p-2"))
        posted = _posted("p-2", capacity=1)
        await publish_event(br, topics, posted)
        await publish_event(br, topics, posted)  # a redelivery is applied once
        first = _request()
        await _round(br, service, first)
        await _round(br, service, first)  # redelivered request: no second round
        # what the service reads but does not handle: the one other event on its topics (the
        # opening of a supplementary round, for notifications); its own events are on topics
        # it does not read
        (opened,) = [e for e in every_event() if isinstance(e, ev.SupplementaryRoundOpened)]
        await publish_event(br, topics, opened)
        await _round(br, service, _request())  # a new request, nothing changed

    assert [(p.data.student_id, p.data.placement_id, p.data.rank) for p in _proposed(fake)] == [
        ("s-1", "p-2", 1)
    ]
    completed = _completed(fake)
    assert len(completed) == 2
    assert completed[0].data.round_id == first.data.round_id
    assert completed[0].data.proposed == 1
    assert completed[0].data.unplaced_by_reason == {"choices_full": 1}
    assert completed[0].data.figures.placed == 1
    assert (completed[1].data.proposed, completed[1].data.cancelled) == (0, 0)
    assert fake.model.inputs_applied == {
        ("placements", REGION): 3
    }  # the ignored events count for nothing
    assert service.policy.dead_letters == 0


async def test_responses_on_the_matches_topic_confirm_and_exclude(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    async with TestKafkaBroker(service.broker) as br:
        for e in (_posted("p-1"), _posted("p-2")):
            await publish_event(br, topics, e)
        for sid in ("s-1", "s-2"):
            await publish_event(br, topics, _registered(sid, "p-1", "p-2"))
        await _round(br, service, _request())
        proposed = {p.data.student_id: p for p in _proposed(fake)}
        for by in ("student", "company"):
            await publish_event(br, topics, _response(ev.MatchAccepted, proposed["s-1"], by=by))
        await publish_event(br, topics, _response(ev.MatchDeclined, proposed["s-2"], by="student"))
        await _round(br, service, _request())

    confirmed = [e for e in fake.published if isinstance(e, ev.MatchConfirmed)]
    assert [c.data.student_id for c in confirmed] == ["s-1"]
    cancelled = [e for e in fake.published if isinstance(e, ev.MatchCancelled)]
    assert [(c.data.student_id, c.data.reason) for c in cancelled] == [("s-2", "declined")]
    assert [(p.data.student_id, p.data.placement_id) for p in _proposed(fake)[2:]] == [
        ("s-2", "p-2")
    ]


async def test_v2_events_reach_their_handlers_and_the_services_own_are_ignored(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    async with TestKafkaBroker(service.broker) as br:
        for e in (_posted("p-1", capacity=1), _posted("p-2", capacity=1)):
            await publish_event(br, topics, e)
        for sid in ("s-1", "s-2"):
            await publish_event(br, topics, _registered(sid, "p-1"))
        dry = ev.MatchingRoundRequested(
            producer="placements",
            data=ev.MatchingRoundRequestedData(round_id=uuid.uuid4(), region=REGION, dry_run=True),
        )
        await _round(br, service, dry)
        assert _proposed(fake) == []
        # the service's own outcomes (on a topic it does not read) and the placements
        # service's opening (on the round-requests topic): neither is an input
        (outcomes,) = [e for e in fake.published if isinstance(e, ev.MatchingRoundOutcomes)]
        opened = ev.SupplementaryRoundOpened(
            producer="placements",
            data=ev.SupplementaryRoundOpenedData(
                opening_id=uuid.uuid4(), region=REGION, student_ids=("s-2",)
            ),
        )
        await publish_event(br, topics, outcomes)
        await publish_event(br, topics, opened)
        await _round(br, service, _request())
        # a coordinator assigns the unplaced s-2 to p-2 by hand
        (first,) = [p for p in _proposed(fake) if p.data.student_id == "s-1"]
        order = ev.MatchAssignmentRequested(
            producer="placements",
            data=ev.MatchAssignmentRequestedData(
                match_id=uuid.uuid4(),
                region=REGION,
                student_id="s-2",
                placement_id="p-2",
                company_id="c-1",
                reason="agreed with the school",
            ),
        )
        await publish_event(br, topics, order)
    completed = _completed(fake)
    assert [c.data.dry_run for c in completed] == [True, False]
    assert first.data.placement_id == "p-1"
    (override,) = [p for p in _proposed(fake) if p.data.override]
    assert override.data.match_id == order.data.match_id
    assert (override.data.student_id, override.data.placement_id) == ("s-2", "p-2")
    assert fake.model.inputs_applied == {
        ("placements", REGION): 5
    }  # the override counts as an input
    assert service.policy.dead_letters == 0


async def test_malformed_event_is_dead_lettered_and_the_partition_moves_on(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    dead: list[tuple[bytes, str]] = []

    @service.broker.subscriber(dlt(topics.students), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append((message.body, message.headers["x-error"]))

    async with TestKafkaBroker(service.broker) as br:
        await br.publish(b'{"type": "StudentRegistered"}', topics.students, key=b"SE-AB")
        await publish_event(br, topics, _registered("s-1", "p-1"))
    assert len(dead) == 1
    assert dead[0][0] == b'{"type": "StudentRegistered"}'
    assert "schema_version" in dead[0][1]
    assert list(fake.model.students) == ["s-1"]
    assert fake.model.inputs_dead_lettered == {}  # no trustworthy event: nothing to record


async def test_a_failing_input_is_dead_lettered_and_rounds_that_counted_it_go_on(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    async with TestKafkaBroker(service.broker) as br:
        await publish_event(br, topics, _posted("p-1", capacity=1))
        for sid in ("s-1", "s-2"):
            await publish_event(br, topics, _registered(sid, "p-1"))
        await _round(br, service, _request())
        (proposal,) = _proposed(fake)
        # The match id of one student with the other student: the handler refuses it every
        # time, so it is dead-lettered, and the policy's hook records it as a dead input.
        other = "s-2" if proposal.data.student_id == "s-1" else "s-1"
        bad = _response(ev.MatchAccepted, proposal, student_id=other, by="student")
        await publish_event(br, topics, bad)
        assert service.policy.dead_letters == 1
        assert fake.model.inputs_dead_lettered == {bad.event_id: ("placements", REGION)}
        # The requester had published four inputs, the dead one included: the round runs.
        request = _request(inputs=4)
        await _round(br, service, request)
    assert _completed(fake)[-1].data.round_id == request.data.round_id


async def test_an_event_from_another_producer_than_the_topics_owner_is_dead_lettered(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    dead: list[str] = []

    @service.broker.subscriber(dlt(topics.match_decisions), group_id="dlt-watch")
    async def on_dead(message: KafkaMessage) -> None:
        dead.append(message.headers["x-error"])

    async with TestKafkaBroker(service.broker) as br:
        await publish_event(br, topics, _posted("p-1", capacity=1))
        await publish_event(br, topics, _registered("s-1", "p-1"))
        await _round(br, service, _request())
        (proposal,) = _proposed(fake)
        forged = _response(ev.MatchAccepted, proposal, by="student")
        forged = forged.model_copy(update={"producer": "probeA"})
        await publish_event(br, topics, forged)
        await _round(br, service, _request())
    assert len(dead) == 1
    assert "'probeA' does not write apl.match-decisions.v1" in dead[0]
    assert not [e for e in fake.published if isinstance(e, ev.MatchConfirmed)]
    # its producer and region were read from the envelope: counted as settled for them
    assert fake.model.inputs_dead_lettered == {forged.event_id: ("probeA", REGION)}


async def test_an_input_that_breaks_the_contract_counts_as_settled_for_its_producer(
    service: Container, fake: InMemoryMatchingUnitOfWork
) -> None:
    topics = service.settings.topics
    async with TestKafkaBroker(service.broker) as br:
        await publish_event(br, topics, _posted("p-1", capacity=1))
        good = _registered("s-1", "p-1")
        broken = json.loads(good.to_json())
        broken["event_id"] = str(uuid.uuid4())
        broken["data"]["student_id"] = "s\u0000-2"  # refused by the contract
        await br.publish(json.dumps(broken).encode(), topics.students, key=b"SE-AB")
        await publish_event(br, topics, good)
        # the requester counted three inputs, the broken one among them: the round runs
        request = _request(inputs=3)
        await _round(br, service, request)
    assert service.policy.dead_letters == 1
    assert fake.model.inputs_dead_lettered == {
        uuid.UUID(broken["event_id"]): ("placements", REGION)
    }
    assert _completed(fake)[-1].data.round_id == request.data.round_id


async def test_automatic_mode_debounces_a_burst_and_rematches_a_decline_minimally(
    fake: InMemoryMatchingUnitOfWork,
) -> None:
    service = _container(fake, auto_regions=REGION, auto_round_delay_seconds=0.2)
    topics = service.settings.topics

    def settled(rounds: int) -> bool:
        """`rounds` rounds completed and no other is scheduled or running (so none will run
        until the next change)."""
        return service.auto.idle and len(_completed(fake)) >= rounds

    try:
        async with TestKafkaBroker(service.broker) as br:
            await publish_event(br, topics, _posted("p-1", capacity=3))
            await publish_event(br, topics, _posted("p-2", capacity=3))
            for sid in ("s-1", "s-2", "s-3"):
                await publish_event(br, topics, _registered(sid, "p-1", "p-2"))
            await eventually(lambda: settled(1), wait=20, interval=0.05, what="a first round")
            assert len(_completed(fake)) == 1  # one debounced round for the burst of changes
            first = {p.data.student_id: p for p in _proposed(fake)}
            assert {p.data.placement_id for p in first.values()} == {"p-1"}
            decline = _response(ev.MatchDeclined, first["s-2"], by="company")
            await publish_event(br, topics, decline)
            await eventually(lambda: settled(2), wait=20, interval=0.05, what="a second round")
    finally:
        await service.auto.close()
    assert len(_completed(fake)) == 2
    assert [(p.data.student_id, p.data.placement_id) for p in _proposed(fake)[3:]] == [
        ("s-2", "p-2")
    ]
    cancelled = [e for e in fake.published if isinstance(e, ev.MatchCancelled)]
    assert [(c.data.student_id, c.data.reason) for c in cancelled] == [("s-2", "declined")]


async def test_regions_changed_before_a_restart_get_their_automatic_round(
    fake: InMemoryMatchingUnitOfWork,
) -> None:
    # Applied by the replica before it stopped, whose timer never fired.
    auto = lambda region: region == REGION  # noqa: E731
    await handlers.apply_placement_event(_posted("p-1"), fake, automatic=auto)
    await handlers.apply_student_event(_registered("s-1", "p-1"), fake, automatic=auto)
    assert _completed(fake) == []

    service = _container(fake, auto_regions=REGION, auto_round_delay_seconds=0.05)
    try:
        await service.resume_automatic_rounds()  # what `running` does at start
        await eventually(
            lambda: service.auto.idle and _completed(fake), wait=20, interval=0.05, what="a round"
        )
    finally:
        await service.auto.close()
    assert [(p.data.student_id, p.data.placement_id) for p in _proposed(fake)] == [("s-1", "p-1")]
    assert [r.trigger for r in fake.model.rounds.values()] == ["automatic"]
