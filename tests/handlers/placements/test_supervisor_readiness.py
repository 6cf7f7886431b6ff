"""Supervisor readiness over a unit of work (`handlers.record_training`,
`set_readiness_settings`, `supervisors_not_ready`, the readiness check of `answer_match`, the
training and confirm links, `notice_context`, `reminders_due`): the same cases against the
in-memory fake and (marked infra) against real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain import links
from services.placements.domain.audit import AuditQuery
from services.placements.domain.commands import (
    AnswerMatch,
    NotReadyQuery,
    RecordTraining,
    SetReadinessSettings,
    WithdrawPlacement,
)
from services.placements.domain.errors import Invalid
from services.placements.domain.supervisors import NotReady, SupervisorKey
from shared.contracts import events as ev
from shared.contracts.links import new_link
from tests.handlers.placements.test_handlers import confirmation, post, proposal, register
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier

REGION = "SE-AB"
TODAY = datetime.now(UTC).date()
COORDINATOR = ev.Actor(subject="coord-1", role="coordinator", client="apl-web")
ANNA = {"name": "Anna Berg", "email": "anna@example.se", "language": "sv"}
BERT = {"name": "Bert Ek", "email": "bert@example.se", "language": "fi"}
CARL = {"name": "Carl Ny", "email": "carl@example.se", "language": "en"}
COURSE = "https://kurs.example.se/handledare"


def years_ago(years: int, days: int = 0) -> date:
    return TODAY.replace(year=TODAY.year - years) - timedelta(days=days)


def fields(error: Invalid | NotReady) -> list[str]:
    return [e.field for e in error.errors]


async def require(uow: Any, *, on: bool = True, years: int = 3) -> None:
    command = SetReadinessSettings(REGION, COURSE, years, require_readiness=on)
    await handlers.set_readiness_settings(command, uow)


async def train(uow: Any, email: str, day: date | None, company: str = "c-1") -> Any:
    return await handlers.record_training(RecordTraining(REGION, company, email, day), uow)


class ReadinessContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[ev.Event]:
        raise NotImplementedError

    async def proposed(self, uow: Any, sid: str = "s-1", pid: str = "p-1") -> ev.MatchProposed:
        await handlers.register_student(register(sid), uow)
        match = proposal(sid, pid)
        await handlers.apply_match_proposed(match, uow)
        return match

    # ------------------------------------------------------------------------- the records

    async def test_a_coordinator_records_a_course_the_day_deciding_its_status(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        uow.actor = COORDINATOR
        found = await train(uow, "Anna@Example.se", years_ago(1))
        assert found.record.key == SupervisorKey("c-1", "anna@example.se")
        assert (found.training.status, found.record.recorded_by) == ("valid", "coordinator")
        assert found.training.expires_on == years_ago(1).replace(year=years_ago(1).year + 3)
        old = await train(uow, "anna@example.se", years_ago(4))
        assert old.training.status == "expired"
        cleared = await train(uow, "anna@example.se", None)
        assert (cleared.record.trained_on, cleared.training.status) == (None, "not_started")
        trail = await handlers.audit_of_region(AuditQuery(REGION, limit=10), uow)
        recorded = [r for r in trail if r.event_type == "SupervisorTrainingRecorded"]
        assert len(recorded) == 3
        assert {r.actor for r in recorded} == {COORDINATOR}

    async def test_a_day_in_the_future_is_refused_naming_trained_on_writing_nothing(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        with pytest.raises(Invalid) as refused:
            await train(uow, "anna@example.se", TODAY + timedelta(days=1))
        assert fields(refused.value) == ["trained_on"]
        assert "is in the future" in refused.value.errors[0].message
        assert (await train(uow, "anna@example.se", TODAY)).training.status == "valid"
        with pytest.raises(Invalid):
            await train(uow, "anna@example.se", TODAY + timedelta(days=400))
        async with uow:
            records = await uow.readiness.supervisors([SupervisorKey("c-1", "anna@example.se")])
        assert [r.trained_on for r in records.values()] == [TODAY]  # the refusal wrote nothing
        trail = await handlers.audit_of_region(AuditQuery(REGION, limit=10), uow)
        assert [r.event_type for r in trail].count("SupervisorTrainingRecorded") == 1

    async def test_only_a_supervisor_a_placement_of_the_region_names_is_recorded(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        await handlers.post_placement(post("p-9", region="SE-O", company_id="c-9"), uow)
        with pytest.raises(Invalid) as unknown:
            await train(uow, "bert@example.se", years_ago(1))
        assert fields(unknown.value) == ["email"]
        with pytest.raises(Invalid) as elsewhere:
            await train(uow, "anna@example.se", years_ago(1), company="c-9")
        assert fields(elsewhere.value) == ["company_id"]
        with pytest.raises(Invalid) as both:
            await train(uow, "bert@example.se", TODAY + timedelta(days=3))
        assert sorted(fields(both.value)) == ["email", "trained_on"]
        async with uow:
            assert await uow.readiness.supervisors([SupervisorKey("c-1", "bert@example.se")]) == {}
        # a withdrawn placement still names its supervisor (their record outlives it)
        await handlers.withdraw_placement(WithdrawPlacement("p-1"), uow)
        assert (await train(uow, "anna@example.se", years_ago(2))).training.valid

    async def test_settings_are_the_defaults_until_set_and_bad_ones_are_named(
        self, uow: Any
    ) -> None:
        first = await handlers.readiness_settings(REGION, uow)
        assert (first.course_url, first.validity_years, first.require_readiness) == (
            None,
            3,
            False,
        )
        uow.actor = COORDINATOR
        saved = await handlers.set_readiness_settings(
            SetReadinessSettings(REGION, f"  {COURSE} ", 5, require_readiness=True), uow
        )
        assert (saved.course_url, saved.validity_years, saved.require_readiness) == (
            COURSE,
            5,
            True,
        )
        assert saved.updated_at is not None
        with pytest.raises(Invalid) as refused:
            await handlers.set_readiness_settings(
                SetReadinessSettings(REGION, "kurs.example.se", 0, require_readiness=False), uow
            )
        assert sorted(fields(refused.value)) == ["course_url", "validity_years"]
        kept = await handlers.readiness_settings(REGION, uow)
        assert (kept.course_url, kept.validity_years, kept.require_readiness) == (COURSE, 5, True)
        other = await handlers.readiness_settings("SE-O", uow)
        assert other.require_readiness is False
        trail = await handlers.audit_of_region(AuditQuery(REGION, limit=10), uow)
        assert [(r.event_type, r.actor) for r in trail] == [
            ("ReadinessSettingsChanged", COORDINATOR)
        ]

    async def test_the_coordinator_sees_the_placements_whose_supervisor_is_not_ready(
        self, uow: Any
    ) -> None:
        starts = date(2027, 2, 1)
        for pid, supervisor, day in (
            ("p-anna", ANNA, 20),
            ("p-bert", BERT, 5),
            ("p-carl", CARL, 10),
            ("p-none", None, 1),
            ("p-gone", ANNA, 2),
        ):
            command = post(pid, supervisor=supervisor, starts_on=starts + timedelta(days=day))
            await handlers.post_placement(command, uow)
        await handlers.post_placement(post("p-away", region="SE-O", supervisor=ANNA), uow)
        await handlers.withdraw_placement(WithdrawPlacement("p-gone"), uow)
        await train(uow, "bert@example.se", years_ago(1))
        await train(uow, "carl@example.se", years_ago(10))
        await self.proposed(uow, "s-1", "p-anna")
        found = await handlers.supervisors_not_ready(NotReadyQuery(REGION), uow)
        assert [(r.offer.placement_id, r.status) for r in found.items] == [
            ("p-none", "no_supervisor"),
            ("p-carl", "expired"),
            ("p-anna", "not_started"),
        ]
        assert (found.total, found.placements, found.ready) == (3, 4, 1)
        assert [r.standing for r in found.items] == [0, 0, 1]
        carl = found.items[1].training
        assert carl is not None
        assert carl.trained_on == years_ago(10)
        page = await handlers.supervisors_not_ready(NotReadyQuery(REGION, limit=1, offset=1), uow)
        assert ([r.offer.placement_id for r in page.items], page.total) == (["p-carl"], 3)
        await train(uow, "anna@example.se", years_ago(0, days=3))
        after = await handlers.supervisors_not_ready(NotReadyQuery(REGION), uow)
        assert [r.offer.placement_id for r in after.items] == ["p-none", "p-carl"]

    # -------------------------------------------------------------------- the confirmation

    async def test_a_region_requiring_readiness_refuses_the_companys_accept_until_ready(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        match = await self.proposed(uow)
        match_id = match.data.match_id
        await require(uow)
        before = await self.published(uow)
        with pytest.raises(NotReady) as refused:
            await handlers.answer_match(AnswerMatch(match_id, "company", "accept"), uow)
        assert refused.value.reason == "not_started"
        assert fields(refused.value) == ["supervisor.training"]
        assert "anna@example.se has no supervisor training recorded" in refused.value.detail
        assert await self.published(uow) == before  # nothing published, nothing changed
        assert (await handlers.student_match("s-1", uow)).state == "proposed"
        # the student's accept does not confirm: it is taken; a decline is always taken
        await handlers.answer_match(AnswerMatch(match_id, "student", "accept"), uow)
        await train(uow, "anna@example.se", years_ago(4))  # too old for 3 years
        with pytest.raises(NotReady) as expired:
            await handlers.answer_match(AnswerMatch(match_id, "company", "accept"), uow)
        assert expired.value.reason == "expired"
        await train(uow, "anna@example.se", years_ago(2))
        done = await handlers.answer_match(AnswerMatch(match_id, "company", "accept"), uow)
        assert (done.accepted_by_student, done.accepted_by_company) == (True, True)

    async def test_the_students_accept_that_would_confirm_is_refused_too(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        match = await self.proposed(uow)
        match_id = match.data.match_id
        await handlers.answer_match(AnswerMatch(match_id, "company", "accept"), uow)  # not yet on
        await require(uow)
        with pytest.raises(NotReady):
            await handlers.answer_match(AnswerMatch(match_id, "student", "accept"), uow)
        await require(uow, on=False)
        accepted = await handlers.answer_match(AnswerMatch(match_id, "student", "accept"), uow)
        assert accepted.accepted_by_student

    async def test_a_placement_without_a_supervisor_is_never_ready(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", supervisor=None), uow)
        match = await self.proposed(uow)
        await require(uow)
        with pytest.raises(NotReady) as refused:
            await handlers.answer_match(AnswerMatch(match.data.match_id, "company", "accept"), uow)
        assert (refused.value.reason, fields(refused.value)) == ("no_supervisor", ["supervisor"])

    # ---------------------------------------------------------------------- notice context

    async def test_the_notice_context_carries_the_supervisors_readiness(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        await handlers.post_placement(post("p-2", supervisor=None), uow)
        await handlers.register_student(register("s-1"), uow)
        told = (await handlers.notice_context("p-1", "s-1", uow)).readiness
        assert told is not None
        assert (told.status, told.course_url, told.required, told.validity_years) == (
            "not_started",
            None,
            False,
            3,
        )
        await require(uow, years=2)
        await train(uow, "anna@example.se", years_ago(3))
        told = (await handlers.notice_context("p-1", "s-1", uow)).readiness
        assert told is not None
        assert (told.status, told.trained_on, told.course_url, told.required) == (
            "expired",
            years_ago(3),
            COURSE,
            True,
        )
        assert (await handlers.notice_context("p-2", "s-1", uow)).readiness is None

    # -------------------------------------------------------------------------- the links

    async def test_a_training_link_records_the_course_once_as_the_supervisor(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        match = await self.proposed(uow)
        link = new_link(uuid.uuid4(), match.data.match_id, "training", now=datetime.now(UTC))
        uow.actor = links.actor_of(link)
        page = await handlers.action_link_page(link, uow)
        assert (page.kind, page.status, page.asks_training) == ("ask", 200, True)
        assert page.readiness is not None
        assert page.readiness.status == "not_started"
        for typed, problem in (
            (None, "missing"),
            ("", "missing"),
            ("14.9.2026", "unreadable"),
            ((TODAY + timedelta(days=1)).isoformat(), "future"),
            ("1901-01-01", "too_old"),
        ):
            refused = await handlers.use_action_link(link, uow, trained_on=typed)
            assert (refused.kind, refused.error, refused.status) == ("ask", problem, 422)
        async with uow:
            assert not await uow.action_links.used(link.link_id)
            assert await uow.readiness.supervisors([SupervisorKey("c-1", "anna@example.se")]) == {}
        day = years_ago(1)
        done = await handlers.use_action_link(link, uow, trained_on=day.isoformat())
        assert (done.kind, done.key, done.status) == ("done", "done_training", 200)
        assert done.readiness is not None
        assert (done.readiness.status, done.readiness.trained_on) == ("valid", day)
        async with uow:
            [record] = (
                await uow.readiness.supervisors([SupervisorKey("c-1", "anna@example.se")])
            ).values()
        assert (record.trained_on, record.recorded_by) == (day, "supervisor")
        again = await handlers.use_action_link(link, uow, trained_on=TODAY.isoformat())
        assert (again.kind, again.status) == ("used", 410)
        assert (await handlers.student_match("s-1", uow)).state == "proposed"  # no answer
        old = new_link(uuid.uuid4(), match.data.match_id, "training", now=datetime.now(UTC))
        late = await handlers.use_action_link(old, uow, trained_on=years_ago(9).isoformat())
        assert late.key == "done_training_expired"

    async def test_a_confirm_link_asks_for_the_course_when_the_region_requires_it(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1", supervisor=ANNA), uow)
        match = await self.proposed(uow)
        await require(uow)
        link = new_link(uuid.uuid4(), match.data.match_id, "confirm", now=datetime.now(UTC))
        uow.actor = links.actor_of(link)
        page = await handlers.action_link_page(link, uow)
        assert (page.kind, page.asks_training) == ("ask", True)
        refused = await handlers.use_action_link(link, uow)  # no day given
        assert (refused.kind, refused.status) == ("not_ready", 409)
        too_old = await handlers.use_action_link(link, uow, trained_on=years_ago(5).isoformat())
        assert (too_old.kind, too_old.status) == ("not_ready", 409)
        async with uow:
            assert not await uow.action_links.used(link.link_id)
            assert await uow.readiness.supervisors([SupervisorKey("c-1", "anna@example.se")]) == {}
        future = await handlers.use_action_link(
            link, uow, trained_on=(TODAY + timedelta(days=2)).isoformat()
        )
        assert (future.kind, future.error, future.status) == ("ask", "future", 422)
        done = await handlers.use_action_link(link, uow, trained_on=years_ago(1).isoformat())
        assert (done.kind, done.summary and done.summary.state) == ("done", "accepted")
        assert done.readiness is not None
        assert done.readiness.ready
        [accepted] = [e for e in await self.published(uow) if isinstance(e, ev.MatchAccepted)]
        assert (accepted.data.by, accepted.actor and accepted.actor.role) == (
            "company",
            "supervisor",
        )
        # a region that does not require it asks for no day
        await require(uow, on=False)
        other = await self.proposed(uow, "s-2")
        plain = new_link(uuid.uuid4(), other.data.match_id, "confirm", now=datetime.now(UTC))
        assert not (await handlers.action_link_page(plain, uow)).asks_training

    # --------------------------------------------------------------------------- reminders

    async def test_the_confirmed_matches_starting_soon_are_due_for_a_reminder(
        self, uow: Any
    ) -> None:
        soon, later = TODAY + timedelta(days=3), TODAY + timedelta(days=30)
        await handlers.post_placement(post("p-soon", starts_on=soon, ends_on=later), uow)
        await handlers.post_placement(post("p-later", starts_on=later, ends_on=later), uow)
        await handlers.post_placement(post("p-gone", starts_on=soon, ends_on=later), uow)
        confirmed = []
        for sid, pid in (
            ("s-1", "p-soon"),
            ("s-2", "p-soon"),
            ("s-3", "p-later"),
            ("s-4", "p-gone"),
        ):
            match = await self.proposed(uow, sid, pid)
            await handlers.apply_match_confirmed(confirmation(match), uow)
            confirmed.append(match.data)
        await self.proposed(uow, "s-5", "p-soon")  # proposed only
        await handlers.withdraw_placement(WithdrawPlacement("p-gone"), uow)
        window = (TODAY, TODAY + timedelta(days=7))
        due = await handlers.reminders_due(*window, uow)
        wanted = sorted((m.match_id, m.student_id) for m in confirmed[:2])
        assert [(d.match_id, d.student_id) for d in due.items] == wanted
        assert {(d.placement_id, d.starts_on, d.region) for d in due.items} == {
            ("p-soon", soon, REGION)
        }
        assert due.next_after is None
        first = await handlers.reminders_due(*window, uow, limit=1)
        assert ([d.match_id for d in first.items], first.next_after) == (
            [wanted[0][0]],
            wanted[0][0],
        )
        rest = await handlers.reminders_due(*window, uow, after=first.next_after, limit=1)
        assert ([d.match_id for d in rest.items], rest.next_after) == ([wanted[1][0]], None)
        with pytest.raises(Invalid) as backwards:
            await handlers.reminders_due(TODAY, TODAY - timedelta(days=1), uow)
        assert fields(backwards.value) == ["starts_until"]


class TestInMemory(InMemoryTier, ReadinessContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, ReadinessContract):
    pass
