"""After a round (`handlers.apply_round_outcomes`, `student_outcome`, `round_outcomes`,
`list_rounds`, `region_vacancies`, `student_vacancies`, `open_supplementary`, `assign_match`,
`round_outcome_report`, `compare_rounds`, `student_notice_context`) over a unit of work: the
same cases against the in-memory fake and (marked infra) against real PostgreSQL."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.audit import AuditQuery
from services.placements.domain.commands import (
    AnswerMatch,
    AssignMatch,
    CompareRounds,
    ListOutcomes,
    ListRounds,
    OpenSupplementary,
    RegionVacancies,
    RequestRound,
    WithdrawPlacement,
    WithdrawStudent,
)
from services.placements.domain.errors import Conflict, Invalid, NotFound
from services.placements.domain.model import Contact
from services.placements.domain.reports import distance_km
from shared.contracts import events as ev
from shared.contracts.outcomes import (
    ChoiceNote,
    Explanation,
    HeldBy,
    OutcomeReason,
    RuleFailure,
    StudentOutcome,
)
from shared.contracts.profiles import GeoPoint
from tests.handlers.placements.test_handlers import CONTACT, post, register
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier
from tests.support import factories

REGION = "SE-AB"
COORDINATOR = ev.Actor(subject="coord-1", role="coordinator", client="apl-web")
NEAR = GeoPoint(lat=59.33, lon=18.07)  # about 4.8 km from the factory's home (59.3, 18.0)
FARTHER = GeoPoint(lat=59.40, lon=18.07)  # about 12 km
FAR = GeoPoint(lat=60.5, lon=18.0)  # about 133 km: beyond the student's 40 km


def outcome(
    sid: str,
    pid: str | None = None,
    rank: int | None = None,
    reason: OutcomeReason | None = None,
    *,
    previous: str | None = None,
    filled: bool = False,
    pinned: bool = False,
    notes: Sequence[ChoiceNote] = (),
    choices: int = 1,
) -> StudentOutcome:
    if pid is None and reason is None:
        reason = "choices_full"
    return StudentOutcome(
        student_id=sid,
        placement_id=pid,
        rank=rank,
        filled=filled,
        pinned=pinned,
        reason=reason,
        previous_placement_id=previous,
        explanation=Explanation(better_choices=tuple(notes), choices=choices),
    )


FULL = ChoiceNote(
    rank=1, placement_id="p-1", status="full", held_by=HeldBy(slots=2, higher_priority=2)
)
TOO_FAR = ChoiceNote(
    rank=1,
    placement_id="p-far",
    status="ineligible",
    rules=(RuleFailure(rule="max_travel_km", distance_km=133.4, limit_km=40),),
)


def outcomes_events(
    round_id: uuid.UUID,
    found: Sequence[StudentOutcome],
    *,
    region: str = REGION,
    dry_run: bool = False,
    per_part: int = 2,
) -> list[ev.MatchingRoundOutcomes]:
    parts = [found[i : i + per_part] for i in range(0, len(found), per_part)] or [[]]
    return [
        ev.MatchingRoundOutcomes(
            producer="matching",
            data=ev.MatchingRoundOutcomesData(
                round_id=round_id,
                region=region,
                part=i + 1,
                parts=len(parts),
                dry_run=dry_run,
                outcomes=tuple(part),
            ),
        )
        for i, part in enumerate(parts)
    ]


def completed(
    round_id: uuid.UUID,
    found: Sequence[StudentOutcome],
    *,
    region: str = REGION,
    dry_run: bool = False,
    policy: ev.Policy = "optimal",
    parts: int = 1,
    blocking: int = 0,
    kind: ev.RoundKind = "ordinary",
    fill: bool = False,
) -> ev.MatchingRoundCompleted:
    placed = [o for o in found if o.placement_id is not None]
    figures = ev.RoundFigures(
        students=len(found),
        placed=len(placed),
        placed_weight=len(placed),
        total_rank_cost=sum((o.rank or 0) ** 2 for o in placed),
        first_choice=sum(1 for o in placed if o.rank == 1),
        top3=sum(1 for o in placed if o.rank is not None and o.rank <= 3),
        unknown_preferences=0,
        blocking_pairs=blocking,
        solve_seconds=0.01,
        solver="lsa",
        filled=sum(1 for o in placed if o.filled),
    )
    reasons: dict[str, int] = {}
    for o in found:
        if o.reason:
            reasons[o.reason] = reasons.get(o.reason, 0) + 1
    return ev.MatchingRoundCompleted(
        producer="matching",
        data=ev.MatchingRoundCompletedData(
            round_id=round_id,
            region=region,
            policy=policy,
            figures=figures,
            unplaced_by_reason=reasons,
            proposed=0 if dry_run else len(placed),
            cancelled=0,
            kind=kind,
            fill=fill,
            dry_run=dry_run,
            outcome_parts=parts,
        ),
    )


proposed = functools.partial(factories.proposed, region=REGION)


async def run_round(
    uow: Any,
    found: Sequence[StudentOutcome],
    *,
    dry_run: bool = False,
    region: str = REGION,
    policy: ev.Policy = "optimal",
    blocking: int = 0,
    propose: bool = True,
) -> uuid.UUID:
    """A round as matching reports it: the outcome parts, the proposals (unless a dry run or
    pinned), then the completion."""
    round_id = uuid.uuid4()
    parts = outcomes_events(round_id, found, region=region, dry_run=dry_run)
    for part in parts:
        assert await handlers.apply_round_outcomes(part, uow)
    if propose and not dry_run:
        for o in found:
            if o.placement_id is not None and not o.pinned:
                await handlers.apply_match_proposed(
                    proposed(o.student_id, o.placement_id, round_id, o.rank), uow
                )
    done = completed(
        round_id,
        found,
        region=region,
        dry_run=dry_run,
        policy=policy,
        parts=len(parts),
        blocking=blocking,
    )
    assert await handlers.apply_round_completed(done, uow)
    return round_id


async def world(uow: Any) -> None:
    """p-1 (2 slots, near), p-2 (1 slot, farther), p-far (beyond the travel limit), p-weld
    (a skill nobody has); students s-1 ... s-4 of SE-AB, all ranking p-1."""
    await handlers.post_placement(post("p-1", site=NEAR), uow)
    await handlers.post_placement(post("p-2", site=FARTHER, capacity=1), uow)
    await handlers.post_placement(post("p-far", site=FAR, capacity=3), uow)
    await handlers.post_placement(post("p-weld", site=NEAR, required_skills=("welding",)), uow)
    for sid in ("s-1", "s-2", "s-3", "s-4"):
        await handlers.register_student(register(sid, ("p-1",)), uow)


FIRST = [
    outcome("s-1", "p-1", 1),
    outcome("s-2", notes=[FULL]),
    outcome("s-3", reason="no_eligible_choice", notes=[TOO_FAR]),
    outcome("s-4", "p-1", 1),
]


class OutcomeContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[ev.Event]:
        raise NotImplementedError

    # ------------------------------------------------------------------------- outcomes

    async def test_outcomes_are_kept_per_round_and_student_once(self, uow: Any) -> None:
        await world(uow)
        round_id = uuid.uuid4()
        parts = outcomes_events(round_id, FIRST)
        assert [await handlers.apply_round_outcomes(p, uow) for p in parts] == [True, True]
        assert not await handlers.apply_round_outcomes(parts[0], uow)  # a duplicate
        found = await handlers.get_round(round_id, uow)
        assert (found.status, found.parts_received) == ("requested", 2)
        done = completed(round_id, FIRST, parts=2, kind="ordinary", fill=True)
        await handlers.apply_round_completed(done, uow)
        found = await handlers.get_round(round_id, uow)
        assert (found.status, found.fill, found.dry_run, found.outcome_parts) == (
            "completed",
            True,
            False,
            2,
        )
        page = await handlers.round_outcomes(ListOutcomes(round_id), uow)
        assert page.total == 4
        assert [r.outcome for r in page.items] == sorted(FIRST, key=lambda o: o.student_id)

    async def test_a_students_outcome_is_the_latest_real_round_with_their_match(
        self, uow: Any
    ) -> None:
        await world(uow)
        with pytest.raises(NotFound, match="no round"):
            await handlers.student_outcome("s-2", uow)
        first = await run_round(uow, FIRST)
        view = await handlers.student_outcome("s-2", uow)
        assert view.record.round_id == first
        assert view.record.outcome.explanation.better_choices == (FULL,)
        assert view.match is None
        assert view.round is not None
        assert view.round.status == "completed"
        await run_round(uow, [outcome("s-2", "p-2", None, filled=True)], dry_run=True)
        assert (await handlers.student_outcome("s-2", uow)).record.round_id == first
        placed = (await handlers.student_outcome("s-1", uow)).match
        assert placed is not None
        assert (placed.placement_id, placed.state) == ("p-1", "proposed")
        with pytest.raises(NotFound):
            await handlers.student_outcome("nobody", uow)

    async def test_a_rounds_outcomes_are_paged_and_filtered(self, uow: Any) -> None:
        await world(uow)
        await handlers.register_student(register("s-5", ("p-1",), programme="IN"), uow)
        found = [*FIRST, outcome("s-5", "p-2", 2, previous="p-1")]
        round_id = await run_round(uow, found)

        async def ids(**kw: Any) -> tuple[int, list[str]]:
            page = await handlers.round_outcomes(ListOutcomes(round_id, **kw), uow)
            return page.total, [r.student_id for r in page.items]

        assert await ids(limit=2, offset=1) == (5, ["s-2", "s-3"])
        assert await ids(reason="choices_full") == (1, ["s-2"])
        assert await ids(placed=False) == (2, ["s-2", "s-3"])
        assert await ids(placed=True, programme="EE") == (2, ["s-1", "s-4"])
        assert await ids(programme="IN") == (1, ["s-5"])
        assert await ids(moved=True) == (1, ["s-5"])
        assert (await ids(moved=False))[0] == 4
        with pytest.raises(NotFound):
            await handlers.round_outcomes(ListOutcomes(uuid.uuid4()), uow)

    # --------------------------------------------------------------------------- rounds

    async def test_rounds_are_listed_newest_first(self, uow: Any) -> None:
        ids = [
            await handlers.request_round(RequestRound(REGION, dry_run=i == 1), uow)
            for i in range(3)
        ]
        await handlers.request_round(RequestRound("SE-O"), uow)
        page = await handlers.list_rounds(ListRounds(REGION, limit=2), uow)
        assert page.total == 3
        assert [r.round_id for r in page.items] == [ids[2], ids[1]]
        assert page.items[1].dry_run
        rest = await handlers.list_rounds(ListRounds(REGION, limit=2, offset=2), uow)
        assert [r.round_id for r in rest.items] == [ids[0]]

    async def test_a_round_request_carries_its_options(self, uow: Any) -> None:
        command = RequestRound(REGION, "stable", fill=True, dry_run=True)
        round_id = await handlers.request_round(command, uow)
        [event] = await self.published(uow)
        assert isinstance(event, ev.MatchingRoundRequested)
        d = event.data
        assert (d.round_id, d.policy, d.kind, d.fill, d.dry_run) == (
            round_id,
            "stable",
            "ordinary",
            True,
            True,
        )
        found = await handlers.get_round(round_id, uow)
        assert (found.kind, found.fill, found.dry_run) == ("ordinary", True, True)

    async def test_bad_round_requests_name_the_field_and_write_nothing(self, uow: Any) -> None:
        await world(uow)
        before = len(await self.published(uow))
        with pytest.raises(Invalid) as caught:
            await handlers.request_round(RequestRound(REGION, "fastest", dry_run=True), uow)  # type: ignore[arg-type]
        assert [e.field for e in caught.value.errors] == ["policy"]
        with pytest.raises(Invalid) as caught:
            await handlers.request_round(RequestRound(REGION, kind="supplementary"), uow)
        assert [e.field for e in caught.value.errors] == ["kind"]
        await run_round(uow, [outcome("s-1", "p-1", 1)])
        with pytest.raises(Invalid, match="no unplaced"):  # the only student is placed
            await handlers.request_round(RequestRound(REGION, kind="supplementary"), uow)
        assert (await handlers.list_rounds(ListRounds(REGION), uow)).total == 1
        assert len(await self.published(uow)) == before

    async def test_a_supplementary_round_runs_once_someone_is_unplaced(self, uow: Any) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        round_id = await handlers.request_round(RequestRound(REGION, kind="supplementary"), uow)
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.MatchingRoundRequested)
        assert (event.data.round_id, event.data.kind) == (round_id, "supplementary")

    # ------------------------------------------------------------------------ vacancies

    async def test_vacancies_are_free_slots_and_what_fits_each_unplaced_student(
        self, uow: Any
    ) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        report = await handlers.region_vacancies(RegionVacancies(REGION), uow)
        free = {v.offer.placement_id: v.free_slots for v in report.vacancies}
        assert free == {"p-2": 1, "p-far": 3, "p-weld": 2}  # p-1's two slots are proposed
        assert report.free_slots == 6
        assert report.students_total == 2
        by_student = {u.student_id: u for u in report.students}
        assert set(by_student) == {"s-2", "s-3"}
        s2 = by_student["s-2"]
        assert s2.reason == "choices_full"
        # p-far is beyond the travel limit, p-weld needs a skill s-2 lacks
        assert [f.placement_id for f in s2.vacancies] == ["p-2"]
        assert s2.total == 1
        assert s2.vacancies[0].distance_km == pytest.approx(11.9, abs=0.5)

    async def test_a_declined_pair_a_match_and_withdrawal_change_the_vacancies(
        self, uow: Any
    ) -> None:
        await world(uow)
        await handlers.post_placement(post("p-3", site=NEAR, capacity=1), uow)
        round_id = await run_round(uow, FIRST)
        before = await handlers.student_vacancies("s-2", uow)
        assert [f.placement_id for f in before.vacancies] == ["p-3", "p-2"]  # nearest first
        # s-2 declined p-3 once: it no longer fits them
        declined = proposed("s-2", "p-3", round_id)
        await handlers.apply_match_proposed(declined, uow)
        await handlers.answer_match(AnswerMatch(declined.data.match_id, "student", "decline"), uow)
        after = await handlers.student_vacancies("s-2", uow)
        assert [f.placement_id for f in after.vacancies] == ["p-2"]
        # s-3 gets a match at p-2: no longer unplaced, and p-2 is full
        await handlers.apply_match_proposed(proposed("s-3", "p-2", round_id), uow)
        report = await handlers.region_vacancies(RegionVacancies(REGION), uow)
        assert [u.student_id for u in report.students] == ["s-2"]
        # p-3's slot is free again (its match was declined), but not for s-2
        assert "p-3" in {v.offer.placement_id for v in report.vacancies}
        assert report.students[0].total == 0
        assert "p-2" not in {v.offer.placement_id for v in report.vacancies}
        await handlers.withdraw_student(WithdrawStudent("s-2"), uow)
        report = await handlers.region_vacancies(RegionVacancies(REGION), uow)
        assert report.students_total == 0

    async def test_an_unplaced_notice_waits_until_its_round_is_applied_here(self, uow: Any) -> None:
        await world(uow)
        await handlers.post_placement(post("p-3", site=NEAR, capacity=1), uow)
        found = [outcome("s-1", "p-3", 1), outcome("s-2", notes=[FULL]), outcome("s-4", "p-1", 1)]
        round_id = await run_round(uow, found, propose=False)  # its proposals still on the way

        early = await handlers.student_notice_context("s-2", None, uow, round_id=round_id)
        assert not early.settled  # p-3 still looks free: the notice must not offer it
        assert (await handlers.student_notice_context("s-2", None, uow)).settled  # no round
        for o in found:
            if o.placement_id is not None:
                await handlers.apply_match_proposed(
                    proposed(o.student_id, o.placement_id, round_id, o.rank), uow
                )
        late = await handlers.student_notice_context("s-2", None, uow, round_id=round_id)
        assert late.settled
        assert {v.placement_id: v.free_slots for v in late.vacancies} == {"p-1": 1, "p-2": 1}
        unknown = await handlers.student_notice_context("s-2", None, uow, round_id=uuid.uuid4())
        assert not unknown.settled  # its outcomes have not arrived here yet

    # ---------------------------------------------------------------------- supplementary

    async def test_opening_a_supplementary_round_invites_the_unplaced(self, uow: Any) -> None:
        await world(uow)
        uow.actor = COORDINATOR
        with pytest.raises(Invalid) as caught:
            await handlers.open_supplementary(OpenSupplementary(REGION), uow)
        assert [e.field for e in caught.value.errors] == ["region"]
        round_id = await run_round(uow, FIRST)
        with pytest.raises(Invalid) as caught:
            await handlers.open_supplementary(
                OpenSupplementary(REGION, date(2027, 1, 1)), uow, today=date(2027, 2, 1)
            )
        assert [e.field for e in caught.value.errors] == ["ranks_until"]
        opening = await handlers.open_supplementary(
            OpenSupplementary(REGION, date(2027, 2, 10)), uow, today=date(2027, 2, 1)
        )
        assert (opening.round_id, opening.student_ids) == (round_id, ("s-2", "s-3"))
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.SupplementaryRoundOpened)
        assert event.data.student_ids == ("s-2", "s-3")
        assert event.data.ranks_until == date(2027, 2, 10)
        assert event.actor == COORDINATOR
        [audited] = [
            r
            for r in await handlers.audit_of_region(AuditQuery(REGION, limit=10), uow)
            if r.event_type == "SupplementaryRoundOpened"
        ]
        assert audited.actor == COORDINATOR
        # The opening is kept: an invited student's vacancies say until when to rank them;
        # a student who was not invited sees none, and an erased student leaves it.
        invited = await handlers.student_vacancies("s-2", uow)
        assert invited.opening is not None
        assert (invited.opening.opening_id, invited.opening.ranks_until) == (
            opening.opening_id,
            date(2027, 2, 10),
        )
        assert (await handlers.student_vacancies("s-1", uow)).opening is None
        await handlers.withdraw_student(WithdrawStudent("s-3"), uow)
        async with uow:
            assert await uow.openings.latest_of_student("s-3") is None
            assert await uow.openings.latest_of_student("s-2") is not None

    # -------------------------------------------------------------------------- overrides

    async def test_an_assignment_by_hand_is_published_audited_and_holds_a_slot(
        self, uow: Any
    ) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        uow.actor = COORDINATOR
        assignment, failures = await handlers.assign_match(
            AssignMatch("s-2", "p-2", "agreed with the school"), uow
        )
        assert failures == ()
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.MatchAssignmentRequested)
        d = event.data
        assert (d.match_id, d.student_id, d.placement_id, d.company_id, d.reason) == (
            assignment.match_id,
            "s-2",
            "p-2",
            "c-1",
            None,  # the words stay here: they never travel on Kafka
        )
        assert assignment.reason == "agreed with the school"
        assert event.actor == COORDINATOR
        audited = await handlers.audit_of_region(AuditQuery(REGION, limit=1), uow)
        assert (audited[0].event_type, audited[0].actor) == (
            "MatchAssignmentRequested",
            COORDINATOR,
        )
        # the waiting assignment holds p-2's only slot: a second one is refused
        with pytest.raises(Conflict) as caught:
            await handlers.assign_match(
                AssignMatch("s-3", "p-2", "x", override_hard_constraints=True), uow
            )
        assert [e.field for e in caught.value.errors] == ["placement_id"]
        report = await handlers.region_vacancies(RegionVacancies(REGION), uow)
        assert [u.student_id for u in report.students] == ["s-3"]

    async def test_matching_proposes_or_refuses_an_assignment(self, uow: Any) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        refused, _ = await handlers.assign_match(AssignMatch("s-2", "p-2", "by hand"), uow)
        cancel = ev.MatchCancelled(
            producer="matching",
            data=ev.MatchCancelledData(
                match_id=refused.match_id,
                region=REGION,
                student_id="s-2",
                placement_id="p-2",
                reason="capacity_reduced",
            ),
        )
        assert await handlers.apply_match_cancelled(cancel, uow)
        async with uow:
            record = await uow.matches.get(refused.match_id)
        assert record is not None
        assert (record.state, record.reason, record.override, record.company_id) == (
            "cancelled",
            "capacity_reduced",
            True,
            "c-1",
        )
        # the slot is free again; this time matching proposes it
        again, _ = await handlers.assign_match(AssignMatch("s-2", "p-2", "by hand"), uow)
        await handlers.apply_match_proposed(
            proposed("s-2", "p-2", uuid.uuid4(), None, match_id=again.match_id, override=True),
            uow,
        )
        match = await handlers.student_match("s-2", uow)
        assert (match.match_id, match.override, match.rank) == (again.match_id, True, None)
        with pytest.raises(Conflict, match="placement_id"):
            await handlers.assign_match(AssignMatch("s-2", "p-2", "again"), uow)

    async def test_bad_assignments_name_the_field_and_write_nothing(self, uow: Any) -> None:
        await world(uow)
        await handlers.register_student(register("s-9", (), region="SE-O"), uow)
        round_id = await run_round(uow, FIRST)
        before = len(await self.published(uow))

        async def refused(command: AssignMatch, error: type[Exception]) -> list[str]:
            with pytest.raises(error) as caught:
                await handlers.assign_match(command, uow)
            return [e.field for e in caught.value.errors]  # type: ignore[attr-defined]

        assert await refused(AssignMatch("s-2", "p-2", "  "), Invalid) == ["reason"]
        assert await refused(AssignMatch("s-2", "p-1", "r"), Conflict) == ["placement_id"]  # full
        assert await refused(AssignMatch("s-1", "p-1", "r"), Conflict) == ["placement_id"]  # there
        assert await refused(AssignMatch("s-2", "nope", "r"), NotFound) == ["placement_id"]
        assert await refused(AssignMatch("s-9", "p-2", "r"), Invalid) == ["placement_id"]
        fields = await refused(AssignMatch("s-2", "p-far", "r"), Invalid)
        assert fields == ["override_hard_constraints"]
        # both failures are named: the skill and the distance
        with pytest.raises(Invalid) as caught:
            await handlers.assign_match(AssignMatch("s-2", "p-weld", "r"), uow)
        assert "required_skills" in caught.value.detail
        await handlers.withdraw_placement(WithdrawPlacement("p-weld"), uow)
        assert await refused(
            AssignMatch("s-2", "p-weld", "r", override_hard_constraints=True), Conflict
        ) == ["placement_id"]
        with pytest.raises(NotFound):
            await handlers.assign_match(AssignMatch("nobody", "p-2", "r"), uow)
        published = await self.published(uow)
        assert [e.type for e in published[before:]] == ["PlacementWithdrawn"]
        assert (await handlers.round_outcomes(ListOutcomes(round_id), uow)).total == 4

    async def test_an_override_of_hard_constraints_lists_them(self, uow: Any) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        assignment, failures = await handlers.assign_match(
            AssignMatch(
                "s-3", "p-far", "lives there during the period", override_hard_constraints=True
            ),
            uow,
        )
        assert [f.rule for f in failures] == ["max_travel_km"]
        assert failures[0].limit_km == 40
        assert assignment.constraints_overridden == ("max_travel_km",)
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.MatchAssignmentRequested)
        assert (event.data.override_hard_constraints, event.data.constraints_overridden) == (
            True,
            ("max_travel_km",),
        )

    # ---------------------------------------------------------------------------- reports

    async def test_a_rounds_report_counts_outcomes_and_hides_small_groups(self, uow: Any) -> None:
        await world(uow)
        for i in range(5, 12):
            await handlers.register_student(register(f"s-{i}", ("p-1",), programme="IN"), uow)
        await handlers.post_placement(post("p-big", site=NEAR, capacity=20, programmes=()), uow)
        found = [
            *FIRST,
            *(outcome(f"s-{i}", "p-big", 2) for i in range(5, 10)),
            outcome("s-10", "p-big", None, filled=True),
            outcome("s-11", reason="no_eligible_vacancy"),
        ]
        round_id = await run_round(uow, found, blocking=3)
        report = await handlers.round_outcome_report(round_id, uow)
        assert (report.students, report.placed) == (11, 8)
        assert report.placement_rate == pytest.approx(8 / 11)
        assert (report.ranks["1"], report.ranks["2"]) == (2, 5)
        assert (report.ranks["filled"], report.ranks["unplaced"], report.ranks["10"]) == (1, 3, 0)
        assert report.unplaced_by_reason == {
            "choices_full": 1,
            "no_eligible_choice": 1,
            "no_eligible_vacancy": 1,
        }
        assert report.blocking_pairs == 3
        programmes = {g.key: g for g in report.by_programme}
        assert set(programmes) == {"IN", "other"}  # EE has 4 students: merged
        assert (programmes["IN"].students, programmes["IN"].placed) == (7, 6)
        assert programmes["other"].students is None  # 4 in "other": suppressed too
        [note] = [n for n in report.small_groups if n.dimension == "programme"]
        assert (note.merged, note.merged_students, note.suppressed) == (1, 4, True)
        assert [g.key for g in report.by_priority] == ["0"]
        v = report.vacancies
        # open: p-1 2, p-2 1, p-far 3, p-weld 2, p-big 20 = 28 slots; taken 2 + 6
        assert (v.slots, v.taken, v.free_slots, v.placements_with_free_slots) == (28, 8, 20, 4)
        assert report.distance.measured == 8
        near = distance_km(59.3, 18.0, NEAR.lat, NEAR.lon)  # every placed student's
        assert report.distance.median_km == pytest.approx(near)
        assert report.distance.p90_km == pytest.approx(near)
        with pytest.raises(NotFound):
            await handlers.round_outcome_report(uuid.uuid4(), uow)

    async def test_two_rounds_side_by_side(self, uow: Any) -> None:
        await world(uow)
        standing = await run_round(uow, [outcome("s-1", "p-1", 1)])
        optimal = await run_round(
            uow,
            [
                outcome("s-1", "p-2", 2, previous="p-1"),
                outcome("s-2", "p-1", 1),
                outcome("s-3"),
            ],
            dry_run=True,
            blocking=1,
        )
        stable = await run_round(
            uow,
            [outcome("s-1", "p-1", 1, previous="p-1"), outcome("s-2"), outcome("s-3", "p-2", 1)],
            dry_run=True,
            policy="stable",
        )
        c = await handlers.compare_rounds(CompareRounds(optimal, stable, limit=1), uow)
        assert (c.a.placed, c.b.placed, c.a.blocking_pairs, c.b.blocking_pairs) == (2, 2, 1, 0)
        assert (c.a.movers, c.b.movers) == (1, 0)
        assert c.a.movers_listed[0].previous_placement_id == "p-1"
        assert c.different == 3
        assert [d.student_id for d in c.differences] == ["s-1"]  # cut at the limit
        assert (c.a.ranks["2"], c.b.ranks["unplaced"]) == (1, 1)
        await handlers.apply_round_completed(
            completed(other := uuid.uuid4(), [], region="SE-O"), uow
        )
        with pytest.raises(Invalid) as caught:
            await handlers.compare_rounds(CompareRounds(standing, other), uow)
        assert [e.field for e in caught.value.errors] == ["b"]
        with pytest.raises(NotFound) as missing:
            await handlers.compare_rounds(CompareRounds(uuid.uuid4(), standing), uow)
        assert [e.field for e in missing.value.errors] == ["a"]

    # ---------------------------------------------------------------- language, notices

    async def test_a_students_language_is_theirs_or_their_regions(self, uow: Any) -> None:
        await handlers.register_student(register("s-sv", ()), uow)
        fi = Contact("Sara", "sara@example.fi", None, "fi")
        command = register("s-fi", ())
        await handlers.register_student(type(command)(command.profile, fi), uow)
        await handlers.register_student(register("s-en", (), region="NO-03"), uow)
        assert (await handlers.get_student("s-fi", uow)).contact.language == "fi"
        contexts = {
            sid: await handlers.student_notice_context(sid, None, uow)
            for sid in ("s-sv", "s-fi", "s-en")
        }
        assert {sid: c.language for sid, c in contexts.items()} == {
            "s-sv": "sv",
            "s-fi": "fi",
            "s-en": "en",
        }

    async def test_the_student_notice_context(self, uow: Any) -> None:
        await world(uow)
        await run_round(uow, FIRST)
        unplaced = await handlers.student_notice_context(
            "s-2", None, uow, public_url="https://apl.example.se/"
        )
        assert (unplaced.name, unplaced.email, unplaced.region) == (
            CONTACT.name,
            CONTACT.email,
            REGION,
        )
        assert [v.placement_id for v in unplaced.vacancies] == ["p-2"]
        assert (unplaced.vacancies_total, unplaced.vacancies[0].free_slots) == (1, 1)
        assert unplaced.placement is None
        assert unplaced.page_url == "https://apl.example.se/student/choices"
        placed = await handlers.student_notice_context("s-1", "p-1", uow)
        assert placed.placement is not None
        assert placed.placement.placement_id == "p-1"
        assert (placed.vacancies, placed.page_url) == ((), None)
        with pytest.raises(NotFound):
            await handlers.student_notice_context("s-1", "nope", uow)
        await handlers.withdraw_student(WithdrawStudent("s-2"), uow)
        with pytest.raises(NotFound):
            await handlers.student_notice_context("s-2", None, uow)


class TestInMemory(InMemoryTier, OutcomeContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, OutcomeContract):
    pass
