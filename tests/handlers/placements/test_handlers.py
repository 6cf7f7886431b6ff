"""The placements handlers over a unit of work: the same tests against the in-memory fake and
(marked infra) against real PostgreSQL (a fresh schema per test)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.placements import handlers
from services.placements.adapters.postgres import PostgresPlacementsUnitOfWork
from services.placements.domain import links
from services.placements.domain.audit import AuditQuery
from services.placements.domain.commands import (
    AnswerMatch,
    InviteStaff,
    LinkAccount,
    ListPlacements,
    PatchPlacement,
    PostPlacement,
    PostPlacements,
    RegisterStudent,
    RegisterStudents,
    RequestRound,
    SetCompanyChannel,
    SetPreferences,
    WithdrawPlacement,
    WithdrawStudent,
)
from services.placements.domain.errors import Conflict, Invalid, NotFound
from services.placements.domain.model import (
    AccountLinks,
    Contact,
    IdempotencyKey,
    OfferDraft,
    StudentDraft,
)
from services.placements.domain.rules import Channel
from services.placements.entrypoints.schemas import RoundOut
from shared.contracts import events as ev
from shared.contracts.links import new_link
from shared.contracts.topics import MATCH_DECISIONS
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier
from tests.support.factories import every_event, placement, student

REGION = "SE-AB"
CONTACT = Contact("Sara Nieminen", "sara@example.fi", "+358 40 123 4567")


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(
    pid: str, region: str = REGION, channel: Channel | None = None, **kw: Any
) -> PostPlacement:
    fields = {**placement(pid, region=region).model_dump(), **kw}
    return PostPlacement(OfferDraft.model_validate(fields, strict=False), channel)


def register(
    sid: str, prefs: tuple[str, ...] = (), region: str = REGION, **kw: Any
) -> RegisterStudent:
    fields = {**student(sid, region=region, prefs=()).model_dump(), "preferences": prefs, **kw}
    return RegisterStudent(StudentDraft.model_validate(fields, strict=False), CONTACT)


def proposal(sid: str, pid: str, region: str = REGION) -> ev.MatchProposed:
    data = ev.MatchProposedData(
        match_id=uuid.uuid4(),
        region=region,
        student_id=sid,
        placement_id=pid,
        round_id=uuid.uuid4(),
        company_id="c-1",
        rank=1,
    )
    return ev.MatchProposed(producer="matching", data=data)


def ids_of(m: ev.MatchProposed) -> dict[str, Any]:
    d = m.data
    return {
        "match_id": d.match_id,
        "region": d.region,
        "student_id": d.student_id,
        "placement_id": d.placement_id,
    }


def confirmation(m: ev.MatchProposed) -> ev.MatchConfirmed:
    return ev.MatchConfirmed(producer="matching", data=ev.MatchConfirmedData(**ids_of(m)))


def fields(error: Invalid) -> set[str]:
    return {e.field for e in error.errors}


class PlacementHandlerContract:
    """The handler tests; a subclass provides the unit of work and reads its outbox."""

    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[ev.Event]:
        """The committed outbox, in order."""
        raise NotImplementedError

    async def published_types(self, uow: Any) -> list[str]:
        return [e.type for e in await self.published(uow)]

    # --------------------------------------------------------------------------- placements

    async def test_post_placement_publishes_placement_posted(self, uow: Any) -> None:
        command = post("p-1", channel=Channel("webhook", "https://hr.example/hook"))
        view = await handlers.post_placement(command, uow)
        assert (view.confirmed, view.placement.withdrawn) == (0, False)
        assert view.placement.channel == Channel("webhook", "https://hr.example/hook")
        [event] = await self.published(uow)
        assert isinstance(event, ev.PlacementPosted)
        assert event.data == placement("p-1")
        assert event.producer == "placements"
        assert (await handlers.get_placement("p-1", uow)) == view

    async def test_an_offer_that_breaks_its_rules_names_every_field(self, uow: Any) -> None:
        bad = post(
            "p-1",
            channel=Channel("webhook", None),
            starts_on="2027-04-01",
            ends_on="2027-03-01",
            ranking=("s-1", "s-2", "s-1"),
        )
        with pytest.raises(Invalid) as caught:
            await handlers.post_placement(bad, uow)
        assert fields(caught.value) == {"ends_on", "ranking[2]", "notification.webhook_url"}
        with pytest.raises(NotFound):
            await handlers.get_placement("p-1", uow)
        assert await self.published(uow) == []

    async def test_a_duplicate_placement_id_conflicts(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        with pytest.raises(Conflict, match="p-1 already exists"):
            await handlers.post_placement(post("p-1", capacity=9), uow)
        assert await self.published_types(uow) == ["PlacementPosted"]
        assert (await handlers.get_placement("p-1", uow)).placement.offer.capacity == 2

    async def test_patch_changes_fields_and_publishes_the_update(self, uow: Any) -> None:
        hook = Channel("webhook", "https://hr.example/hook")
        await handlers.post_placement(post("p-1", channel=hook), uow)
        view = await handlers.patch_placement(
            PatchPlacement("p-1", {"capacity": 5, "title": "Welder"}), uow
        )
        assert (view.placement.offer.capacity, view.placement.offer.title) == (5, "Welder")
        assert view.placement.channel == hook  # not sent: unchanged
        updated = (await self.published(uow))[-1]
        assert isinstance(updated, ev.PlacementUpdated)
        assert updated.data == view.placement.offer
        view = await handlers.patch_placement(
            PatchPlacement("p-1", {"title": None}, channel=None, set_channel=True), uow
        )
        assert (view.placement.offer.title, view.placement.channel) == (None, None)
        assert (await handlers.get_placement("p-1", uow)) == view

    async def test_a_bad_patch_names_its_fields_and_changes_nothing(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.patch_placement(
                PatchPlacement("p-1", {"capacity": None, "programmes": None, "title": None}), uow
            )
        assert fields(caught.value) == {"capacity", "programmes"}
        with pytest.raises(Invalid) as caught:
            await handlers.patch_placement(
                PatchPlacement(
                    "p-1",
                    {"ends_on": date(2027, 1, 1)},
                    channel=Channel("email", "https://x"),
                    set_channel=True,
                ),
                uow,
            )
        assert fields(caught.value) == {"ends_on", "notification.webhook_url"}
        with pytest.raises(NotFound):
            await handlers.patch_placement(PatchPlacement("nope", {"capacity": 1}), uow)
        assert await self.published_types(uow) == ["PlacementPosted"]

    async def test_capacity_cannot_drop_below_the_confirmed_matches(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1", capacity=3), uow)
        for sid in ("s-1", "s-2"):
            m = proposal(sid, "p-1")
            await handlers.apply_match_proposed(m, uow)
            await handlers.apply_match_confirmed(confirmation(m), uow)
        assert (await handlers.get_placement("p-1", uow)).confirmed == 2
        with pytest.raises(Invalid) as caught:
            await handlers.patch_placement(PatchPlacement("p-1", {"capacity": 1}), uow)
        assert fields(caught.value) == {"capacity"}
        view = await handlers.patch_placement(PatchPlacement("p-1", {"capacity": 2}), uow)
        assert (view.placement.offer.capacity, view.confirmed) == (2, 2)

    async def test_withdrawal_is_published_once_and_freezes_the_placement(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        for _ in range(2):
            await handlers.withdraw_placement(WithdrawPlacement("p-1", "position filled"), uow)
        withdrawn = (await self.published(uow))[-1]
        assert isinstance(withdrawn, ev.PlacementWithdrawn)
        assert withdrawn.data == ev.PlacementWithdrawnData(
            placement_id="p-1", region=REGION, reason="position filled"
        )
        assert await self.published_types(uow) == ["PlacementPosted", "PlacementWithdrawn"]
        assert (await handlers.get_placement("p-1", uow)).placement.withdrawn
        with pytest.raises(Conflict, match="withdrawn"):
            await handlers.patch_placement(PatchPlacement("p-1", {"capacity": 1}), uow)
        with pytest.raises(NotFound):
            await handlers.withdraw_placement(WithdrawPlacement("nope"), uow)

    async def test_listing_filters_and_pages_by_id(self, uow: Any) -> None:
        for pid, region, company in (
            ("p-3", "R1", "c-1"),
            ("p-1", "R1", "c-2"),
            ("p-2", "R1", "c-1"),
            ("p-4", "R2", "c-1"),
        ):
            await handlers.post_placement(post(pid, region, company_id=company), uow)
        await handlers.withdraw_placement(WithdrawPlacement("p-2"), uow)

        async def listed(**kw: Any) -> list[str]:
            views = await handlers.list_placements(ListPlacements(**kw), uow)
            return [v.placement.placement_id for v in views]

        assert await listed(region="R1") == ["p-1", "p-3"]
        assert await listed(region="R1", include_withdrawn=True) == ["p-1", "p-2", "p-3"]
        assert await listed(company_id="c-1") == ["p-3", "p-4"]
        assert await listed(include_withdrawn=True, limit=2, offset=1) == ["p-2", "p-3"]

    async def test_a_batch_is_all_or_nothing(self, uow: Any) -> None:
        ids = await handlers.post_placements(PostPlacements((post("p-2"), post("p-1"))), uow)
        assert ids == ["p-2", "p-1"]
        with pytest.raises(Conflict, match=r"items\[1\] \(p-1\)"):
            await handlers.post_placements(PostPlacements((post("p-3"), post("p-1"))), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.post_placements(
                PostPlacements((post("p-4"), post("p-5", ends_on="2020-01-01"), post("p-4"))), uow
            )
        assert fields(caught.value) == {"items[1].ends_on", "items[2].placement_id"}
        for missing in ("p-3", "p-4", "p-5"):
            with pytest.raises(NotFound):
                await handlers.get_placement(missing, uow)
        assert await self.published_types(uow) == ["PlacementPosted"] * 2

    async def test_company_channel_is_checked(self, uow: Any) -> None:
        with pytest.raises(Invalid) as caught:
            await handlers.set_company_channel(
                SetCompanyChannel("c-1", Channel("webhook", "ftp://x")), uow
            )
        assert fields(caught.value) == {"webhook_url"}
        await handlers.set_company_channel(SetCompanyChannel("c-1", Channel("email")), uow)
        assert await self.published(uow) == []  # the one write without an event

    # ----------------------------------------------------------------------------- students

    async def test_registration_validates_preferences_and_publishes_the_profile(
        self, uow: Any
    ) -> None:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.post_placement(post("p-gone"), uow)
        await handlers.withdraw_placement(WithdrawPlacement("p-gone"), uow)
        bad = register(
            "s-1",
            ("p-1", "p-unknown", "p-1", "p-gone"),
            available_from="2027-05-01",
            available_to="2027-04-01",
        )
        with pytest.raises(Invalid) as caught:
            await handlers.register_student(bad, uow)
        assert fields(caught.value) == {
            "preferences[1]",
            "preferences[2]",
            "preferences[3]",
            "available_to",
        }
        with pytest.raises(Invalid) as caught:
            await handlers.register_student(register("s-1", tuple(f"x{i}" for i in range(11))), uow)
        assert "preferences" in fields(caught.value)
        with pytest.raises(NotFound):
            await handlers.get_student("s-1", uow)

        registered = await handlers.register_student(register("s-1", ("p-1",)), uow)
        assert registered.contact == CONTACT
        assert await handlers.get_student("s-1", uow) == registered
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.StudentRegistered)
        assert event.data == registered.profile
        assert "email" not in event.data.model_dump()
        with pytest.raises(Conflict):
            await handlers.register_student(register("s-1"), uow)

    async def test_a_registration_batch_is_all_or_nothing(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.register_student(register("s-1"), uow)
        with pytest.raises(Invalid) as caught:
            await handlers.register_students(
                RegisterStudents((register("s-2", ("p-1",)), register("s-3", ("p-1", "p-x")))), uow
            )
        assert fields(caught.value) == {"items[1].preferences[1]"}
        with pytest.raises(Conflict, match=r"items\[1\] \(s-1\)"):
            await handlers.register_students(
                RegisterStudents((register("s-2"), register("s-1"))), uow
            )
        with pytest.raises(NotFound):
            await handlers.get_student("s-2", uow)
        ids = await handlers.register_students(
            RegisterStudents((register("s-3", ("p-1",)), register("s-2"))), uow
        )
        assert ids == ["s-3", "s-2"]
        assert await self.published_types(uow) == ["PlacementPosted"] + ["StudentRegistered"] * 3

    async def test_preferences_are_checked_and_published(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.post_placement(post("p-2"), uow)
        await handlers.register_student(register("s-1", ("p-1",)), uow)
        updated = await handlers.set_preferences(SetPreferences("s-1", ("p-2", "p-1")), uow)
        assert updated.profile.preferences == ("p-2", "p-1")
        assert updated.contact == CONTACT
        event = (await self.published(uow))[-1]
        assert isinstance(event, ev.StudentPreferencesUpdated)
        assert event.data == updated.profile
        with pytest.raises(Invalid) as caught:
            await handlers.set_preferences(SetPreferences("s-1", ("p-2", "p-2", "p-9")), uow)
        assert fields(caught.value) == {"preferences[1]", "preferences[2]"}
        with pytest.raises(NotFound):
            await handlers.set_preferences(SetPreferences("nope", ()), uow)

    async def test_withdrawal_erases_the_personal_data(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        key = IdempotencyKey("k-1", "POST", "/v1/students", "hash")
        async with uow:
            assert await uow.idempotency.reserve(key) is None
            registered = await handlers.register_student(register("s-1", ("p-1",)), uow)
            body = {"student_id": "s-1", "name": CONTACT.name, "email": CONTACT.email}
            await uow.idempotency.store(key, 201, body, "s-1")
        m = proposal("s-1", "p-1")
        await handlers.apply_match_proposed(m, uow)
        await handlers.answer_match(AnswerMatch(m.data.match_id, "student", "decline", "far"), uow)

        for _ in range(2):
            await handlers.withdraw_student(WithdrawStudent("s-1"), uow)
        withdrawn = (await self.published(uow))[-1]
        assert isinstance(withdrawn, ev.StudentWithdrawn)
        assert withdrawn.data == ev.StudentWithdrawnData(student_id="s-1", region=REGION)
        assert (await self.published_types(uow)).count("StudentWithdrawn") == 1
        with pytest.raises(NotFound, match="withdrawn"):
            await handlers.get_student("s-1", uow)
        with pytest.raises(NotFound, match="withdrawn"):
            await handlers.student_match("s-1", uow)
        async with uow:
            stored = await uow.idempotency.reserve(key)
        assert stored is not None
        assert (stored.status, stored.body, stored.request_hash) == (
            201,
            {"student_id": "s-1"},
            None,
        )
        [match] = await handlers.placement_matches("p-1", uow)
        assert (match.declined_by, match.reason) == ("student", None)
        context = await handlers.notice_context("p-1", "s-1", uow)
        assert context.student is None
        assert registered.student_id == "s-1"
        with pytest.raises(Conflict):  # the tombstone keeps the id taken
            await handlers.register_student(register("s-1"), uow)

    # ------------------------------------------------------------------------------ matches

    async def test_answers_change_the_state_publish_and_claim_their_event(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.register_students(RegisterStudents((register("s-1"), register("s-2"))), uow)
        first, second = proposal("s-1", "p-1"), proposal("s-2", "p-1")
        for m in (first, second):
            await handlers.apply_match_proposed(m, uow)
        accepted = await handlers.answer_match(
            AnswerMatch(first.data.match_id, "student", "accept"), uow
        )
        assert (accepted.state, accepted.accepted_by_student) == ("accepted", True)
        with pytest.raises(Conflict, match="already accepted"):
            await handlers.answer_match(AnswerMatch(first.data.match_id, "student", "accept"), uow)
        declined = await handlers.answer_match(
            AnswerMatch(second.data.match_id, "company", "decline", "no fit"), uow
        )
        assert (declined.state, declined.declined_by, declined.reason) == (
            "declined",
            "company",
            "no fit",
        )
        with pytest.raises(Conflict):
            await handlers.answer_match(AnswerMatch(second.data.match_id, "student", "accept"), uow)
        with pytest.raises(NotFound):
            await handlers.answer_match(AnswerMatch(uuid.uuid4(), "student", "accept"), uow)

        answers = [e for e in await self.published(uow) if e.topic == MATCH_DECISIONS]
        [accept, decline] = answers
        assert isinstance(accept, ev.MatchAccepted)
        assert isinstance(decline, ev.MatchDeclined)
        assert accept.data == ev.MatchAcceptedData(**ids_of(first), by="student")
        # the words stay here; the event carries a code only
        assert decline.data == ev.MatchDeclinedData(
            **ids_of(second), by="company", reason_code="other"
        )
        assert (await handlers.student_match("s-1", uow)).match_id == first.data.match_id
        with pytest.raises(NotFound, match="no current match"):
            await handlers.student_match("s-2", uow)

    # ------------------------------------------------------------------------------- rounds

    async def test_a_round_request_counts_the_inputs_published_before_it(self, uow: Any) -> None:
        for pid in ("p-1", "p-2"):
            await handlers.post_placement(post(pid, "R1"), uow)
        await handlers.post_placement(post("p-9", "R2"), uow)
        await handlers.patch_placement(PatchPlacement("p-1", {"capacity": 3}), uow)
        await handlers.register_student(register("s-1", region="R1"), uow)
        m = proposal("s-1", "p-1", region="R1")
        await handlers.apply_match_proposed(m, uow)  # consumed, not published: not counted
        await handlers.answer_match(AnswerMatch(m.data.match_id, "student", "accept"), uow)
        first = await handlers.request_round(RequestRound("R1", "stable", "coordinator:kim"), uow)
        second = await handlers.request_round(RequestRound("R1"), uow)
        requests = [
            e for e in await self.published(uow) if isinstance(e, ev.MatchingRoundRequested)
        ]
        assert [r.data.round_id for r in requests] == [first, second]
        assert requests[0].data == ev.MatchingRoundRequestedData(
            round_id=first,
            region="R1",
            policy="stable",
            requested_by="coordinator:kim",
            inputs_published=5,  # two posted, one updated, one registered, one accepted
        )
        assert requests[1].data.inputs_published == 5  # round requests are not inputs
        found = await handlers.get_round(first, uow)
        assert (found.status, found.policy, found.region) == ("requested", "stable", "R1")
        with pytest.raises(NotFound):
            await handlers.get_round(uuid.uuid4(), uow)

    # ---------------------------------------------------------------------- consumed events

    async def test_consumed_events_are_applied_once(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        m = proposal("s-1", "p-1")
        assert await handlers.apply_match_proposed(m, uow)
        assert not await handlers.apply_match_proposed(m, uow)
        confirmed = confirmation(m)
        assert await handlers.apply_match_confirmed(confirmed, uow)
        assert not await handlers.apply_match_confirmed(confirmed, uow)
        [match] = await handlers.placement_matches("p-1", uow)
        assert (match.match_id, match.state, match.round_id) == (
            m.data.match_id,
            "confirmed",
            m.data.round_id,
        )

        completed = next(e for e in every_event() if isinstance(e, ev.MatchingRoundCompleted))
        assert await handlers.apply_round_completed(completed, uow)
        assert not await handlers.apply_round_completed(completed, uow)
        found = await handlers.get_round(completed.data.round_id, uow)
        assert (found.status, found.figures, found.unplaced_by_reason) == (
            "completed",
            completed.data.figures,
            {"choices_full": 1},
        )
        assert (found.proposed, found.cancelled) == (9, 0)
        assert await self.published_types(uow) == ["PlacementPosted"]  # consuming publishes nothing

    async def test_a_round_completed_without_running_shows_as_failed_with_its_reason(
        self, uow: Any
    ) -> None:
        round_id = await handlers.request_round(RequestRound("R1"), uow)
        completed = next(e for e in every_event() if isinstance(e, ev.MatchingRoundCompleted))
        why = "3 of 5 input events of R1 from placements arrived within 300 s"
        not_run = ev.MatchingRoundCompleted(
            producer="matching",
            data=completed.data.model_copy(
                update={
                    "round_id": round_id,
                    "region": "R1",
                    "status": "inputs_missing",
                    "detail": why,
                    "proposed": 0,
                    "unplaced_by_reason": {},
                }
            ),
        )
        assert await handlers.apply_round_completed(not_run, uow)
        found = await handlers.get_round(round_id, uow)
        assert (found.status, found.failure, found.completed_at is not None) == (
            "failed",
            why,
            True,
        )
        assert RoundOut.of(found).status == "failed"
        assert RoundOut.of(found).failure == why

    async def test_a_second_standing_match_for_a_student_is_refused(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.post_placement(post("p-2"), uow)
        first, forged = proposal("s-1", "p-1"), proposal("s-1", "p-2")
        assert await handlers.apply_match_proposed(first, uow)
        with pytest.raises(Conflict, match="s-1 already has a standing match"):
            await handlers.apply_match_proposed(forged, uow)
        # refused whole: not even claimed, so its retries meet the same refusal
        with pytest.raises(Conflict):
            await handlers.apply_match_proposed(forged, uow)
        assert [m.match_id for m in await handlers.placement_matches("p-2", uow)] == []
        await handlers.answer_match(AnswerMatch(first.data.match_id, "student", "accept"), uow)
        with pytest.raises(Conflict):  # accepted still stands
            await handlers.apply_match_proposed(forged, uow)
        cancel = ev.MatchCancelled(
            producer="matching",
            data=ev.MatchCancelledData(**ids_of(first), reason="superseded"),
        )
        assert await handlers.apply_match_cancelled(cancel, uow)
        assert await handlers.apply_match_proposed(forged, uow)  # the first is closed now
        [now] = await handlers.placement_matches("p-2", uow)
        assert (now.student_id, now.state) == ("s-1", "proposed")

    async def test_match_events_follow_the_state_machine(self, uow: Any) -> None:
        await handlers.post_placement(post("p-1"), uow)
        declined, cancelled = proposal("s-1", "p-1"), proposal("s-2", "p-1")
        for m in (declined, cancelled):
            await handlers.apply_match_proposed(m, uow)
        await handlers.answer_match(
            AnswerMatch(declined.data.match_id, "company", "decline", "no_capacity"),
            uow,
        )
        assert await handlers.apply_match_confirmed(confirmation(declined), uow)  # too late
        cancel = ev.MatchCancelled(
            producer="matching",
            data=ev.MatchCancelledData(**ids_of(cancelled), reason="superseded"),
        )
        assert await handlers.apply_match_cancelled(cancel, uow)
        with pytest.raises(Conflict):  # a cancelled match is never reopened
            await handlers.answer_match(
                AnswerMatch(cancelled.data.match_id, "student", "accept"), uow
            )
        states = {
            m.student_id: (m.state, m.reason) for m in await handlers.placement_matches("p-1", uow)
        }
        assert states == {"s-1": ("declined", "no_capacity"), "s-2": ("cancelled", "superseded")}
        unknown = confirmation(proposal("s-3", "p-1"))
        assert await handlers.apply_match_confirmed(unknown, uow)  # ignored, but claimed
        assert not await handlers.apply_match_confirmed(unknown, uow)
        assert len(await handlers.placement_matches("p-1", uow)) == 2

    # ----------------------------------------------------------------------------- internal

    async def test_notice_context_resolves_the_channel_and_shares_contact_once_accepted(
        self, uow: Any
    ) -> None:
        hook = Channel("webhook", "https://hr.example/hook")
        await handlers.post_placement(post("p-own", channel=hook), uow)
        await handlers.post_placement(post("p-co", company_id="c-2"), uow)
        await handlers.post_placement(post("p-mail", company_id="c-3"), uow)
        await handlers.set_company_channel(
            SetCompanyChannel("c-2", Channel("webhook", "https://c2.example/h")), uow
        )
        await handlers.register_student(register("s-1"), uow)

        async def channel(pid: str) -> tuple[str, str | None]:
            c = (await handlers.notice_context(pid, "s-1", uow)).channel
            return (c.kind, c.webhook_url)

        assert await channel("p-own") == ("webhook", "https://hr.example/hook")
        assert await channel("p-co") == ("webhook", "https://c2.example/h")
        assert await channel("p-mail") == ("email", None)

        m = proposal("s-1", "p-own")
        await handlers.apply_match_proposed(m, uow)
        context = await handlers.notice_context("p-own", "s-1", uow)
        assert context.student is not None
        assert (context.student.contact_shared, context.student.email) == (False, None)
        assert context.supervisor == placement("p-own").supervisor
        assert context.placement.placement_id == "p-own"
        await handlers.answer_match(AnswerMatch(m.data.match_id, "company", "accept"), uow)
        student = (await handlers.notice_context("p-own", "s-1", uow)).student
        assert student is not None
        assert student.contact_shared is False  # the company's accept shares nothing
        await handlers.answer_match(AnswerMatch(m.data.match_id, "student", "accept"), uow)
        student = (await handlers.notice_context("p-own", "s-1", uow)).student
        assert student is not None
        assert (student.contact_shared, student.name, student.email, student.phone) == (
            True,
            CONTACT.name,
            CONTACT.email,
            CONTACT.phone,
        )
        assert (await handlers.notice_context("p-own", "s-unknown", uow)).student is None
        with pytest.raises(NotFound):
            await handlers.notice_context("nope", "s-1", uow)

    # ----------------------------------------------------------------------- account links

    async def test_a_student_account_is_linked_by_its_verified_school_email_once(
        self, uow: Any
    ) -> None:
        mail = "S-1@School.example.se"
        own = RegisterStudent(register("s-1").profile, Contact("Sara", mail.lower(), None))
        await handlers.register_student(own, uow)
        await handlers.register_student(register("s-2"), uow)
        await handlers.register_student(register("s-3"), uow)  # s-2 and s-3 share CONTACT's

        def link(subject: str, email: str | None) -> Any:
            return handlers.link_account(LinkAccount(subject, email, student=True), uow)

        assert await link("u-1", None) == AccountLinks()  # no verified e-mail: nothing
        assert await link("u-1", mail) == AccountLinks(student_id="s-1")  # any case
        assert await link("u-1", None) == AccountLinks(student_id="s-1")  # by the link now
        assert await link("u-2", mail) == AccountLinks()  # s-1 has an account already
        assert await link("u-3", CONTACT.email) == AccountLinks()  # two students: ambiguous
        await handlers.withdraw_student(WithdrawStudent("s-1"), uow)
        assert await link("u-1", None) == AccountLinks()  # erasure unlinks
        assert await link("u-1", mail) == AccountLinks()  # and the e-mail is gone

    async def test_company_staff_are_linked_by_an_invitation(self, uow: Any) -> None:
        await handlers.invite_staff(InviteStaff("c-1", "HR@c1.example.se"), uow)
        await handlers.invite_staff(InviteStaff("c-1", "hr@c1.example.se"), uow)  # no change

        def link(subject: str, email: str | None) -> Any:
            return handlers.link_account(LinkAccount(subject, email, company=True), uow)

        assert await link("u-1", "other@c1.example.se") == AccountLinks()
        assert await link("u-1", "hr@C1.example.se") == AccountLinks(company_id="c-1")
        assert await link("u-1", None) == AccountLinks(company_id="c-1")
        assert await link("u-2", "hr@c1.example.se") == AccountLinks()  # used up
        assert await link("u-2", None) == AccountLinks()

    # ------------------------------------------------------------------------- unit of work

    async def test_an_outer_block_holds_the_handler_and_rolls_it_back(self, uow: Any) -> None:
        """A handler's block joins an open one (the Idempotency-Key's): it commits with it, or
        is rolled back with it, outbox included."""

        async def post_then_fail() -> None:
            async with uow:
                await handlers.post_placement(post("p-1"), uow)
                raise RuntimeError("after the handler")

        with pytest.raises(RuntimeError, match="after the handler"):
            await post_then_fail()
        with pytest.raises(NotFound):
            await handlers.get_placement("p-1", uow)
        assert await self.published(uow) == []
        async with uow:
            await handlers.post_placement(post("p-1"), uow)
            await handlers.post_placement(post("p-2"), uow)
        assert await self.published_types(uow) == ["PlacementPosted"] * 2

    # --------------------------------------------------------------------- actor and audit

    async def test_published_events_carry_the_actor_and_are_audited(self, uow: Any) -> None:
        """Every event is stamped with the unit of work's actor and recorded in the audit
        trail, in the transaction that publishes it; newest first, paged, per region."""
        coordinator = ev.Actor(subject="sub-coord", role="coordinator", client="apl-web")
        uow.actor = coordinator
        await handlers.post_placement(post("p-1"), uow)
        await handlers.post_placement(post("p-2", region="SE-O"), uow)
        await handlers.withdraw_placement(WithdrawPlacement("p-1", "filled"), uow)
        uow.actor = None
        await handlers.register_student(register("s-1"), uow)

        published = await self.published(uow)
        assert [e.actor for e in published] == [coordinator, coordinator, coordinator, None]
        async with uow:
            trail = await uow.audit.of_region(REGION, limit=10, offset=0)
            page = await uow.audit.of_region(REGION, limit=1, offset=1)
            other = await uow.audit.of_region("SE-O", limit=10, offset=0)
        ours = [e for e in published if e.region == REGION]
        assert [r.event_id for r in trail] == [e.event_id for e in reversed(ours)]
        assert [r.event_type for r in trail] == [
            "StudentRegistered",
            "PlacementWithdrawn",
            "PlacementPosted",
        ]
        assert [r.actor for r in trail] == [None, coordinator, coordinator]
        assert {r.region for r in trail} == {REGION}
        assert [r.event_id for r in page] == [trail[1].event_id]
        assert [(r.event_type, r.actor) for r in other] == [("PlacementPosted", coordinator)]
        assert all(r.at.tzinfo is not None for r in trail)
        records = handlers.audit_of_region(AuditQuery(REGION, limit=2), uow)
        assert [r.event_id for r in await records] == [r.event_id for r in trail[:2]]

    async def test_a_rolled_back_change_leaves_no_audit_record(self, uow: Any) -> None:
        uow.actor = ev.Actor(subject="sub-company", role="company", client="apl-web")

        async def post_then_fail() -> None:
            async with uow:
                await handlers.post_placement(post("p-1"), uow)
                raise RuntimeError("after the handler")

        with pytest.raises(RuntimeError):
            await post_then_fail()
        async with uow:
            assert await uow.audit.of_region(REGION, limit=10, offset=0) == []

    # ------------------------------------------------------------------------- action links

    async def proposed_match(self, uow: Any, sid: str = "s-1") -> ev.MatchProposed:
        await handlers.post_placement(post("p-1"), uow)
        await handlers.register_student(register(sid), uow)
        match = proposal(sid, "p-1")
        await handlers.apply_match_proposed(match, uow)
        return match

    async def test_a_confirm_link_accepts_for_the_company_once(self, uow: Any) -> None:
        match = await self.proposed_match(uow)
        link = new_link(uuid.uuid4(), match.data.match_id, "confirm", now=datetime.now(UTC))
        page = await handlers.action_link_page(link, uow)
        assert (page.kind, page.status) == ("ask", 200)
        assert page.summary is not None
        assert (page.summary.programme, page.summary.student_name) == ("EE", None)
        assert page.summary.language == "sv"

        uow.actor = links.actor_of(link)
        done = await handlers.use_action_link(link, uow)
        assert (done.kind, done.summary and done.summary.state) == ("done", "accepted")
        [accepted] = [e for e in await self.published(uow) if isinstance(e, ev.MatchAccepted)]
        assert accepted.data == ev.MatchAcceptedData(**ids_of(match), by="company")
        assert accepted.actor == ev.Actor(
            subject=f"action-link:{link.link_id}", role="supervisor", client=None
        )
        async with uow:
            [record] = await uow.audit.of_region(REGION, limit=1, offset=0)
        assert (record.event_type, record.actor) == ("MatchAccepted", accepted.actor)

        again = await handlers.use_action_link(link, uow)  # a reused link
        assert (again.kind, again.status) == ("used", 410)
        assert (await handlers.action_link_page(link, uow)).kind == "used"
        assert len([e for e in await self.published(uow) if e.type == "MatchAccepted"]) == 1

    async def test_a_decline_link_declines_with_the_supervisors_reason(self, uow: Any) -> None:
        match = await self.proposed_match(uow)
        link = new_link(uuid.uuid4(), match.data.match_id, "decline", now=datetime.now(UTC))
        uow.actor = links.actor_of(link)
        assert (await handlers.use_action_link(link, uow)).kind == "done"
        [declined] = [e for e in await self.published(uow) if isinstance(e, ev.MatchDeclined)]
        assert declined.data == ev.MatchDeclinedData(
            **ids_of(match), by="company", reason_code="supervisor_declined"
        )
        assert declined.actor is not None
        assert declined.actor.role == "supervisor"

    async def test_a_link_to_a_closed_match_changes_nothing_and_stays_unused(
        self, uow: Any
    ) -> None:
        match = await self.proposed_match(uow)
        await handlers.answer_match(AnswerMatch(match.data.match_id, "student", "accept"), uow)
        await handlers.apply_match_confirmed(confirmation(match), uow)
        before = await self.published(uow)
        link = new_link(uuid.uuid4(), match.data.match_id, "decline", now=datetime.now(UTC))
        page = await handlers.use_action_link(link, uow)
        assert (page.kind, page.status) == ("closed", 409)
        assert page.summary is not None
        assert page.summary.student_name == CONTACT.name  # confirmed: the name is shown
        assert await self.published(uow) == before
        async with uow:
            assert not await uow.action_links.used(link.link_id)
        unknown = new_link(uuid.uuid4(), uuid.uuid4(), "confirm", now=datetime.now(UTC))
        assert (await handlers.use_action_link(unknown, uow)).kind == "unknown"
        assert (await handlers.action_link_page(unknown, uow)).status == 404


class TestInMemory(InMemoryTier, PlacementHandlerContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, PlacementHandlerContract):
    async def test_used_link_ids_are_forgotten_once_their_links_have_expired(
        self, uow: Any
    ) -> None:
        postgres: PostgresPlacementsUnitOfWork = uow
        old, recent = uuid.uuid4(), uuid.uuid4()
        async with postgres:
            for link_id, days in ((old, 16), (recent, 10)):
                await postgres.conn.execute(
                    "INSERT INTO action_links_used (link_id, match_id, action, used_at) "
                    "VALUES ($1, $2, 'confirm', now() - make_interval(days => $3))",
                    link_id,
                    uuid.uuid4(),
                    days,
                )
        link = new_link(uuid.uuid4(), uuid.uuid4(), "confirm", now=datetime.now(UTC))
        async with postgres:
            assert await postgres.action_links.use(link)
        async with postgres:
            assert not await postgres.action_links.used(old)
            assert await postgres.action_links.used(recent)
            assert await postgres.action_links.used(link.link_id)
