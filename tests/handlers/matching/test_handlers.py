"""The matching handlers, run alike against the in-memory fake and against real PostgreSQL.

`HandlerContract` holds the tests and an abstract `uow` fixture (pyeventsourcing's pattern):
`TestInMemory` gives them `tests/support/fakes/matching.py`, `TestPostgres` (infra) a fresh
schema of the real read model. What a handler published is read from the committed outbox.
Rounds use a trivial deterministic solver double.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matching import handlers
from services.matching.adapters.repository import MatchingUnitOfWork, PostgresMatchingUnitOfWork
from services.matching.bootstrap import MIGRATIONS
from services.matching.domain.model import RoundProblem, Solver, SolveResult
from services.matching.handlers import RoundHooks
from shared.contracts import events as ev
from shared.contracts.events import parse_event
from shared.contracts.outcomes import StudentOutcome
from shared.db import create_pool, migrate
from shared.metrics import METRICS
from tests.support.factories import placement, student
from tests.support.fakes.matching import InMemoryMatchingUnitOfWork
from tests.unit.matching_service.doubles import greedy_solver

E = TypeVar("E", bound=ev.Event)
REGION = "SE-AB"


def posted(pid: str, region: str = REGION, capacity: int = 2) -> ev.PlacementPosted:
    return ev.PlacementPosted(producer="t", data=placement(pid, region=region, capacity=capacity))


def registered(sid: str, *prefs: str, region: str = REGION) -> ev.StudentRegistered:
    return ev.StudentRegistered(producer="t", data=student(sid, region=region, prefs=prefs))


def placement_withdrawn(pid: str, region: str = REGION) -> ev.PlacementWithdrawn:
    data = ev.PlacementWithdrawnData(placement_id=pid, region=region)
    return ev.PlacementWithdrawn(producer="t", data=data)


def student_withdrawn(sid: str, region: str = REGION) -> ev.StudentWithdrawn:
    return ev.StudentWithdrawn(
        producer="t", data=ev.StudentWithdrawnData(student_id=sid, region=region)
    )


def request(
    region: str = REGION, inputs: int | None = None, **options: Any
) -> ev.MatchingRoundRequested:
    data = ev.MatchingRoundRequestedData(
        round_id=uuid.uuid4(), region=region, inputs_published=inputs, **options
    )
    return ev.MatchingRoundRequested(producer="t", data=data)


def assignment(
    sid: str, pid: str, region: str = REGION, match_id: uuid.UUID | None = None
) -> ev.MatchAssignmentRequested:
    data = ev.MatchAssignmentRequestedData(
        match_id=match_id or uuid.uuid4(),
        region=region,
        student_id=sid,
        placement_id=pid,
        company_id="c-1",
        reason="agreed with the school",
    )
    return ev.MatchAssignmentRequested(producer="t", data=data)


def outcomes_of(events: list[ev.Event], round_id: uuid.UUID) -> dict[str, StudentOutcome]:
    """Every student's outcome of the round, from its MatchingRoundOutcomes parts."""
    parts = [e for e in of(events, ev.MatchingRoundOutcomes) if e.data.round_id == round_id]
    return {o.student_id: o for part in parts for o in part.data.outcomes}


def _ids(p: ev.MatchProposed) -> dict[str, Any]:
    d = p.data
    return {
        "match_id": d.match_id,
        "region": d.region,
        "student_id": d.student_id,
        "placement_id": d.placement_id,
    }


def accepted(p: ev.MatchProposed, by: str, **override: Any) -> ev.MatchAccepted:
    data = ev.MatchAcceptedData.model_validate({**_ids(p), "by": by, **override}, strict=False)
    return ev.MatchAccepted(producer="t", data=data)


def declined(p: ev.MatchProposed, by: str) -> ev.MatchDeclined:
    data = ev.MatchDeclinedData.model_validate({**_ids(p), "by": by}, strict=False)
    return ev.MatchDeclined(producer="t", data=data)


def of(events: list[ev.Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def pairs(events: list[ev.Event]) -> list[tuple[str, str]]:
    return [(p.data.student_id, p.data.placement_id) for p in of(events, ev.MatchProposed)]


def reasons(events: list[ev.Event]) -> list[tuple[str, str]]:
    return [(c.data.student_id, c.data.reason) for c in of(events, ev.MatchCancelled)]


# ------------------------------------------------------------------- batches of input events
# A mix of placement and student events over a few ids and two regions, as abstract operations;
# `_events` makes them the events of one namespace (ids and regions prefixed), so a batch and
# the same events one at a time can be applied side by side in one read model and compared.
Op = tuple[Any, ...]
_PIDS, _SIDS, _REGIONS = range(4), range(4), ("A", "B")  # p-2, p-3 and s-3 are new
_prefs = st.lists(st.sampled_from(_PIDS), max_size=3, unique=True).map(tuple)
_region = st.sampled_from(_REGIONS)
_OPS = st.one_of(
    st.tuples(st.sampled_from(["post", "update"]), st.sampled_from(_PIDS), st.integers(1, 2)),
    st.tuples(st.just("placement_withdrawn"), st.sampled_from(_PIDS)),
    st.tuples(st.sampled_from(["register", "prefer"]), st.sampled_from(_SIDS), _prefs, _region),
    st.tuples(st.just("student_withdrawn"), st.sampled_from(_SIDS), _region),
    st.tuples(st.just("again"), st.integers(0, 40)),  # an earlier event of the mix, redelivered
)
_NAMESPACES = itertools.count()
_SETUP: list[Op] = [
    ("post", 0, 1),
    ("post", 1, 2),
    ("register", 0, (0, 1), "A"),
    ("register", 1, (0,), "A"),
    ("register", 2, (1,), "B"),
]


def _events(ops: Sequence[Op], ns: str) -> list[ev.Event]:
    """The input events of `ops` in namespace `ns` (placements live in region A)."""
    made: list[ev.Event] = []
    for op in ops:
        kind = op[0]
        if kind == "again":
            if made:
                made.append(made[op[1] % len(made)])
            continue
        if kind in ("post", "update"):
            offer = placement(f"{ns}p{op[1]}", region=f"{ns}A", capacity=op[2])
            cls = ev.PlacementPosted if kind == "post" else ev.PlacementUpdated
            made.append(cls(producer="t", data=offer))
        elif kind == "placement_withdrawn":
            made.append(placement_withdrawn(f"{ns}p{op[1]}", region=f"{ns}A"))
        elif kind in ("register", "prefer"):
            prefs = tuple(f"{ns}p{i}" for i in op[2])
            profile = student(f"{ns}s{op[1]}", region=f"{ns}{op[3]}", prefs=prefs)
            scls = ev.StudentRegistered if kind == "register" else ev.StudentPreferencesUpdated
            made.append(scls(producer="t", data=profile))
        else:
            made.append(student_withdrawn(f"{ns}s{op[1]}", region=f"{ns}{op[2]}"))
    return made


def _batches(events: list[ev.Event], cuts: Sequence[int]) -> list[list[Any]]:
    """`events` cut into consecutive batches at `cuts`."""
    at = sorted({c % (len(events) + 1) for c in cuts} | {0, len(events)})
    return [events[a:b] for a, b in itertools.pairwise(at) if b > a]


class HandlerContract:
    """The handler tests; subclasses provide `uow` and `published`."""

    @pytest.fixture
    def uow(self) -> MatchingUnitOfWork:
        raise NotImplementedError

    async def published(self, uow: MatchingUnitOfWork) -> list[ev.Event]:
        """Every event the committed transactions wrote to the outbox, in order."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------- helpers

    async def apply(
        self, uow: MatchingUnitOfWork, *events: ev.Event, automatic: bool = False
    ) -> set[str]:
        """Apply input events as the subscribers do; the regions whose input changed."""
        mode: Callable[[str], bool] = (lambda r: True) if automatic else (lambda r: False)
        changed: set[str] = set()
        for e in events:
            if isinstance(e, ev.PlacementPosted | ev.PlacementUpdated | ev.PlacementWithdrawn):
                changed |= await handlers.apply_placement_event(
                    e, uow, automatic=mode, any_automatic=automatic
                )
            elif isinstance(
                e, ev.StudentRegistered | ev.StudentPreferencesUpdated | ev.StudentWithdrawn
            ):
                changed |= await handlers.apply_student_event(e, uow, automatic=mode)
            elif isinstance(e, ev.MatchAccepted | ev.MatchDeclined):
                changed |= await handlers.respond_to_match(e, uow, automatic=mode)
            elif isinstance(e, ev.MatchAssignmentRequested):
                changed |= await handlers.assign_match(e, uow, automatic=mode)
            else:
                raise TypeError(f"not an input event: {e.type}")
        return changed

    async def round(
        self,
        uow: MatchingUnitOfWork,
        req: ev.MatchingRoundRequested | None = None,
        *,
        solver: Solver = greedy_solver,
        hooks: RoundHooks = handlers.NO_HOOKS,
        input_wait: float = 5.0,
    ) -> ev.MatchingRoundRequested:
        req = req or request()
        await handlers.handle_round_request(
            req, lambda: uow, solver=solver, hooks=hooks, input_wait=input_wait
        )
        return req

    async def automatic_round(self, uow: MatchingUnitOfWork, region: str = REGION) -> None:
        await handlers.run_round(
            uow, solver=greedy_solver, region=region, round_id=uuid.uuid4(), only_if_changed=True
        )

    async def proposals(self, uow: MatchingUnitOfWork) -> dict[str, ev.MatchProposed]:
        """The latest proposal of each student."""
        return {p.data.student_id: p for p in of(await self.published(uow), ev.MatchProposed)}

    async def settled(
        self, uow: MatchingUnitOfWork, producer: str = "t", region: str = REGION
    ) -> tuple[int, int]:
        async with uow:
            return await uow.inputs.settled(producer, region)

    async def observed(self, uow: MatchingUnitOfWork, ns: str) -> Any:
        """Everything the handlers can see of namespace `ns`, its prefix taken off: per region
        its input version, live students, live placements, withdrawn placements, standing
        matches and settled input counts; and the matches cancelled in it."""

        def bare(text: str) -> str:
            return text.removeprefix(ns)

        seen: dict[str, Any] = {}
        async with uow:
            for r in _REGIONS:
                problem, version = await uow.rounds.load_problem(f"{ns}{r}", whole_region=True)
                seen[r] = (
                    version,
                    [
                        (bare(s.student_id), bare(s.region), [bare(p) for p in s.preferences])
                        for s in problem.students
                    ],
                    [(bare(p.placement_id), p.capacity) for p in problem.placements],
                    sorted(bare(p) for p in problem.withdrawn_placements),
                    sorted((bare(m.student_id), bare(m.placement_id)) for m in problem.standing),
                    await uow.inputs.settled("t", f"{ns}{r}"),
                )
        cancelled = sorted(
            (bare(c.data.student_id), bare(c.data.placement_id), c.data.reason)
            for c in of(await self.published(uow), ev.MatchCancelled)
            if c.data.region.startswith(ns)
        )
        return seen, cancelled

    async def apply_in_batches(
        self, uow: MatchingUnitOfWork, batches: Sequence[Sequence[Any]]
    ) -> set[str]:
        changed: set[str] = set()
        for batch in batches:
            changed |= await handlers.apply_input_events(
                batch, uow, automatic=lambda r: True, any_automatic=True
            )
        return changed

    # ------------------------------------------------------------------------------ input

    async def test_input_in_any_order_makes_the_read_model_a_round_solves(
        self, uow: MatchingUnitOfWork
    ) -> None:
        # the students rank p-2 before p-2 exists: order across topics does not matter
        await self.apply(uow, registered("s-1", "p-2"), registered("s-2", "p-2"))
        await self.apply(uow, posted("p-2", capacity=1))
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [s.student_id for s in problem.students] == ["s-1", "s-2"]
        assert [(p.placement_id, p.capacity) for p in problem.placements] == [("p-2", 1)]

        req = await self.round(uow)
        out = await self.published(uow)
        assert [
            (p.data.student_id, p.data.placement_id, p.data.rank) for p in of(out, ev.MatchProposed)
        ] == [("s-1", "p-2", 1)]
        (done,) = of(out, ev.MatchingRoundCompleted)
        assert done.data.round_id == req.data.round_id
        assert done.data.proposed == 1
        assert done.data.cancelled == 0
        assert done.data.unplaced_by_reason == {"choices_full": 1}
        assert done.data.figures.placed == 1
        assert done.data.policy == "optimal"
        # the proposals, then every student's outcome, then the round's completion, all keyed
        # by the region
        assert [type(e) for e in out] == [
            ev.MatchProposed,
            ev.MatchingRoundOutcomes,
            ev.MatchingRoundCompleted,
        ]
        assert done.data.outcome_parts == 1
        assert {e.region for e in out} == {REGION}

    async def test_a_redelivered_input_is_applied_and_counted_once(
        self, uow: MatchingUnitOfWork
    ) -> None:
        event = posted("p-1")
        assert await self.apply(uow, event) == {REGION}
        assert await self.apply(uow, event) == set()
        assert await self.settled(uow) == (1, 0)
        await self.apply(uow, registered("s-1", "p-1"))
        assert await self.settled(uow) == (2, 0)

    async def test_an_update_changes_the_offer_and_a_repost_revives_a_withdrawn_placement(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), registered("s-1", "p-1"))
        update = ev.PlacementUpdated(producer="t", data=placement("p-1", capacity=3))
        await self.apply(uow, update)
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [p.capacity for p in problem.placements] == [3]
        await self.apply(uow, placement_withdrawn("p-1"))
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert problem.placements == ()
        assert problem.withdrawn_placements == frozenset({"p-1"})
        await self.apply(uow, posted("p-1"))
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [p.placement_id for p in problem.placements] == ["p-1"]

    async def test_a_withdrawal_of_an_unknown_id_is_counted_and_leaves_nothing(
        self, uow: MatchingUnitOfWork
    ) -> None:
        labels = {
            "topic": "apl.placements.v1",
            "event_type": "PlacementWithdrawn",
            "field": "placement_id",
        }

        def counted() -> float:
            found = METRICS.registry.get_sample_value("apl_events_unknown_ids_total", labels)
            return found or 0.0

        before = counted()
        assert await self.apply(uow, placement_withdrawn("p-9")) == set()
        assert await self.apply(uow, student_withdrawn("s-9")) == set()
        assert counted() == before + 1
        async with uow:  # no tombstone: neither id is known
            assert await uow.students.lock_region_and_find(REGION, "s-9") is None
            problem, _ = await uow.rounds.load_problem(REGION)
        assert "p-9" not in problem.withdrawn_placements
        await self.apply(uow, posted("p-9"), registered("s-1", "p-9"))  # posted after all
        await self.round(uow)
        assert pairs(await self.published(uow)) == [("s-1", "p-9")]

    async def test_withdrawn_placement_cancels_its_standing_matches_at_once(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), posted("p-2"))
        await self.apply(uow, registered("s-1", "p-1"), registered("s-2", "p-2"))
        await self.round(uow)
        for by in ("student", "company"):  # a confirmed match is cancelled too
            await self.apply(uow, accepted((await self.proposals(uow))["s-1"], by))
        assert len(of(await self.published(uow), ev.MatchConfirmed)) == 1
        assert await self.apply(uow, placement_withdrawn("p-1")) == {REGION}
        out = await self.published(uow)
        assert reasons(out) == [("s-1", "placement_withdrawn")]
        (cancelled,) = of(out, ev.MatchCancelled)
        assert cancelled.data.round_id is None
        assert cancelled.data.match_id == (await self.proposals(uow))["s-1"].data.match_id
        await self.round(uow)  # s-1 has nowhere to go; s-2 keeps its match
        after = of(await self.published(uow), ev.MatchingRoundCompleted)[-1]
        assert (after.data.proposed, after.data.cancelled) == (0, 0)

    async def test_withdrawn_student_cancels_its_standing_match_at_once(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.round(uow)
        await self.apply(uow, student_withdrawn("s-2"))
        out = await self.published(uow)
        assert reasons(out) == [("s-2", "student_withdrawn")]
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [s.student_id for s in problem.students] == ["s-1"]

    async def test_a_student_who_moved_changes_both_regions(self, uow: MatchingUnitOfWork) -> None:
        await self.apply(uow, registered("s-1", "p-1"))
        moved = ev.StudentPreferencesUpdated(
            producer="t", data=student("s-1", region="SE-O", prefs=("p-1",))
        )
        assert await self.apply(uow, moved) == {REGION, "SE-O"}
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert problem.students == ()

    # ---------------------------------------------------------------------------- batches

    async def test_a_batch_applies_each_event_once_and_counts_it_once(
        self, uow: MatchingUnitOfWork
    ) -> None:
        before, s1 = posted("p-1"), registered("s-1", "p-1")
        replayed = registered("s-3", "p-2")  # dead-lettered before, replayed in the batch
        await self.apply(uow, before)
        async with uow:
            await uow.inputs.record_dead(replayed.event_id, "t", REGION)
        assert await self.settled(uow) == (1, 1)
        batch: list[handlers.ReadModelInput] = [
            *(before, posted("p-2"), s1, s1, registered("s-2", "p-2"), replayed),
            posted("p-9", region="SE-O"),
        ]
        assert await handlers.apply_input_events(batch, uow) == {REGION, "SE-O"}
        # p-1 (before the batch), p-2, s-1 (twice in the batch), s-2 and s-3: once each
        assert await self.settled(uow) == (5, 0)
        assert await self.settled(uow, region="SE-O") == (1, 0)
        assert await handlers.apply_input_events(batch, uow) == set()  # redelivered
        assert await self.settled(uow) == (5, 0)
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [s.student_id for s in problem.students] == ["s-1", "s-2", "s-3"]
        assert [p.placement_id for p in problem.placements] == ["p-1", "p-2"]

    async def test_a_batch_ends_as_its_events_applied_one_by_one(
        self, uow: MatchingUnitOfWork
    ) -> None:
        # withdrawn and posted again, a student moved and back, an unknown id withdrawn, a new
        # placement and a new student withdrawn after their first event, a standing match
        # cancelled by a withdrawal, an update, redeliveries: all in one batch
        mix: list[Op] = [
            ("placement_withdrawn", 0),
            ("post", 0, 2),
            ("prefer", 1, (1, 0), "B"),
            ("student_withdrawn", 2, "B"),
            ("register", 2, (0,), "B"),
            ("placement_withdrawn", 2),
            ("post", 3, 1),
            ("placement_withdrawn", 3),
            ("register", 3, (3, 0), "A"),
            ("student_withdrawn", 3, "A"),
            ("student_withdrawn", 0, "A"),
            ("update", 1, 1),
            ("prefer", 1, (1,), "A"),
            ("again", 1),
            ("again", 0),
        ]
        await self.batch_against_one_by_one(uow, mix, cuts=[])

    @settings(
        max_examples=25,
        deadline=None,
        # the read model is shared by the examples (each has namespaces of its own), and the
        # method runs in both subclasses (the fake and PostgreSQL)
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
            HealthCheck.too_slow,
        ],
    )
    @given(mix=st.lists(_OPS, max_size=14), cuts=st.lists(st.integers(0, 20), max_size=3))
    async def test_any_mix_in_batches_ends_as_applied_one_by_one(
        self, uow: MatchingUnitOfWork, mix: list[Op], cuts: list[int]
    ) -> None:
        await self.batch_against_one_by_one(self.for_example(uow), mix, cuts)

    def for_example(self, uow: MatchingUnitOfWork) -> MatchingUnitOfWork:
        """The unit of work a property's example runs on: the test's (its namespaces keep the
        examples apart)."""
        return uow

    async def batch_against_one_by_one(
        self, uow: MatchingUnitOfWork, mix: Sequence[Op], cuts: Sequence[int]
    ) -> None:
        """The same setup, round and `mix` in two namespaces: one event at a time in the
        first, in batches cut at `cuts` in the second; both end the same."""
        k = next(_NAMESPACES)
        one, batched = f"{k:05d}a-", f"{k:05d}b-"
        for ns in (one, batched):
            await self.apply(uow, *_events(_SETUP, ns), automatic=True)
            await self.round(uow, request(region=f"{ns}A"))
        changed_one = await self.apply(uow, *_events(mix, one), automatic=True)
        changed_batched = await self.apply_in_batches(uow, _batches(_events(mix, batched), cuts))
        assert {r.removeprefix(one) for r in changed_one} == {
            r.removeprefix(batched) for r in changed_batched
        }
        assert await self.observed(uow, batched) == await self.observed(uow, one)

    # -------------------------------------------------------------------------- responses

    async def test_acceptance_by_both_sides_confirms_once_and_pins_the_match(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), registered("s-1", "p-1"))
        await self.round(uow)
        proposal = (await self.proposals(uow))["s-1"]
        assert await self.apply(uow, accepted(proposal, "student")) == set()
        assert of(await self.published(uow), ev.MatchConfirmed) == []
        await self.apply(uow, accepted(proposal, "company"))
        await self.apply(uow, accepted(proposal, "company"))  # a second acceptance: no news
        (confirmed,) = of(await self.published(uow), ev.MatchConfirmed)
        assert confirmed.data.match_id == proposal.data.match_id
        assert (confirmed.data.student_id, confirmed.data.placement_id) == ("s-1", "p-1")
        # a newcomer who ranks the same full placement does not displace the confirmed match
        await self.apply(uow, registered("s-0", "p-1"))
        await self.round(uow)
        last = of(await self.published(uow), ev.MatchingRoundCompleted)[-1]
        assert (last.data.proposed, last.data.cancelled) == (0, 0)
        assert last.data.unplaced_by_reason == {"choices_full": 1}

    async def test_decline_releases_the_match_and_excludes_the_pair(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), posted("p-2"))
        await self.apply(uow, registered("s-1", "p-1", "p-2"), registered("s-2", "p-1", "p-2"))
        first = await self.round(uow)
        proposed = await self.proposals(uow)
        assert {p.data.placement_id for p in proposed.values()} == {"p-1"}
        for by in ("student", "company"):
            await self.apply(uow, accepted(proposed["s-1"], by))
        assert await self.apply(uow, declined(proposed["s-2"], "student")) == {REGION}
        await self.round(uow)

        out = await self.published(uow)
        assert [c.data.student_id for c in of(out, ev.MatchConfirmed)] == ["s-1"]
        assert reasons(out) == [("s-2", "declined")]
        after = [p for p in of(out, ev.MatchProposed) if p.data.round_id != first.data.round_id]
        # the second round re-matches s-2 elsewhere (never p-1 again) and leaves s-1 pinned
        assert [(p.data.student_id, p.data.placement_id) for p in after] == [("s-2", "p-2")]
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert problem.excluded == frozenset({("s-2", "p-1")})

    async def test_a_response_whose_ids_do_not_belong_together_is_refused_whole(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.round(uow)
        before = await self.published(uow)
        bad = accepted((await self.proposals(uow))["s-1"], "student", student_id="s-2")
        with pytest.raises(ValueError, match="match_id"):
            await self.apply(uow, bad)
        assert await self.settled(uow) == (3, 0)  # neither claimed nor counted
        assert await self.published(uow) == before

    async def test_acceptance_of_a_match_that_no_longer_stands_is_ignored(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        await self.round(uow)
        proposal = (await self.proposals(uow))["s-1"]
        await self.apply(uow, placement_withdrawn("p-1"))
        for by in ("student", "company"):
            assert await self.apply(uow, accepted(proposal, by)) == set()
        assert of(await self.published(uow), ev.MatchConfirmed) == []
        assert await self.settled(uow) == (5, 0)  # applied (as a no-op) and counted

    # ----------------------------------------------------------------------------- rounds

    async def test_a_redelivered_request_runs_no_second_round_and_a_repeat_proposes_nothing(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        first = await self.round(uow)
        await self.round(uow, first)  # redelivered: claimed before, nothing happens
        again = await self.round(uow)  # a new request, nothing changed
        out = await self.published(uow)
        completed = of(out, ev.MatchingRoundCompleted)
        assert [c.data.round_id for c in completed] == [first.data.round_id, again.data.round_id]
        assert (completed[1].data.proposed, completed[1].data.cancelled) == (0, 0)
        assert pairs(out) == [("s-1", "p-1")]

    async def test_a_round_id_recorded_before_is_not_run_again(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        first = await self.round(uow)
        twin = ev.MatchingRoundRequested(producer="other", data=first.data)  # new event id
        await self.round(uow, twin)
        assert len(of(await self.published(uow), ev.MatchingRoundCompleted)) == 1

    async def test_a_round_waits_for_the_inputs_its_request_counts(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        early = request(inputs=3)
        with pytest.raises(TimeoutError, match="2 of 3 input events"):
            await self.round(uow, early, input_wait=0.1)
        assert await self.published(uow) == []
        await self.apply(uow, registered("s-2", "p-1"))
        await self.round(uow, early)  # redelivered once the input is there
        assert sorted(pairs(await self.published(uow))) == [("s-1", "p-1"), ("s-2", "p-1")]

    async def test_a_dead_lettered_input_does_not_hold_up_the_rounds_that_counted_it(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1))
        await self.apply(uow, registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.round(uow)
        (proposal,) = (await self.proposals(uow)).values()
        other = "s-2" if proposal.data.student_id == "s-1" else "s-1"
        bad = accepted(proposal, "student", student_id=other)
        with pytest.raises(ValueError, match="match_id"):
            await self.apply(uow, bad)
        await handlers.record_dead_input(bad, uow)  # what the policy does after the retries
        await handlers.record_dead_input(bad, uow)  # idempotent
        await handlers.record_dead_input(request(), uow)  # not an input: not counted
        assert await self.settled(uow) == (3, 1)
        # The requester had published four inputs, the dead one included: the round runs.
        req = await self.round(uow, request(inputs=4), input_wait=1.0)
        last = of(await self.published(uow), ev.MatchingRoundCompleted)[-1]
        assert last.data.round_id == req.data.round_id
        # Replayed from the .dlt and applied after all, it is counted once, as applied.
        async with uow:
            await uow.inputs.count_applied(bad.event_id, "t", REGION)
        assert await self.settled(uow) == (4, 0)

    async def test_automatic_rounds_run_only_when_the_input_changed(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=3), posted("p-2", capacity=3), automatic=True)
        for sid in ("s-1", "s-2", "s-3"):
            await self.apply(uow, registered(sid, "p-1", "p-2"), automatic=True)
        async with uow:
            assert await uow.regions.changed() == [REGION]
        await self.automatic_round(uow)
        async with uow:
            assert await uow.regions.changed() == []
        await self.automatic_round(uow)  # unchanged: does nothing at all
        out = await self.published(uow)
        assert len(of(out, ev.MatchingRoundCompleted)) == 1
        first = await self.proposals(uow)
        assert {p.data.placement_id for p in first.values()} == {"p-1"}

        await self.apply(uow, declined(first["s-2"], "company"), automatic=True)
        await self.automatic_round(uow)
        out = await self.published(uow)
        assert len(of(out, ev.MatchingRoundCompleted)) == 2
        # the decline is re-matched minimally: only s-2 moves
        assert pairs(out)[3:] == [("s-2", "p-2")]
        assert reasons(out) == [("s-2", "declined")]

    async def test_regions_not_in_automatic_mode_are_not_tracked(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        async with uow:
            assert await uow.regions.changed() == []
        await self.automatic_round(uow)
        assert await self.published(uow) == []

    async def test_a_placement_change_changes_the_regions_whose_students_rank_it(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, registered("s-9", "p-1", region="SE-O"))
        assert await self.apply(uow, posted("p-1"), automatic=True) == {REGION, "SE-O"}
        async with uow:
            assert await uow.regions.changed() == ["SE-AB", "SE-O"]

    async def test_other_regions_standing_matches_use_up_shared_capacity(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), registered("s-9", "p-1", region="SE-O"))
        await self.round(uow, request("SE-O"))
        await self.apply(uow, registered("s-1", "p-1"))
        await self.round(uow)
        out = await self.published(uow)
        assert pairs(out) == [("s-9", "p-1")]
        assert of(out, ev.MatchingRoundCompleted)[-1].data.unplaced_by_reason == {"choices_full": 1}

    async def test_a_round_that_fails_leaves_nothing_and_can_run_again(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))

        def broken(problem: RoundProblem) -> SolveResult:
            raise ValueError("the engine refuses this input")

        req = request()
        with pytest.raises(ValueError, match="refuses"):
            await self.round(uow, req, solver=broken)
        assert await self.published(uow) == []
        await self.round(uow, req)  # the request was not claimed: its retry runs the round
        assert pairs(await self.published(uow)) == [("s-1", "p-1")]

    async def test_hooks_run_inside_the_round_transaction_and_after_its_commit(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        seen: list[tuple[str, int]] = []
        published = self.published

        class Watching(RoundHooks):
            async def before_commit(self) -> None:
                seen.append(("before", -1))

            async def after_commit(self) -> None:
                seen.append(("after", len(await published(uow))))

        class Crashing(RoundHooks):
            async def before_commit(self) -> None:
                raise RuntimeError("killed mid-round")

        req = request()
        with pytest.raises(RuntimeError, match="killed"):
            await self.round(uow, req, hooks=Crashing())
        assert await self.published(uow) == []  # nothing of the round committed
        await self.round(uow, req, hooks=Watching())
        # MatchProposed, MatchingRoundOutcomes, MatchingRoundCompleted
        assert seen == [("before", -1), ("after", 3)]
        await self.round(uow, req, hooks=Watching())  # handled before: no round, no hooks
        assert len(seen) == 2

    # --------------------------------------------------------------------- v2: outcomes

    async def test_every_outcome_is_published_in_parts_before_the_completion(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=300), posted("p-2", capacity=100))
        for i in range(450):
            await self.apply(uow, registered(f"s-{i:03}", "p-1", "p-2"))
        first = await self.round(uow)
        out = await self.published(uow)
        parts = of(out, ev.MatchingRoundOutcomes)
        assert [(p.data.part, p.data.parts) for p in parts] == [(1, 3), (2, 3), (3, 3)]
        assert [len(p.data.outcomes) for p in parts] == [200, 200, 50]
        assert {p.data.dry_run for p in parts} == {False}
        # in the outbox: proposals, then the outcomes, then the completion
        kinds = [type(e).__name__ for e in out]
        assert kinds[-4:] == ["MatchingRoundOutcomes"] * 3 + ["MatchingRoundCompleted"]
        (done,) = of(out, ev.MatchingRoundCompleted)
        assert done.data.outcome_parts == 3
        assert (done.data.kind, done.data.fill, done.data.dry_run) == ("ordinary", False, False)
        outcomes = outcomes_of(out, first.data.round_id)
        assert len(outcomes) == 450
        assert outcomes["s-000"].placement_id == "p-1"
        assert outcomes["s-000"].previous_placement_id is None
        unplaced = [o for o in outcomes.values() if o.placement_id is None]
        assert len(unplaced) == 50
        assert {o.reason for o in unplaced} == {"choices_full"}
        assert done.data.unplaced_by_reason == {"choices_full": 50}
        # a second round: the outcome names the placement each student held before
        second = await self.round(uow)
        again = outcomes_of(await self.published(uow), second.data.round_id)
        assert again["s-000"].previous_placement_id == "p-1"
        assert again["s-449"].previous_placement_id is None

    async def test_a_dry_run_reports_and_writes_no_match(self, uow: MatchingUnitOfWork) -> None:
        await self.apply(uow, posted("p-1", capacity=1), posted("p-2", capacity=1), automatic=True)
        await self.apply(uow, registered("s-1", "p-1"), automatic=True)
        await self.round(uow)
        before = await self.published(uow)
        async with uow:
            assert await uow.regions.changed() == []
        # s-1 now ranks p-2 only: a round would move it; s-2 would be placed at p-1
        await self.apply(uow, registered("s-1", "p-2"), registered("s-2", "p-1"), automatic=True)
        dry = request(dry_run=True)
        await self.round(uow, dry)
        out = await self.published(uow)
        new = out[len(before) :]
        assert [type(e) for e in new] == [ev.MatchingRoundOutcomes, ev.MatchingRoundCompleted]
        (done,) = of(new, ev.MatchingRoundCompleted)
        assert done.data.dry_run is True
        assert (done.data.proposed, done.data.cancelled) == (0, 0)
        assert done.data.figures.placed == 2
        (part,) = of(new, ev.MatchingRoundOutcomes)
        assert part.data.dry_run is True
        would = {
            o.student_id: (o.previous_placement_id, o.placement_id) for o in part.data.outcomes
        }
        assert would == {"s-1": ("p-1", "p-2"), "s-2": (None, "p-1")}
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
            # still as before: s-1's proposal stands, s-2 has none; the change still counts
            assert [(m.student_id, m.placement_id) for m in problem.standing] == [("s-1", "p-1")]
            assert await uow.regions.changed() == [REGION]
        # redelivered, or the same round id again: a duplicate
        await self.round(uow, dry)
        await self.round(uow, ev.MatchingRoundRequested(producer="other", data=dry.data))
        assert len(await self.published(uow)) == len(out)
        # the real round does what the dry run showed
        await self.round(uow)
        out = await self.published(uow)
        assert reasons(out) == [("s-1", "superseded")]
        assert pairs(out)[1:] == [("s-1", "p-2"), ("s-2", "p-1")]

    async def test_a_supplementary_round_keeps_every_standing_match_and_places_the_unplaced(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), posted("p-2", capacity=1))
        await self.apply(uow, registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.round(uow)
        assert pairs(await self.published(uow)) == [("s-1", "p-1")]
        # s-1 no longer ranks p-1 (an ordinary round would move it); s-2 ranks a vacancy
        await self.apply(uow, registered("s-1", "p-2"), registered("s-2", "p-1", "p-2"))
        supplementary = await self.round(uow, request(kind="supplementary"))
        out = await self.published(uow)
        assert reasons(out) == []
        assert pairs(out) == [("s-1", "p-1"), ("s-2", "p-2")]
        done = of(out, ev.MatchingRoundCompleted)[-1]
        assert done.data.kind == "supplementary"
        assert (done.data.proposed, done.data.cancelled) == (1, 0)
        outcomes = outcomes_of(out, supplementary.data.round_id)
        assert outcomes["s-1"].pinned is True
        assert outcomes["s-1"].placement_id == "p-1"

    async def test_fill_places_the_unplaced_at_vacancies_of_their_region(
        self, uow: MatchingUnitOfWork
    ) -> None:
        # nobody ranks p-3 (the round must load it) or p-9 (another region's)
        await self.apply(uow, posted("p-1", capacity=1), posted("p-3", capacity=1))
        await self.apply(uow, posted("p-9", region="SE-O", capacity=5))
        await self.apply(uow, *(registered(sid, "p-1") for sid in ("s-1", "s-2", "s-3")))
        filled = await self.round(uow, request(fill=True))
        out = await self.published(uow)
        proposed = [
            (p.data.student_id, p.data.placement_id, p.data.rank, p.data.filled)
            for p in of(out, ev.MatchProposed)
        ]
        assert proposed == [("s-1", "p-1", 1, False), ("s-2", "p-3", None, True)]
        (done,) = of(out, ev.MatchingRoundCompleted)
        assert done.data.fill is True
        assert (done.data.figures.filled, done.data.figures.no_eligible_vacancy) == (1, 1)
        assert done.data.unplaced_by_reason == {"no_eligible_vacancy": 1}
        outcomes = outcomes_of(out, filled.data.round_id)
        assert (outcomes["s-2"].filled, outcomes["s-2"].rank) == (True, None)
        assert outcomes["s-3"].reason == "no_eligible_vacancy"

    # -------------------------------------------------------------------- v2: overrides

    async def test_an_override_is_proposed_under_its_own_id_and_pinned_in_later_rounds(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), posted("p-2", capacity=1))
        await self.apply(uow, registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.round(uow)
        # s-2 is unplaced; assigned by hand to p-2, which it did not rank
        order = assignment("s-2", "p-2")
        assert await self.apply(uow, order, automatic=True) == {REGION}
        await self.apply(uow, order)  # redelivered: applied once
        out = await self.published(uow)
        (override,) = [p for p in of(out, ev.MatchProposed) if p.data.override]
        assert override.data.match_id == order.data.match_id
        assert (override.data.student_id, override.data.placement_id) == ("s-2", "p-2")
        assert override.data.rank is None
        assert override.data.round_id == handlers.OVERRIDE_ROUND_ID
        assert override.data.filled is False
        assert await self.settled(uow) == (5, 0)  # counted as an input event
        async with uow:
            assert await uow.regions.changed() == [REGION]
        # a later round keeps it (pinned), though s-2 never ranked p-2
        later = await self.round(uow)
        out = await self.published(uow)
        assert of(out, ev.MatchingRoundCompleted)[-1].data.cancelled == 0
        assert outcomes_of(out, later.data.round_id)["s-2"].pinned is True
        # and it is confirmed like any other match
        for by in ("student", "company"):
            await self.apply(uow, accepted(override, by))
        (confirmed,) = of(await self.published(uow), ev.MatchConfirmed)
        assert confirmed.data.match_id == order.data.match_id

    async def test_an_override_cancels_the_students_other_match(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), posted("p-2", capacity=1))
        await self.apply(uow, registered("s-1", "p-1", "p-2"))
        await self.round(uow)
        old = (await self.proposals(uow))["s-1"]
        order = assignment("s-1", "p-2")
        await self.apply(uow, order)
        out = await self.published(uow)
        (cancelled,) = of(out, ev.MatchCancelled)
        assert (cancelled.data.match_id, cancelled.data.reason) == (old.data.match_id, "overridden")
        new = of(out, ev.MatchProposed)[-1]
        assert (new.data.match_id, new.data.rank, new.data.override) == (
            order.data.match_id,
            2,
            True,
        )
        # the student's own match at the placement is not counted against its capacity
        again = assignment("s-1", "p-2")
        await self.apply(uow, again)
        out = await self.published(uow)
        assert reasons(out)[-1] == ("s-1", "overridden")
        assert of(out, ev.MatchProposed)[-1].data.match_id == again.data.match_id
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [(m.match_id, m.override) for m in problem.standing] == [
            (str(again.data.match_id), True)
        ]

    async def test_an_override_to_a_full_placement_is_cancelled_and_writes_nothing(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1", capacity=1), posted("p-2", capacity=1))
        await self.apply(uow, registered("s-1", "p-1"), registered("s-2", "p-1"))
        await self.apply(uow, registered("s-9", "p-2", region="SE-O"))
        await self.round(uow)
        await self.round(uow, request("SE-O"))  # another region's match holds p-2
        before = await self.published(uow)
        refused = [assignment("s-2", "p-1"), assignment("s-2", "p-2")]
        await self.apply(uow, *refused)
        out = (await self.published(uow))[len(before) :]
        assert [type(e) for e in out] == [ev.MatchCancelled, ev.MatchCancelled]
        assert [(c.data.match_id, c.data.reason) for c in of(out, ev.MatchCancelled)] == [
            (r.data.match_id, "capacity_reduced") for r in refused
        ]
        assert {c.data.round_id for c in of(out, ev.MatchCancelled)} == {None}
        async with uow:
            problem, _ = await uow.rounds.load_problem(REGION)
        assert [(m.student_id, m.placement_id) for m in problem.standing] == [("s-1", "p-1")]

    async def test_an_override_of_a_withdrawn_student_or_placement_is_cancelled(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), posted("p-2"), registered("s-1", "p-1"))
        await self.apply(uow, placement_withdrawn("p-2"), registered("s-2", "p-1"))
        await self.apply(uow, student_withdrawn("s-2"))
        orders = [assignment("s-1", "p-2"), assignment("s-2", "p-1"), assignment("s-7", "p-1")]
        await self.apply(uow, *orders)
        assert [
            (c.data.match_id, c.data.reason)
            for c in of(await self.published(uow), ev.MatchCancelled)
        ] == [
            (orders[0].data.match_id, "placement_withdrawn"),
            (orders[1].data.match_id, "student_withdrawn"),
            (orders[2].data.match_id, "student_withdrawn"),
        ]
        assert of(await self.published(uow), ev.MatchProposed) == []

    async def test_an_override_of_a_declined_pair_is_kept_by_later_rounds(
        self, uow: MatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"), registered("s-1", "p-1"))
        await self.round(uow)
        await self.apply(uow, declined((await self.proposals(uow))["s-1"], "student"))
        order = assignment("s-1", "p-1")
        await self.apply(uow, order)
        captured: list[RoundProblem] = []

        def watching(problem: RoundProblem) -> SolveResult:
            captured.append(problem)
            return greedy_solver(problem)

        await self.round(uow, solver=watching)
        (given,) = captured
        assert [(p.student_id, p.placement_id) for p in given.pinned] == [("s-1", "p-1")]
        assert given.excluded == frozenset()  # a pinned pair is not also excluded
        assert of(await self.published(uow), ev.MatchingRoundCompleted)[-1].data.cancelled == 0


class TestInMemory(HandlerContract):
    @pytest.fixture
    def uow(self) -> InMemoryMatchingUnitOfWork:
        return InMemoryMatchingUnitOfWork()

    async def published(self, uow: MatchingUnitOfWork) -> list[ev.Event]:
        if not isinstance(uow, InMemoryMatchingUnitOfWork):
            raise TypeError(type(uow).__name__)
        return list(uow.published)

    def for_example(self, uow: MatchingUnitOfWork) -> MatchingUnitOfWork:
        """A fresh fake per example (the fake copies its whole state at every transaction)."""
        return InMemoryMatchingUnitOfWork()

    async def test_a_rolled_back_block_leaves_the_state_as_it_was(
        self, uow: InMemoryMatchingUnitOfWork
    ) -> None:
        await self.apply(uow, posted("p-1"))

        async def fail() -> None:
            async with uow:
                await uow.placements.withdraw("p-1", REGION)
                await uow.publish([posted("p-2")])
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await fail()
        assert not uow.model.placements["p-1"].withdrawn
        assert uow.published == []


@pytest.mark.infra
class TestPostgres(HandlerContract):
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
