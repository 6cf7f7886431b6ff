"""The competence gap (`handlers.competence_gap`, `gap_terms`) over a unit of work: the same
cases against the in-memory fake and (marked infra) against real PostgreSQL. The rounds are
reported as matching reports them (outcome parts, proposals, completion)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.commands import WithdrawStudent
from services.placements.domain.errors import Invalid
from shared.contracts.outcomes import ChoiceNote, RuleFailure, StudentOutcome
from tests.handlers.placements.test_handlers import post, register
from tests.handlers.placements.test_outcomes import REGION, outcome, run_round
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier

LACKS_HV = ChoiceNote(
    rank=1,
    placement_id="p-hv",
    status="ineligible",
    rules=(RuleFailure(rule="required_skills", missing=("battery-hv",)),),
)
STUDENTS = [f"s-{i:02d}" for i in range(1, 13)]


async def world(uow: Any) -> None:
    """Spring 2027: p-hv (8 slots, battery-hv, EE or IN), p-hv2 (4, battery-hv, any
    programme), p-wire (4, wiring, EE); autumn 2027: p-autumn (2, wiring). Twelve EE students:
    s-01 ... s-03 have battery-hv, the others wiring."""
    await handlers.post_placement(
        post("p-hv", capacity=8, required_skills=("battery-hv",), programmes=("EE", "IN")), uow
    )
    await handlers.post_placement(
        post("p-hv2", capacity=4, required_skills=("battery-hv",), programmes=()), uow
    )
    await handlers.post_placement(post("p-wire", capacity=4), uow)
    await handlers.post_placement(
        post("p-autumn", starts_on=date(2027, 8, 16), ends_on=date(2027, 9, 10)), uow
    )
    for i, sid in enumerate(STUDENTS):
        skills = ("battery-hv",) if i < 3 else ("wiring",)
        await handlers.register_student(register(sid, ("p-hv",), skills=skills), uow)


def ordinary() -> list[StudentOutcome]:
    """s-01 ... s-03 at p-hv, s-04 ... s-06 at p-wire; s-07 ... s-12 unplaced lacking
    battery-hv for p-hv."""
    found = [outcome(sid, "p-hv", 1) for sid in STUDENTS[:3]]
    found += [outcome(sid, "p-wire", 1) for sid in STUDENTS[3:6]]
    found += [outcome(sid, reason="no_eligible_choice", notes=[LACKS_HV]) for sid in STUDENTS[6:]]
    return found


def supplementary() -> list[StudentOutcome]:
    """The standing matches kept, and s-07 placed at p-wire's last slot."""
    found = [outcome(sid, "p-hv", 1, pinned=True) for sid in STUDENTS[:3]]
    found += [outcome(sid, "p-wire", 1, pinned=True) for sid in STUDENTS[3:6]]
    found.append(outcome("s-07", "p-wire", 1))
    found += [outcome(sid, reason="no_eligible_choice", notes=[LACKS_HV]) for sid in STUDENTS[7:]]
    return found


class GapContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def test_the_gap_of_the_newest_term_with_its_trend(self, uow: Any) -> None:
        await world(uow)
        first = await run_round(uow, ordinary())
        await run_round(uow, [outcome(s, "p-hv2", 1) for s in STUDENTS], dry_run=True)
        second = await run_round(uow, supplementary())
        await handlers.withdraw_student(WithdrawStudent("s-12"), uow)

        found = await handlers.competence_gap(REGION, None, uow)
        assert found.term.code == "2027-spring"  # the newest term with a round
        assert [t.code for t in found.terms] == ["2027-spring", "2027-autumn"]
        assert [r.round.round_id for r in found.rounds] == [first, second]  # no dry run
        hv = next(g for g in found.skills if g.key == "battery-hv")
        assert (hv.placements, hv.slots, hv.empty_slots) == (2, 12, 9)
        assert hv.students is None  # 3 students have it: "< 5"
        assert hv.suppressed == ("students",)
        assert [x.empty_slots for x in hv.trend] == [9, 9]
        assert [x.unplaced_missing for x in hv.trend] == [6, 5]
        assert found.gaps[0] == hv
        # s-12 was erased: still one of the term's 12 students, of programme EE, no skills
        assert found.students == 12
        ee = next(g for g in found.programmes if g.key == "EE")
        assert (ee.slots, ee.students) == (12, 12)
        wiring = next(g for g in found.skills if g.key == "wiring")
        assert (wiring.slots, wiring.students) == (4, 8)
        latest = found.latest
        assert latest is not None
        assert (latest.free_slots, latest.empty_for_want, latest.unplaced_missing) == (9, 9, 5)

        same = await handlers.competence_gap(REGION, "2027-VT", uow)
        assert same.gaps == found.gaps
        autumn = await handlers.competence_gap(REGION, "HT 2027", uow)
        assert (autumn.term.code, autumn.slots, autumn.rounds, autumn.gaps) == (
            "2027-autumn",
            2,
            (),
            (),
        )
        top = await handlers.competence_gap(REGION, "2027-spring", uow, top=1)
        assert [g.key for g in top.gaps] == ["battery-hv"]
        assert [t.code for t in await handlers.gap_terms(REGION, uow)] == [
            "2027-spring",
            "2027-autumn",
        ]

    async def test_a_term_that_is_not_one_or_not_the_regions_is_refused_naming_term(
        self, uow: Any
    ) -> None:
        with pytest.raises(Invalid) as nothing:
            await handlers.competence_gap(REGION, None, uow)
        assert [e.field for e in nothing.value.errors] == ["term"]
        assert "no dated placements and no rounds" in nothing.value.errors[0].message
        await world(uow)
        with pytest.raises(Invalid) as elsewhere:
            await handlers.competence_gap(REGION, "2031-spring", uow)
        assert [e.field for e in elsewhere.value.errors] == ["term"]
        assert elsewhere.value.errors[0].message == (
            "SE-AB has no placements or rounds in 2031-spring; its terms: 2027-spring, 2027-autumn"
        )
        for bad in ("next term", "2027-winter", "2027-13", "x" * 20):
            with pytest.raises(Invalid) as refused:
                await handlers.competence_gap(REGION, bad, uow)
            assert [e.field for e in refused.value.errors] == ["term"], bad
        # A region with no round has its terms, and the demand alone.
        found = await handlers.competence_gap(REGION, None, uow)
        assert (found.term.code, found.slots, found.students, found.gaps) == (
            "2027-autumn",
            2,
            None,
            (),
        )


class TestInMemory(InMemoryTier, GapContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, GapContract):
    pass
