"""Teachers and their working-life periods in the placements handlers, alike on the in-memory
fake and (marked infra) real PostgreSQL: registration, the teacher's own profile, periods,
rankings that never cross kinds, teacher rounds, their outcomes, vacancies and report."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.commands import (
    AssignMatch,
    ListPlacements,
    OpenSupplementary,
    PatchPlacement,
    RegisterStudents,
    RequestRound,
    SetPreferences,
    UpdateTeacher,
    WithdrawStudent,
)
from services.placements.domain.errors import Invalid, NotFound
from shared.contracts import events as ev
from shared.contracts.outcomes import ChoiceNote, RuleFailure
from shared.contracts.vocabulary import Participant
from tests.handlers.placements.test_handlers import fields, post, register
from tests.handlers.placements.test_outcomes import completed, outcome, outcomes_events
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier

REGION = "SE-AB"
WEEKS = ("2027-W10", "2027-W11", "2027-W12")


def period(pid: str, capacity: int = 1, **kw: Any) -> Any:
    """A working-life period for teachers, 2027-W10 to 2027-W12 (8 to 26 March 2027)."""
    fields_ = {
        "kind": "teacher",
        "title": "Battery cell production",
        "required_skills": ("battery-hv",),
        "starts_on": date(2027, 3, 8),
        "ends_on": date(2027, 3, 26),
        "capacity": capacity,
        **kw,
    }
    return post(pid, **fields_)


def teacher(tid: str, prefs: tuple[str, ...] = (), **kw: Any) -> Any:
    fields_ = {
        "participant": "teacher",
        "subject": "Electrical installation",
        "skills": ("battery-hv",),
        "available_from": None,
        "available_to": None,
        "available_weeks": WEEKS,
        **kw,
    }
    return register(tid, prefs, **fields_)


async def teacher_round(
    uow: Any, found: list[Any], *, participant: Participant = "teacher"
) -> uuid.UUID:
    """A round as matching reports it, of teachers (or students)."""
    round_id = uuid.uuid4()
    for part in outcomes_events(round_id, found):
        part = part.model_copy(
            update={"data": part.data.model_copy(update={"participant": participant})}
        )
        assert await handlers.apply_round_outcomes(part, uow)
    done = completed(round_id, found)
    done = done.model_copy(
        update={"data": done.data.model_copy(update={"participant": participant})}
    )
    assert await handlers.apply_round_completed(done, uow)
    return round_id


class TeacherContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[ev.Event]:
        raise NotImplementedError

    async def world(self, uow: Any) -> None:
        """p-1 for students, w-1 and w-2 periods for teachers (w-2 in weeks 14 to 15)."""
        await handlers.post_placement(post("p-1"), uow)
        await handlers.post_placement(period("w-1"), uow)
        await handlers.post_placement(
            period("w-2", starts_on=date(2027, 4, 5), ends_on=date(2027, 4, 16)), uow
        )

    # ------------------------------------------------------------------------ registration

    async def test_a_teacher_registers_with_subject_skills_and_weeks(self, uow: Any) -> None:
        await self.world(uow)
        found = await handlers.register_student(teacher("t-1", ("w-1", "w-2")), uow)
        assert found.profile.participant == "teacher"
        assert (found.profile.subject, found.profile.available_weeks) == (
            "Electrical installation",
            WEEKS,
        )
        [*_, event] = await self.published(uow)
        assert isinstance(event, ev.StudentRegistered)
        assert event.data == found.profile
        assert (await handlers.get_teacher("t-1", uow)).profile == found.profile
        await handlers.register_student(register("s-1", ("p-1",)), uow)
        with pytest.raises(NotFound, match="s-1 is a student"):
            await handlers.get_teacher("s-1", uow)

    async def test_bad_teacher_and_student_profiles_name_their_fields(self, uow: Any) -> None:
        await self.world(uow)
        before = await self.published(uow)
        cases = [
            (teacher("t-1", subject=None), {"subject"}),
            (
                teacher("t-1", available_weeks=("2027-W10", "2027-W53", "2027-W10")),
                {"available_weeks[1]", "available_weeks[2]"},
            ),
            (register("s-1", subject="Physics"), {"subject"}),
            (register("s-1", available_weeks=("2027-W10",)), {"available_weeks"}),
            # never across kinds: a teacher ranks periods, a student placements for students
            (teacher("t-1", ("p-1", "w-1")), {"preferences[0]"}),
            (register("s-1", ("w-1", "p-1")), {"preferences[0]"}),
        ]
        for command, named in cases:
            with pytest.raises(Invalid) as caught:
                await handlers.register_student(command, uow)
            assert fields(caught.value) == named, command
        with pytest.raises(Invalid) as caught:
            await handlers.register_students(
                RegisterStudents((register("s-2", ("p-1",)), teacher("t-2", ("w-1", "p-1")))), uow
            )
        assert fields(caught.value) == {"items[1].preferences[1]"}
        message = caught.value.errors[0].message
        assert message == (
            "'p-1' is a placement for students; a teacher ranks working-life periods for teachers"
        )
        assert await self.published(uow) == before

    async def test_rankings_never_cross_kinds(self, uow: Any) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1"), uow)
        await handlers.register_student(register("s-1"), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.set_preferences(SetPreferences("t-1", ("w-1", "p-1")), uow)
        assert fields(caught.value) == {"preferences[1]"}
        with pytest.raises(Invalid) as caught:
            await handlers.set_preferences(SetPreferences("s-1", ("w-2",)), uow)
        assert "working-life period for teachers" in caught.value.errors[0].message
        assert (
            await handlers.set_preferences(SetPreferences("t-1", ("w-2", "w-1")), uow)
        ).profile.preferences == ("w-2", "w-1")

    async def test_a_teacher_keeps_their_own_profile(self, uow: Any) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1", ("w-1",)), uow)
        updated = await handlers.update_teacher(
            UpdateTeacher("t-1", " Automation ", ("plc",), ("2027-W14", "2027-W15")), uow
        )
        assert (updated.profile.subject, updated.profile.skills) == ("Automation", ("plc",))
        assert updated.profile.available_weeks == ("2027-W14", "2027-W15")
        assert updated.profile.preferences == ("w-1",)  # the ranking stays
        [*_, event] = await self.published(uow)
        assert isinstance(event, ev.StudentRegistered)
        assert event.data == updated.profile
        with pytest.raises(Invalid) as caught:
            await handlers.update_teacher(UpdateTeacher("t-1", "", (), ("2026-W54",)), uow)
        assert fields(caught.value) == {"subject", "available_weeks[0]"}
        await handlers.register_student(register("s-1"), uow)
        with pytest.raises(NotFound):
            await handlers.update_teacher(UpdateTeacher("s-1", "Maths", (), ()), uow)
        assert (await handlers.get_teacher("t-1", uow)).profile == updated.profile

    # ---------------------------------------------------------------------------- periods

    async def test_a_period_gives_its_days_and_keeps_them(self, uow: Any) -> None:
        with pytest.raises(Invalid) as caught:
            await handlers.post_placement(period("w-1", starts_on=None, ends_on=None), uow)
        assert fields(caught.value) == {"starts_on", "ends_on"}
        await handlers.post_placement(period("w-1"), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.patch_placement(PatchPlacement("w-1", {"ends_on": None}), uow)
        assert fields(caught.value) == {"ends_on"}

    async def test_listings_by_kind(self, uow: Any) -> None:
        await self.world(uow)
        listed = await handlers.list_placements(ListPlacements(region=REGION, kind="teacher"), uow)
        assert [v.placement.placement_id for v in listed] == ["w-1", "w-2"]
        listed = await handlers.list_placements(ListPlacements(region=REGION, kind="student"), uow)
        assert [v.placement.placement_id for v in listed] == ["p-1"]

    # ----------------------------------------------------------------------------- rounds

    async def test_a_teacher_round_needs_periods_and_teachers(self, uow: Any) -> None:
        command = RequestRound(REGION, participant="teacher")
        with pytest.raises(Invalid) as caught:
            await handlers.request_round(command, uow)
        assert fields(caught.value) == {"participant"}
        assert "no open working-life period" in caught.value.errors[0].message
        assert "no registered teacher" in caught.value.errors[0].message
        await self.world(uow)
        with pytest.raises(Invalid, match="no registered teacher"):
            await handlers.request_round(command, uow)
        await handlers.register_student(teacher("t-1", ("w-1",)), uow)
        with pytest.raises(Invalid) as caught:  # no teacher round yet: nobody unplaced
            await handlers.request_round(
                RequestRound(REGION, participant="teacher", kind="supplementary"), uow
            )
        assert fields(caught.value) == {"kind"}
        assert "no unplaced teachers" in caught.value.errors[0].message
        round_id = await handlers.request_round(command, uow)
        [*_, requested] = await self.published(uow)
        assert isinstance(requested, ev.MatchingRoundRequested)
        assert (requested.data.round_id, requested.data.participant) == (round_id, "teacher")
        assert (await handlers.get_round(round_id, uow)).participant == "teacher"

    async def test_outcomes_report_and_vacancies_per_teacher_round(self, uow: Any) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1", ("w-1",)), uow)
        await handlers.register_student(teacher("t-2", ("w-2",)), uow)  # w-2: weeks 14, 15
        await handlers.register_student(register("s-1", ("p-1",)), uow)
        weeks = RuleFailure(
            rule="available_weeks",
            starts_on=date(2027, 4, 5),
            ends_on=date(2027, 4, 16),
            unavailable_weeks=("2027-W14", "2027-W15"),
        )
        note = ChoiceNote(rank=1, placement_id="w-2", status="ineligible", rules=(weeks,))
        teachers = await teacher_round(
            uow,
            [
                outcome("t-1", "w-1", 1),
                outcome("t-2", reason="no_eligible_choice", notes=[note]),
            ],
        )
        students = await teacher_round(uow, [outcome("s-1", "p-1", 1)], participant="student")
        found = await handlers.get_round(teachers, uow)
        assert found.participant == "teacher"
        latest = await handlers.student_outcome("t-2", uow)
        assert latest.record.outcome.explanation.better_choices == (note,)

        report = await handlers.round_outcome_report(teachers, uow)
        assert (report.students, report.placed) == (2, 1)
        assert (report.vacancies.placements, report.vacancies.slots) == (2, 2)  # w-1, w-2
        assert report.vacancies.free_slots == 1
        report = await handlers.round_outcome_report(students, uow)
        assert (report.vacancies.placements, report.vacancies.slots) == (1, 2)  # p-1 only

        # a supplementary teacher round now has its unplaced teacher (t-2)
        await handlers.request_round(
            RequestRound(REGION, participant="teacher", kind="supplementary"), uow
        )
        # t-2's vacancies: periods only, in their weeks: w-1 (weeks 10 to 12, its slot free:
        # no proposal was made here), not w-2 (weeks 14, 15); a student's: no period at all
        fits = await handlers.student_vacancies("t-2", uow)
        assert [f.placement_id for f in fits.vacancies] == ["w-1"]
        mine = await handlers.student_vacancies("s-1", uow)
        assert all(f.vacancy.offer.kind == "student" for f in mine.vacancies)

    async def test_a_supplementary_opening_invites_the_unplaced_teachers(self, uow: Any) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1", ("w-1",)), uow)
        await handlers.register_student(teacher("t-2", ("w-2",)), uow)
        await handlers.register_student(register("s-1", ("p-1",)), uow)
        await handlers.register_student(register("s-2", ("p-1",)), uow)
        invite = OpenSupplementary(REGION, participant="teacher")
        before = await self.published(uow)
        with pytest.raises(Invalid) as caught:  # no round of teachers yet
            await handlers.open_supplementary(invite, uow)
        assert fields(caught.value) == {"region"}
        assert "no unplaced teachers" in caught.value.errors[0].message
        assert await self.published(uow) == before
        # the students' round, later than the teachers', leaves s-2 unplaced
        await teacher_round(
            uow, [outcome("t-1", "w-1", 1), outcome("t-2", reason="no_eligible_choice")]
        )
        await teacher_round(
            uow,
            [outcome("s-1", "p-1", 1), outcome("s-2", reason="choices_full")],
            participant="student",
        )
        opened = await handlers.open_supplementary(invite, uow)
        assert opened.student_ids == ("t-2",)
        [*_, event] = await self.published(uow)
        assert isinstance(event, ev.SupplementaryRoundOpened)
        assert event.data.student_ids == ("t-2",)
        assert (await handlers.student_vacancies("t-2", uow)).opening is not None
        students = await handlers.open_supplementary(OpenSupplementary(REGION), uow)
        assert students.student_ids == ("s-2",)

    async def test_an_assignment_by_hand_never_crosses_kinds(self, uow: Any) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1"), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.assign_match(AssignMatch("t-1", "p-1", "agreed"), uow)
        assert fields(caught.value) == {"placement_id"}
        assert "a placement for students; t-1 is a teacher" in caught.value.errors[0].message

    async def test_the_regions_overview_counts_students_and_their_placements(
        self, uow: Any
    ) -> None:
        await self.world(uow)
        await handlers.register_student(teacher("t-1", ("w-1",)), uow)
        await handlers.register_student(register("s-1", ("p-1",)), uow)
        overview = await handlers.region_overview(REGION, uow)
        assert (overview.students, overview.placements, overview.slots) == (1, 1, 2)

    async def test_an_erased_teacher_stays_a_teacher(self, uow: Any) -> None:
        await handlers.register_student(teacher("t-1"), uow)
        await handlers.withdraw_student(WithdrawStudent("t-1"), uow)
        target = await handlers.access_target("teacher", "t-1", uow)
        assert (target.participant, target.region) == ("teacher", REGION)


class TestInMemory(InMemoryTier, TeacherContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, TeacherContract):
    pass
