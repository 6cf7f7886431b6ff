"""Teacher rounds in the matching service, alike on the in-memory fake and real PostgreSQL.

A round is of students or of teachers (`MatchingRoundRequested.participant`): it loads only its
participants and the placements of their kind, keeps and cancels only matches at placements of
that kind, and says whose it was on its outcomes and its completion. The real engine solves, so
a teacher's available weeks decide too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest

from services.matching import handlers
from services.matching.adapters.engine import engine_solver
from services.matching.adapters.repository import MatchingUnitOfWork, PostgresMatchingUnitOfWork
from services.matching.bootstrap import MIGRATIONS
from shared.contracts import events as ev
from shared.contracts.events import parse_event
from shared.db import create_pool, migrate
from tests.handlers.matching.test_handlers import (
    REGION,
    accepted,
    of,
    outcomes_of,
    posted,
    registered,
    request,
)
from tests.support.factories import placement, student
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork


def period(pid: str, capacity: int = 1) -> ev.PlacementPosted:
    """A working-life period for teachers: three weeks, 2027-W10 to 2027-W12."""
    offer = placement(
        pid,
        capacity=capacity,
        kind="teacher",
        title="Battery cell production, working-life period",
        required_skills=("battery-hv",),
        programmes=("EE",),
        starts_on=date(2027, 3, 8),
        ends_on=date(2027, 3, 26),
    )
    return ev.PlacementPosted(producer="t", data=offer)


def teacher(tid: str, *prefs: str, weeks: tuple[str, ...] = ()) -> ev.StudentRegistered:
    profile = student(
        tid,
        prefs=prefs,
        participant="teacher",
        subject="Electrical installation",
        skills=("battery-hv",),
        available_from=None,
        available_to=None,
        available_weeks=weeks,
    )
    return ev.StudentRegistered(producer="t", data=profile)


W10_12 = ("2027-W10", "2027-W11", "2027-W12")


class TeacherRoundContract:
    @pytest.fixture
    def uow(self) -> MatchingUnitOfWork:
        raise NotImplementedError

    async def published(self, uow: MatchingUnitOfWork) -> list[ev.Event]:
        raise NotImplementedError

    async def apply(self, uow: MatchingUnitOfWork, *events: ev.Event) -> None:
        for e in events:
            if isinstance(e, ev.PlacementPosted):
                await handlers.apply_placement_event(e, uow)
            elif isinstance(e, ev.StudentRegistered):
                await handlers.apply_student_event(e, uow)
            elif isinstance(e, ev.MatchAccepted):
                await handlers.respond_to_match(e, uow)
            else:
                raise TypeError(e.type)

    async def round(self, uow: MatchingUnitOfWork, **options: Any) -> uuid.UUID:
        req = request(**options)
        await handlers.handle_round_request(req, lambda: uow, solver=engine_solver)
        return req.data.round_id

    async def setup_region(self, uow: MatchingUnitOfWork) -> None:
        """Two students at the student placement p-1, two teachers at the period w-1 (one
        slot) and w-2 (one slot), each ranking it first; t-3 is free in other weeks only."""
        await self.apply(
            uow,
            posted("p-1", capacity=2),
            period("w-1"),
            period("w-2"),
            registered("s-1", "p-1"),
            registered("s-2", "p-1"),
            teacher("t-1", "w-1", "w-2", weeks=W10_12),
            teacher("t-2", "w-1", "w-2"),
            teacher("t-3", "w-1", weeks=("2027-W20",)),
        )

    async def test_a_teacher_round_places_teachers_only_and_says_so(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.setup_region(uow)
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION, participant="teacher")
        assert [s.student_id for s in problem.students] == ["t-1", "t-2", "t-3"]
        assert [p.placement_id for p in problem.placements] == ["w-1", "w-2"]

        round_id = await self.round(uow, participant="teacher")
        out = await self.published(uow)
        assert {p.data.student_id for p in of(out, ev.MatchProposed)} == {"t-1", "t-2"}
        (done,) = of(out, ev.MatchingRoundCompleted)
        assert done.data.participant == "teacher"
        assert done.data.figures.students == 3
        assert done.data.figures.placed == 2
        assert all(part.data.participant == "teacher" for part in of(out, ev.MatchingRoundOutcomes))
        outcome = outcomes_of(out, round_id)["t-3"]
        assert outcome.placement_id is None
        assert outcome.reason == "no_eligible_choice"
        (note,) = outcome.explanation.better_choices
        assert [r.rule for r in note.rules] == ["available_weeks"]
        assert note.rules[0].unavailable_weeks == W10_12

    async def test_student_and_teacher_rounds_never_touch_each_other(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.setup_region(uow)
        await self.round(uow, participant="teacher")
        teachers = {p.data.student_id: p for p in of(await self.published(uow), ev.MatchProposed)}
        await self.apply(uow, accepted(teachers["t-1"], "student"))  # t-1's match is pinned

        student_round = await self.round(uow)
        out = await self.published(uow)
        (done,) = [
            e for e in of(out, ev.MatchingRoundCompleted) if e.data.round_id == student_round
        ]
        assert done.data.participant == "student"
        assert done.data.figures.students == 2
        assert done.data.cancelled == 0  # the teachers' matches are not the student round's
        assert set(outcomes_of(out, student_round)) == {"s-1", "s-2"}
        students = [p for p in of(out, ev.MatchProposed) if p.data.round_id == student_round]
        assert sorted((p.data.student_id, p.data.placement_id) for p in students) == [
            ("s-1", "p-1"),
            ("s-2", "p-1"),
        ]

        # a second teacher round keeps both teachers' matches (one pinned, one standing)
        again = await self.round(uow, participant="teacher")
        out = await self.published(uow)
        assert not of(out, ev.MatchCancelled)
        kept = outcomes_of(out, again)
        assert kept["t-1"].pinned
        assert kept["t-1"].placement_id == teachers["t-1"].data.placement_id
        assert kept["t-2"].previous_placement_id == teachers["t-2"].data.placement_id
        assert not [p for p in of(out, ev.MatchProposed) if p.data.round_id == again]

    async def test_a_choice_of_the_other_kind_is_no_choice_of_the_round(
        self, uow: MatchingUnitOfWork
    ) -> None:
        """Ranked anyway (by an integration: the placements service refuses it), a placement
        of the other kind is not loaded: it is not a known placement of this round."""
        await self.apply(
            uow,
            posted("p-1", capacity=2),
            period("w-1"),
            registered("s-1", "w-1", "p-1"),
            teacher("t-1", "p-1", "w-1"),
        )
        students = await self.round(uow)
        teachers = await self.round(uow, participant="teacher")
        out = await self.published(uow)
        s1 = outcomes_of(out, students)["s-1"]
        t1 = outcomes_of(out, teachers)["t-1"]
        assert (s1.placement_id, s1.rank) == ("p-1", 2)
        assert [(n.placement_id, n.status) for n in s1.explanation.better_choices] == [
            ("w-1", "unknown")
        ]
        assert (t1.placement_id, t1.rank) == ("w-1", 2)
        assert [(n.placement_id, n.status) for n in t1.explanation.better_choices] == [
            ("p-1", "unknown")
        ]

    async def test_fill_in_a_teacher_round_uses_teacher_periods_only(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(
            uow,
            ev.PlacementPosted(producer="t", data=placement("p-1", capacity=5, required_skills=())),
            period("w-1"),
            teacher("t-1"),  # ranks nothing: only fill can place them
        )
        round_id = await self.round(uow, participant="teacher", fill=True)
        outcome = outcomes_of(await self.published(uow), round_id)["t-1"]
        assert (outcome.placement_id, outcome.filled) == ("w-1", True)


class TestInMemory(TeacherRoundContract):
    @pytest.fixture
    def uow(self) -> InMemoryMatchingUnitOfWork:
        return InMemoryMatchingUnitOfWork()

    async def published(self, uow: MatchingUnitOfWork) -> list[ev.Event]:
        if not isinstance(uow, InMemoryMatchingUnitOfWork):
            raise TypeError(type(uow).__name__)
        return list(uow.published)


@pytest.mark.infra
class TestPostgres(TeacherRoundContract):
    @pytest.fixture
    async def uow(
        self, database_url: str, fresh_schema: str
    ) -> AsyncIterator[PostgresMatchingUnitOfWork]:
        await migrate(database_url, fresh_schema, MIGRATIONS)
        pool = await create_pool(database_url, fresh_schema, min_size=1, max_size=2)
        try:
            yield PostgresMatchingUnitOfWork(pool)
        finally:
            await pool.close()

    async def published(self, uow: MatchingUnitOfWork) -> list[ev.Event]:
        if not isinstance(uow, PostgresMatchingUnitOfWork):
            raise TypeError(type(uow).__name__)
        async with uow:
            rows = await uow.conn.fetch("SELECT topic, payload FROM outbox ORDER BY id")
        return [parse_event(r["topic"], bytes(r["payload"])) for r in rows]

    async def test_the_read_model_keeps_who_and_what_kind(
        self, uow: PostgresMatchingUnitOfWork
    ) -> None:
        await self.setup_region(uow)
        round_id = await self.round(uow, participant="teacher")
        async with uow:
            kinds = await uow.conn.fetch("SELECT placement_id, kind FROM placements ORDER BY 1")
            who = await uow.conn.fetch("SELECT student_id, participant FROM students ORDER BY 1")
            recorded = await uow.conn.fetchval(
                "SELECT participant FROM rounds WHERE round_id = $1", round_id
            )
        assert [tuple(r) for r in kinds] == [
            ("p-1", "student"),
            ("w-1", "teacher"),
            ("w-2", "teacher"),
        ]
        assert [tuple(r) for r in who] == [
            ("s-1", "student"),
            ("s-2", "student"),
            ("t-1", "teacher"),
            ("t-2", "teacher"),
            ("t-3", "teacher"),
        ]
        assert recorded == "teacher"
