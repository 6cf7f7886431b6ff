"""A coordinator's reports (`handlers.region_overview`, `round_report`, `unplaced_students`,
`region_matches`) over a unit of work: the same cases against the in-memory fake and (marked
infra) against real PostgreSQL, whose answers are counted in SQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.commands import (
    AnswerMatch,
    RequestRound,
    WithdrawPlacement,
    WithdrawStudent,
)
from services.placements.domain.errors import NotFound
from services.placements.domain.reports import UnplacedQuery, distance_band, distance_km
from shared.contracts import events as ev
from shared.contracts.profiles import GeoPoint
from tests.handlers.placements.test_handlers import post, register
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier
from tests.support.factories import every_event, proposed

HOME = GeoPoint(lat=59.3, lon=18.0)
FAR = GeoPoint(lat=59.8, lon=18.0)  # half a degree north of HOME: about 56 km


def completed(round_id: uuid.UUID, region: str) -> ev.MatchingRoundCompleted:
    example = next(e for e in every_event() if isinstance(e, ev.MatchingRoundCompleted))
    data = example.data.model_copy(update={"round_id": round_id, "region": region})
    return ev.MatchingRoundCompleted(producer="matching", data=data)


class ReportContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def test_the_overview_counts_the_region_and_names_its_latest_round(
        self, uow: Any
    ) -> None:
        empty = await handlers.region_overview("R1", uow)
        assert (empty.students, empty.placements, empty.slots, empty.last_round) == (0, 0, 0, None)
        await handlers.post_placement(post("p-1", "R1", capacity=2), uow)
        await handlers.post_placement(post("p-2", "R1", capacity=3), uow)
        await handlers.post_placement(post("p-3", "R1", capacity=7), uow)
        await handlers.withdraw_placement(WithdrawPlacement("p-3"), uow)
        await handlers.post_placement(post("p-9", "R2", capacity=4), uow)
        await handlers.register_student(register("s-1", ("p-1", "p-2"), "R1"), uow)
        await handlers.register_student(register("s-2", ("p-2",), "R1"), uow)
        await handlers.register_student(register("s-3", (), "R1"), uow)
        await handlers.register_student(register("s-4", ("p-1",), "R1"), uow)
        await handlers.withdraw_student(WithdrawStudent("s-4"), uow)
        await handlers.register_student(register("s-9", ("p-9",), "R2"), uow)
        first = await handlers.request_round(RequestRound("R1"), uow)
        standing = proposed("s-1", "p-1", first, 1)
        declined = proposed("s-2", "p-2", first, 1)
        for m in (standing, declined, proposed("s-9", "p-9", uuid.uuid4(), 1, "R2")):
            await handlers.apply_match_proposed(m, uow)
        await handlers.answer_match(AnswerMatch(declined.data.match_id, "student", "decline"), uow)
        await handlers.apply_round_completed(completed(first, "R1"), uow)
        latest = await handlers.request_round(RequestRound("R1", "stable"), uow)
        await handlers.apply_round_completed(completed(uuid.uuid4(), "R2"), uow)

        found = await handlers.region_overview("R1", uow)
        assert (found.students, found.ranked, found.unranked) == (3, 2, 1)
        assert (found.standing, found.without_match) == (1, 2)
        assert (found.placements, found.slots) == (2, 5)
        assert found.last_round is not None
        assert (found.last_round.round_id, found.last_round.status) == (latest, "requested")
        assert found.last_round.policy == "stable"
        other = await handlers.region_overview("R2", uow)
        assert (other.students, other.standing, other.placements, other.slots) == (1, 1, 1, 4)
        assert other.last_round is not None
        assert other.last_round.status == "completed"
        assert other.last_round.figures is not None

    async def test_a_round_breaks_its_new_proposals_down_by_rank_programme_and_distance(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-near", "R1", site=HOME), uow)
        await handlers.post_placement(post("p-far", "R1", site=FAR), uow)
        await handlers.post_placement(post("p-nowhere", "R1", site=None), uow)
        students = (
            ("s-1", "EE", HOME),
            ("s-2", "EE", HOME),
            ("s-3", "BA", None),
            ("s-4", None, HOME),
            ("s-5", "HV", HOME),
        )
        for sid, programme, home in students:
            await handlers.register_student(
                register(sid, (), "R1", programme=programme, home=home), uow
            )
        await handlers.withdraw_student(WithdrawStudent("s-5"), uow)  # home erased
        round_id = await handlers.request_round(RequestRound("R1"), uow)
        for sid, pid, rank in (
            ("s-1", "p-near", 1),
            ("s-2", "p-far", 3),
            ("s-3", "p-near", 1),
            ("s-4", "p-nowhere", None),
            ("s-5", "p-far", 2),
        ):
            await handlers.apply_match_proposed(proposed(sid, pid, round_id, rank), uow)
        # another round's proposal (of a student this report does not know) is not counted
        await handlers.apply_match_proposed(proposed("s-x", "p-far", uuid.uuid4(), 2), uow)

        report = await handlers.round_report(round_id, uow)
        assert report.round.round_id == round_id
        b = report.breakdown
        assert b.proposals == 5
        assert b.by_rank == {1: 2, 2: 1, 3: 1, None: 1}
        assert b.by_programme == {"EE": 2, "BA": 1, "HV": 1, None: 1}
        far = distance_band(distance_km(HOME.lat, HOME.lon, FAR.lat, FAR.lon))
        assert far == 4  # 50 km up to 100
        assert b.by_distance == {0: 1, far: 1, None: 3}
        nothing = await handlers.request_round(RequestRound("R1"), uow)
        assert (await handlers.round_report(nothing, uow)).breakdown.proposals == 0
        with pytest.raises(NotFound):
            await handlers.round_report(uuid.uuid4(), uow)

    async def test_unplaced_students_are_those_without_a_standing_match(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", "R1"), uow)
        for sid in ("s-3", "s-1", "s-2", "s-4"):
            await handlers.register_student(register(sid, ("p-1",), "R1", programme="EE"), uow)
        await handlers.register_student(register("s-0", (), "R1", programme=None), uow)
        await handlers.register_student(register("s-8", (), "R2"), uow)
        await handlers.withdraw_student(WithdrawStudent("s-4"), uow)
        round_id = uuid.uuid4()
        placed, declined = proposed("s-1", "p-1", round_id, 1), proposed("s-2", "p-1", round_id, 1)
        for m in (placed, declined):
            await handlers.apply_match_proposed(m, uow)
        await handlers.answer_match(AnswerMatch(declined.data.match_id, "company", "decline"), uow)

        page = await handlers.unplaced_students(UnplacedQuery("R1", limit=10), uow)
        assert [(u.student_id, u.programme, u.choices) for u in page] == [
            ("s-0", None, 0),
            ("s-2", "EE", 1),
            ("s-3", "EE", 1),
        ]
        second = await handlers.unplaced_students(UnplacedQuery("R1", limit=2, offset=2), uow)
        assert [u.student_id for u in second] == ["s-3"]

    async def test_the_region_matches_are_listed_by_student_oldest_first(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", "R1"), uow)
        await handlers.post_placement(post("p-2", "R1"), uow)
        round_id = uuid.uuid4()
        first = proposed("s-2", "p-1", round_id, 2)
        second = proposed("s-2", "p-2", round_id, 1)
        other = proposed("s-1", "p-2", round_id, None)
        await handlers.apply_match_proposed(first, uow)
        await handlers.answer_match(AnswerMatch(first.data.match_id, "student", "decline"), uow)
        for m in (second, other, proposed("s-9", "p-1", round_id, 1, "R2")):
            await handlers.apply_match_proposed(m, uow)  # s-2's next, once the first is closed
        await handlers.answer_match(AnswerMatch(second.data.match_id, "student", "accept"), uow)

        found = await handlers.region_matches("R1", uow)
        assert [(m.student_id, m.placement_id, m.rank, m.state) for m in found] == [
            ("s-1", "p-2", None, "proposed"),
            ("s-2", "p-1", 2, "declined"),
            ("s-2", "p-2", 1, "accepted"),
        ]
        assert {m.company_id for m in found} == {"c-1"}
        assert found[1].match_id == first.data.match_id
        assert found[1].round_id == round_id
        assert await handlers.region_matches("R3", uow) == []


class TestInMemory(InMemoryTier, ReportContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, ReportContract):
    pass
