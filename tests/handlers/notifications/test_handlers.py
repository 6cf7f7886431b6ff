"""The notifications handlers over a unit of work: the same tests against the in-memory fake and
(marked infra) against real PostgreSQL. A proposal or confirmation is two notices (the
supervisor's and the student's); the supervisors' tests look at the supervisor's, the students'
tests at the students'.

The peers (mail sender, notice-context source, webhook sender) are the in-process fakes. Retries
are made due by moving the delivery log's clock forward (`advance`), never by waiting."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from bench.notification_peers import context
from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.store import Delivery
from services.notifications.adapters.uow import (
    NotificationsUnitOfWork,
    PostgresNotificationsUnitOfWork,
)
from services.notifications.bootstrap import MIGRATIONS
from services.notifications.domain.actions import LinkSigner
from services.notifications.domain.notices import (
    message_id,
    notification_id,
    recipient_of,
    student_recipient,
)
from services.notifications.handlers import (
    LEASE_SECONDS,
    Notifier,
    RetryPolicy,
    deliver_due,
    record_notices,
)
from shared.contracts.events import (
    Event,
    MatchCancelled,
    MatchConfirmed,
    MatchProposed,
    NotificationDelivered,
    NotificationFailed,
    parse_event,
)
from shared.contracts.links import ActionLink
from shared.contracts.links import verify as verify_link
from shared.contracts.topics import NOTIFICATIONS
from shared.db import create_pool, migrate
from tests.support.fakes.notifications import (
    FakeContextSource,
    FakeHookSender,
    FakeMailSender,
    InMemoryNotificationsUnitOfWork,
    cancelled,
    confirmed,
    outcome,
    proposed,
    round_outcomes,
    student_context,
    supplementary_opened,
)

MatchEvent = MatchProposed | MatchConfirmed | MatchCancelled
RETRY = RetryPolicy(max_attempts=3, base_seconds=60.0, max_seconds=600.0, upstream_seconds=30.0)
"""Minutes, not milliseconds: a retry is due only once the test moved the clock past it."""
LINK_SECRET = b"handler-test-action-link-secret"
NOW = datetime.now(UTC).replace(microsecond=0)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


class NotificationHandlerContract:
    """The handler tests; a subclass provides the unit of work and its clock."""

    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def advance(self, uow: Any, seconds: float) -> None:
        """Move the delivery log `seconds` into the future."""
        raise NotImplementedError

    async def published(self, uow: Any) -> list[Event]:
        """The committed outbox, in order."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ helpers

    @pytest.fixture
    def mail(self) -> FakeMailSender:
        return FakeMailSender()

    @pytest.fixture
    def contexts(self) -> FakeContextSource:
        return FakeContextSource()

    @pytest.fixture
    def hooks(self) -> FakeHookSender:
        return FakeHookSender()

    @pytest.fixture
    def notifier(
        self, mail: FakeMailSender, contexts: FakeContextSource, hooks: FakeHookSender
    ) -> Notifier:
        return Notifier(contexts, mail, hooks, Renderer(), "APL Match <noreply@apl.example>")

    @staticmethod
    def supervised(contexts: FakeContextSource, **details: Any) -> tuple[str, str, str]:
        """A fresh placement and student with a notice context (and the student with a
        student notice context); their supervisor's address."""
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        address = f"sup-{pid}@company.example"
        contexts.contexts[(pid, sid)] = context(pid, sid, email=address, **details)
        contexts.students[sid] = student_context(sid, language=details.get("language", "sv"))
        return pid, sid, address

    @staticmethod
    async def rows(uow: NotificationsUnitOfWork, source: uuid.UUID) -> list[Delivery]:
        async with uow:
            return await uow.notices.of_source(source)

    async def supervisor_rows(
        self, uow: NotificationsUnitOfWork, source: uuid.UUID
    ) -> list[Delivery]:
        return [r for r in await self.rows(uow, source) if r.recipient.startswith("placement:")]

    async def student_rows(self, uow: NotificationsUnitOfWork, source: uuid.UUID) -> list[Delivery]:
        return [r for r in await self.rows(uow, source) if r.recipient.startswith("student:")]

    async def outcomes_for(self, uow: Any, recipient: str = "supervisor") -> list[Event]:
        """The committed outcome events of one kind of recipient, in order."""
        return [e for e in await self.published(uow) if e.data.recipient == recipient]

    @staticmethod
    async def row(uow: NotificationsUnitOfWork, notice_id: uuid.UUID) -> Delivery:
        async with uow:
            found = await uow.notices.get(notice_id)
        assert found is not None
        return found

    @staticmethod
    async def deliver(
        uow: NotificationsUnitOfWork, notifier: Notifier, batch_size: int = 10
    ) -> int:
        return await deliver_due(uow, notifier, retry=RETRY, batch_size=batch_size)

    # -------------------------------------------------------------------------------- tests

    async def test_each_match_event_records_its_notice_once(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        events: list[MatchEvent] = [proposed(pid, sid), confirmed(pid, sid), cancelled(pid, sid)]
        for event, count in zip(events, [2, 2, 1], strict=True):
            assert await record_notices(event, uow) == count  # supervisor (and student)
            assert await record_notices(event, uow) == 0  # a redelivery adds nothing
        kinds = [("proposed", "student_proposed"), ("confirmed", "student_confirmed")]
        for event, (kind, student_kind) in zip(events, [*kinds, ("cancelled", None)], strict=True):
            [row] = await self.supervisor_rows(uow, event.event_id)
            assert row.notification_id == notification_id(event.event_id, recipient_of(pid))
            assert (row.kind, row.status, row.attempts) == (kind, "pending", 0)
            assert (row.placement_id, row.student_id) == (pid, sid)
            assert row.match_id == event.data.match_id
            students = await self.student_rows(uow, event.event_id)
            assert [(r.kind, r.recipient) for r in students] == (
                [(student_kind, f"student:{sid}")] if student_kind else []
            )
            for row in students:
                assert row.notification_id == notification_id(
                    event.event_id, student_recipient(sid)
                )
                assert (row.placement_id, row.match_id) == (pid, event.data.match_id)
        [cancel] = await self.rows(uow, events[2].event_id)
        assert cancel.detail == "placement_withdrawn"
        assert await self.published(uow) == []

    async def test_a_due_notice_is_delivered_and_reported(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts, language="en")
        event = proposed(pid, sid)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2  # the supervisor's and the student's
        expected = notification_id(event.event_id, recipient_of(pid))
        [message] = mail.to(address)
        assert message["Message-ID"] == message_id(expected)
        assert message["Subject"].startswith("A student is proposed for your placement")
        [row] = await self.supervisor_rows(uow, event.event_id)
        assert (row.status, row.attempts, row.channel) == ("delivered", 1, "email")
        [told] = await self.outcomes_for(uow)
        assert isinstance(told, NotificationDelivered)
        assert told.data.notification_id == expected
        assert told.data.source_event_id == event.event_id
        assert told.data.match_id == event.data.match_id
        assert (told.data.channel, told.data.attempts) == ("email", 1)
        assert len(await self.outcomes_for(uow, "student")) == 1
        # delivered means done: nothing is due any more, and a redelivery adds nothing
        assert await self.deliver(uow, notifier) == 0
        assert await record_notices(event, uow) == 0
        assert await self.deliver(uow, notifier) == 0
        assert len(mail.to(address)) == 1
        assert len(mail.to(f"{sid}@student.example")) == 1

    async def test_a_failing_send_retries_with_backoff_then_fails(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        mail.always[address] = "451 4.3.0 mailbox busy"
        event = confirmed(pid, sid)
        await record_notices(event, uow)
        notice = notification_id(event.event_id, recipient_of(pid))
        # backoff: 60 s after the first failure, 120 s after the second (RETRY)
        for attempt, delay in [(1, 60.0), (2, 120.0)]:
            # the first batch also tells the student, at once
            assert await self.deliver(uow, notifier) == (2 if attempt == 1 else 1)
            row = await self.row(uow, notice)
            assert (row.status, row.attempts) == ("pending", attempt)
            assert row.last_error is not None
            assert "451" in row.last_error
            assert await self.deliver(uow, notifier) == 0  # not due yet
            await self.advance(uow, delay - 10)
            assert await self.deliver(uow, notifier) == 0  # still not due
            await self.advance(uow, 20)
        assert await self.outcomes_for(uow) == []  # retries report nothing
        assert await self.deliver(uow, notifier) == 1  # the third and last attempt
        row = await self.row(uow, notice)
        assert (row.status, row.attempts) == ("failed", 3)
        assert mail.refused[address] == 3
        [failed] = await self.outcomes_for(uow)
        assert isinstance(failed, NotificationFailed)
        assert failed.data.notification_id == notice
        assert failed.data.attempts == 3
        assert "451" in failed.data.error
        assert address not in failed.data.error
        await self.advance(uow, 3600)
        assert await self.deliver(uow, notifier) == 0  # failed is final

    async def test_a_transient_failure_then_success_is_delivered(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        mail.script[address] = ["451 4.3.0 later"]
        event = proposed(pid, sid)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 1
        [row] = await self.supervisor_rows(uow, event.event_id)
        assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
        [told] = await self.outcomes_for(uow)
        assert isinstance(told, NotificationDelivered)
        assert told.data.attempts == 2
        assert len(mail.to(address)) == 1

    async def test_permanent_failures_fail_at_once(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        mail.always[address] = "550 5.1.1 no such user"
        refused = confirmed(pid, sid)
        unknown = cancelled(f"p-{_uid()}", sid)  # the placements service has no context: 404
        await record_notices(refused, uow)
        await record_notices(unknown, uow)
        assert await self.deliver(uow, notifier) == 3  # and the confirmation's student notice
        outcomes = {e.data.source_event_id: e for e in await self.outcomes_for(uow)}
        for event, error in [(refused, "550"), (unknown, "no notice context")]:
            failed = outcomes[event.event_id]
            assert isinstance(failed, NotificationFailed)
            assert failed.data.attempts == 1
            assert error in failed.data.error
            [row] = await self.supervisor_rows(uow, event.event_id)
            assert (row.status, row.attempts) == ("failed", 1)

    async def test_a_placements_outage_delays_but_never_fails_a_notice(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        contexts.unavailable[(pid, sid)] = RETRY.max_attempts + 1
        event = proposed(pid, sid)
        await record_notices(event, uow)
        for attempt in range(RETRY.max_attempts + 1):
            # the student's context answers: the first batch tells the student at once
            assert await self.deliver(uow, notifier) == (2 if attempt == 0 else 1)
            [row] = await self.supervisor_rows(uow, event.event_id)
            assert (row.status, row.attempts) == ("pending", 0)  # no attempt used up
            assert await self.deliver(uow, notifier) == 0  # waits upstream_seconds
            await self.advance(uow, RETRY.upstream_seconds + 1)
        assert await self.deliver(uow, notifier) == 1
        [told] = await self.outcomes_for(uow)
        assert isinstance(told, NotificationDelivered)
        assert told.data.attempts == 1
        assert len(mail.to(address)) == 1

    async def test_a_webhook_is_sent_with_the_notice_id_as_idempotency_key(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        hooks: FakeHookSender,
        mail: FakeMailSender,
    ) -> None:
        url = f"https://hooks.example/{_uid()}"
        pid, sid, address = self.supervised(contexts, shared=True, webhook_url=url)
        hooks.unavailable[url] = 1
        event = confirmed(pid, sid)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2  # the student is e-mailed
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 1
        expected = str(notification_id(event.event_id, recipient_of(pid)))
        [payload] = hooks.received[url]
        assert hooks.keys[url] == [expected]
        assert payload["notification_id"] == expected
        assert payload["kind"] == "confirmed"
        assert payload["student"]["name"] == "Kim Lindqvist"
        [told] = await self.outcomes_for(uow)
        assert isinstance(told, NotificationDelivered)
        assert (told.data.channel, told.data.attempts) == ("webhook", 2)
        assert not mail.to(address)
        [student] = await self.outcomes_for(uow, "student")
        assert student.data.channel == "email"  # students have no webhook
        assert len(mail.to(f"{sid}@student.example")) == 1

    async def test_proposals_of_a_round_go_out_as_one_digest(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, round_id = f"p-{_uid()}", uuid.uuid4()
        address = f"digest-{pid}@company.example"
        students = [f"s-{_uid()}" for _ in range(3)]
        for sid in [*students, "late", "other"]:
            contexts.contexts[(pid, sid)] = context(pid, sid, email=address, language="fi")
            contexts.students[sid] = student_context(sid, language="fi")
        events = [proposed(pid, sid, round_id) for sid in students]
        for event in events:
            assert await record_notices(event, uow, digest_seconds=60) == 2
        digest_id = notification_id(round_id, recipient_of(pid))
        for event in events:
            [row] = await self.supervisor_rows(uow, event.event_id)
            assert (row.status, row.digest_id) == ("grouped", digest_id)
            [row] = await self.student_rows(uow, event.event_id)
            assert (row.status, row.digest_id) == ("pending", None)  # never digested
        digest = await self.row(uow, digest_id)
        assert (digest.kind, digest.status, digest.round_id) == ("digest", "pending", round_id)
        # a confirmation of the same placement is never digested; a proposal of another round
        # joins another digest
        confirmation = confirmed(pid, students[0])
        other_round = proposed(pid, "other")
        await record_notices(confirmation, uow, digest_seconds=60)
        await record_notices(other_round, uow, digest_seconds=60)
        [row] = await self.supervisor_rows(uow, confirmation.event_id)
        assert (row.status, row.digest_id) == ("pending", None)
        [row] = await self.supervisor_rows(uow, other_round.event_id)
        assert row.digest_id == notification_id(other_round.data.round_id, recipient_of(pid))

        # the confirmation and the five students' notices; the digests wait
        assert await self.deliver(uow, notifier) == 6
        [told] = mail.to(address)
        assert told["Subject"].startswith("Työelämäjakso on vahvistettu")
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 2  # both digests
        mails = {m["Message-ID"]: m for m in mail.to(address)}
        message = mails[message_id(digest_id)]
        assert message["Subject"].startswith("3 opiskelijaa ehdotetaan työpaikallenne")
        body = message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        assert body.get_content().count("Koulutusala: EE") == 3
        outcomes = {e.data.source_event_id: e for e in await self.outcomes_for(uow)}
        for event in events:  # each member event gets its own outcome under its own id
            reported = outcomes[event.event_id]
            assert isinstance(reported, NotificationDelivered)
            assert reported.data.notification_id == notification_id(
                event.event_id, recipient_of(pid)
            )
            [row] = await self.supervisor_rows(uow, event.event_id)
            assert row.status == "delivered"
        assert (await self.row(uow, digest_id)).status == "delivered"

        # a late proposal of the round, after its digest went out, is told on its own
        late = proposed(pid, "late", round_id)
        assert await record_notices(late, uow, digest_seconds=60) == 2
        [row] = await self.supervisor_rows(uow, late.event_id)
        assert (row.status, row.digest_id) == ("pending", None)
        assert await self.deliver(uow, notifier) == 2
        last = mail.to(address)[-1]
        assert last["Message-ID"] == message_id(notification_id(late.event_id, recipient_of(pid)))
        assert last["Subject"].startswith("Opiskelijaa ehdotetaan työpaikallenne")

    async def test_without_a_digest_window_proposals_go_out_one_by_one(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, round_id = f"p-{_uid()}", uuid.uuid4()
        address = f"single-{pid}@company.example"
        events = []
        for sid in ("s-a", "s-b"):
            contexts.contexts[(pid, sid)] = context(pid, sid, email=address)
            contexts.students[sid] = student_context(sid)
            events.append(proposed(pid, sid, round_id))
            await record_notices(events[-1], uow)
        assert await self.deliver(uow, notifier) == 4  # the supervisor twice, each student once
        assert len(mail.to(address)) == 2
        assert await self.row_count_of_round(uow, round_id) == 0  # no digest row

    async def test_a_batch_is_at_most_batch_size_notices(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
    ) -> None:
        for _ in range(2):
            pid, sid, _ = self.supervised(contexts)
            await record_notices(confirmed(pid, sid), uow)  # two notices each
        pid, sid, _ = self.supervised(contexts)
        await record_notices(cancelled(pid, sid), uow)  # one
        assert await self.deliver(uow, notifier, batch_size=2) == 2
        assert await self.deliver(uow, notifier, batch_size=2) == 2
        assert await self.deliver(uow, notifier, batch_size=2) == 1
        assert await self.deliver(uow, notifier, batch_size=2) == 0
        assert len(await self.published(uow)) == 5

    async def test_a_crash_before_commit_repeats_the_send_with_the_same_message_id(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        event = proposed(pid, sid)
        await record_notices(event, uow)
        with pytest.raises(Crashed):
            await self.deliver(CrashOnPublish(uow), notifier)
        for row in await self.rows(uow, event.event_id):
            assert (row.status, row.attempts) == ("pending", 0)  # nothing recorded: pending
        assert await self.published(uow) == []
        assert await self.deliver(uow, notifier) == 0  # still claimed by the "crashed" worker
        await self.advance(uow, LEASE_SECONDS + 1)  # its claim's lease ends: due again
        assert await self.deliver(uow, notifier) == 2
        for to in (address, f"{sid}@student.example"):
            first, again = mail.to(to)
            assert first["Message-ID"] == again["Message-ID"]  # the receiver can drop the repeat
        [told] = await self.outcomes_for(uow)
        assert isinstance(told, NotificationDelivered)
        assert told.data.attempts == 1

    async def row_count_of_round(self, uow: NotificationsUnitOfWork, round_id: uuid.UUID) -> int:
        return len(await self.rows(uow, round_id))

    # ------------------------------------------------------------------------- action links

    @staticmethod
    def linked(notifier: Notifier) -> Notifier:
        """The notifier with action links (as `bootstrap.build` wires it), at a fixed time."""
        return dataclasses.replace(
            notifier, links=LinkSigner(LINK_SECRET, "https://apl.example.se"), clock=lambda: NOW
        )

    @staticmethod
    def links_in(message: EmailMessage) -> dict[str, ActionLink]:
        """The action links of a message's plain-text part, verified, by URL."""
        body = message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        found = re.findall(
            r"https://apl\.example\.se/v1/actions/([A-Za-z0-9_-]+)", body.get_content()
        )
        return {token: verify_link(LINK_SECRET, token, now=NOW) for token in found}

    async def test_a_proposal_carries_signed_links_for_its_match(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts, language="en")
        event = proposed(pid, sid)
        await record_notices(event, uow)
        await record_notices(confirmed(pid, sid), uow)
        assert await self.deliver(uow, self.linked(notifier)) == 4
        proposal, confirmation = sorted(
            mail.to(address), key=lambda m: not m["Subject"].startswith("A student is proposed")
        )
        found = list(self.links_in(proposal).values())
        assert sorted(link.action for link in found) == ["confirm", "decline"]
        assert {link.match_id for link in found} == {event.data.match_id}
        assert {link.expires_at for link in found} == {NOW + timedelta(days=14)}
        html = proposal.get_body(preferencelist=("html",))
        assert isinstance(html, EmailMessage)
        for token in self.links_in(proposal):
            assert f'href="https://apl.example.se/v1/actions/{token}"' in html.get_content()
        assert self.links_in(confirmation) == {}  # a confirmed match asks nothing

    async def test_a_digest_carries_a_pair_of_links_per_proposed_student(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, round_id = f"p-{_uid()}", uuid.uuid4()
        address = f"digest-{pid}@company.example"
        events = []
        for sid in (f"s-{_uid()}", f"s-{_uid()}"):
            contexts.contexts[(pid, sid)] = context(pid, sid, email=address, language="sv")
            contexts.students[sid] = student_context(sid)
            events.append(proposed(pid, sid, round_id))
            await record_notices(events[-1], uow, digest_seconds=60)
        await self.advance(uow, 61)
        assert await self.deliver(uow, self.linked(notifier)) == 3  # the digest, two students
        for sid in contexts.students:  # the students' notices carry no supervisor's links
            [told] = mail.to(f"{sid}@student.example")
            assert self.links_in(told) == {}
        [message] = mail.to(address)
        found = list(self.links_in(message).values())
        assert sorted((link.match_id, link.action) for link in found) == sorted(
            (e.data.match_id, action) for e in events for action in ("confirm", "decline")
        )

    # ---------------------------------------------------------------------------- students

    @staticmethod
    def text_of(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        return str(body.get_content())

    async def test_a_proposal_tells_the_student_in_their_language(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, _ = self.supervised(contexts, language="fi")
        contexts.students[sid] = student_context(sid, language="fi", fitting=3)
        event = proposed(pid, sid, rank=2)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2
        expected = notification_id(event.event_id, student_recipient(sid))
        [message] = mail.to(f"{sid}@student.example")
        assert message["Message-ID"] == message_id(expected)
        assert message["Content-Language"] == "fi"
        assert message["Subject"] == "Sinulle ehdotetaan työelämäjakson paikkaa: Elektrikerlärling"
        text = self.text_of(message)
        assert "Hei Kim Lindqvist," in text
        assert "– toivelistasi 2. vaihtoehto." in text
        assert "https://apl.example.se/student" in text
        assert "Vakans" not in text  # a proposal is about its placement, not the vacancies
        assert contexts.student_calls == [(sid, pid)]
        [told] = await self.outcomes_for(uow, "student")
        assert isinstance(told, NotificationDelivered)
        assert told.data.notification_id == expected
        assert (told.data.match_id, told.data.placement_id) == (event.data.match_id, pid)
        assert (told.data.channel, told.data.attempts) == ("email", 1)

    async def test_a_confirmation_tells_the_student_when_and_where(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, _ = self.supervised(contexts, language="en")
        event = confirmed(pid, sid)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2
        [message] = mail.to(f"{sid}@student.example")
        assert message["Subject"] == "Your placement is confirmed: Elektrikerlärling"
        text = self.text_of(message)
        assert "Placement: Elektrikerlärling\n" in text
        assert "Period: 2027-01-18 – 2027-03-12\n" in text
        [told] = await self.outcomes_for(uow, "student")
        assert isinstance(told, NotificationDelivered)
        assert told.data.match_id == event.data.match_id

    async def test_each_unplaced_student_of_a_round_is_told_their_next_steps(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        fits, none, placed = f"s-{_uid()}", f"s-{_uid()}", f"s-{_uid()}"
        contexts.students[fits] = student_context(fits, language="sv", fitting=10, total=12)
        contexts.students[none] = student_context(none, language="en", fitting=0)
        contexts.students[placed] = student_context(placed)
        event = round_outcomes(
            [
                outcome(fits, reason="choices_full"),
                outcome(placed, "p-1"),
                outcome(none, reason="no_eligible_vacancy"),
            ]
        )
        assert await record_notices(event, uow) == 2  # the placed student hears of the match
        assert await record_notices(event, uow) == 0
        assert await record_notices(round_outcomes([outcome(placed)], dry_run=True), uow) == 0
        assert await self.deliver(uow, notifier) == 2
        assert sorted(contexts.student_calls) == sorted([(fits, None), (none, None)])
        [to_fits] = mail.to(f"{fits}@student.example")
        assert to_fits["Subject"] == "Du har ingen APL-plats än – så går du vidare"
        text = self.text_of(to_fits)
        assert "platserna du valde behövdes av andra elever" in text
        assert "12 lediga platser passar dig, närmast först:" in text
        assert text.index("- Vakans 1 ") < text.index("- Vakans 2 ") < text.index("- Vakans 10 ")
        assert "… och 2 till när du loggar in." in text
        assert "kompletterande omgång" in text
        [to_none] = mail.to(f"{none}@student.example")
        assert "Please contact your coordinator" in self.text_of(to_none)
        assert not mail.to(f"{placed}@student.example")
        outcomes = await self.outcomes_for(uow, "student")
        assert {e.data.notification_id for e in outcomes} == {
            notification_id(event.event_id, student_recipient(s)) for s in (fits, none)
        }
        for told in outcomes:
            assert isinstance(told, NotificationDelivered)
            assert (told.data.match_id, told.data.placement_id) == (None, None)
            assert told.data.source_event_id == event.event_id

    async def test_a_supplementary_round_tells_each_invited_student_once(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        invited = [f"s-{_uid()}" for _ in range(2)]
        erased = f"s-{_uid()}"  # withdrawn and erased since: the route answers 404
        for sid in invited:
            contexts.students[sid] = student_context(sid, language="sv", fitting=3)
        event = supplementary_opened([*invited, erased])
        assert await record_notices(event, uow) == 3
        assert await self.deliver(uow, notifier) == 3
        for sid in invited:
            [message] = mail.to(f"{sid}@student.example")
            assert message["Subject"] == "Kompletterande omgång: välj bland lediga APL-platser"
            text = self.text_of(message)
            assert "3 lediga platser passar dig, närmast först:" in text
            assert "Rangordna de platser du vill ha senast 2027-02-01:" in text
        outcomes = {e.data.notification_id: e for e in await self.outcomes_for(uow, "student")}
        gone = outcomes[notification_id(event.event_id, student_recipient(erased))]
        assert isinstance(gone, NotificationFailed)
        assert gone.data.attempts == 1  # at once, without retries
        assert "no student notice context for student" in gone.data.error
        assert (gone.data.match_id, gone.data.placement_id) == (None, None)
        assert sum(isinstance(e, NotificationDelivered) for e in outcomes.values()) == 2
        await self.advance(uow, 3600)
        assert await self.deliver(uow, notifier) == 0  # failed is final

    async def test_an_erased_student_fails_only_their_own_notice(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        pid, sid, address = self.supervised(contexts)
        del contexts.students[sid]
        event = proposed(pid, sid)
        await record_notices(event, uow)
        assert await self.deliver(uow, notifier) == 2
        [supervisor] = await self.outcomes_for(uow)
        [student] = await self.outcomes_for(uow, "student")
        assert isinstance(supervisor, NotificationDelivered)
        assert isinstance(student, NotificationFailed)
        assert (student.data.match_id, student.data.placement_id) == (event.data.match_id, pid)
        assert len(mail.to(address)) == 1

    async def test_a_students_notice_waits_out_an_outage_and_retries_a_busy_mailbox(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
        mail: FakeMailSender,
    ) -> None:
        sid = f"s-{_uid()}"
        contexts.students[sid] = student_context(sid, fitting=1)
        contexts.unavailable[("", sid)] = RETRY.max_attempts + 1
        mail.script[f"{sid}@student.example"] = ["451 4.3.0 later"]
        event = supplementary_opened([sid])
        await record_notices(event, uow)
        notice = notification_id(event.event_id, student_recipient(sid))
        for _ in range(RETRY.max_attempts + 1):
            assert await self.deliver(uow, notifier) == 1
            assert (await self.row(uow, notice)).attempts == 0  # no attempt used up
            await self.advance(uow, RETRY.upstream_seconds + 1)
        assert await self.deliver(uow, notifier) == 1  # the mailbox is busy: attempt 1
        assert (await self.row(uow, notice)).status == "pending"
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 1
        [told] = await self.outcomes_for(uow, "student")
        assert isinstance(told, NotificationDelivered)
        assert told.data.attempts == 2
        assert len(mail.to(f"{sid}@student.example")) == 1


class Crashed(Exception):
    """The process died (not an outage the worker rides out: that is tried again)."""


class CrashOnPublish:
    """A unit of work whose outbox write fails: the process "crashes" after sending, before the
    transaction commits (a database outage instead is tried again: test_delivery_batches)."""

    def __init__(self, inner: NotificationsUnitOfWork) -> None:
        self.inner = inner
        self.actor = inner.actor

    @property
    def notices(self) -> Any:
        return self.inner.notices

    async def __aenter__(self) -> CrashOnPublish:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def claim(self, event: Event) -> bool:
        return await self.inner.claim(event)

    async def publish(self, events: Any) -> None:
        raise Crashed("the process died before the commit")


# -------------------------------------------------------------------------------- backends


class TestInMemory(NotificationHandlerContract):
    @pytest.fixture
    def uow(self) -> InMemoryNotificationsUnitOfWork:
        return InMemoryNotificationsUnitOfWork()

    async def advance(self, uow: Any, seconds: float) -> None:
        uow.notices.elapsed += seconds

    async def published(self, uow: Any) -> list[Event]:
        return list(uow.published)


@pytest.mark.infra
class TestPostgres(NotificationHandlerContract):
    @pytest.fixture
    async def uow(
        self, database_url: str, fresh_schema: str
    ) -> AsyncIterator[PostgresNotificationsUnitOfWork]:
        await migrate(database_url, fresh_schema, MIGRATIONS)
        pool = await create_pool(database_url, fresh_schema, max_size=2)
        try:
            yield PostgresNotificationsUnitOfWork(pool)
        finally:
            await pool.close()

    async def advance(self, uow: Any, seconds: float) -> None:
        async with uow:
            await uow.conn.execute(
                "UPDATE deliveries "
                "SET next_attempt_at = next_attempt_at - make_interval(secs => $1)",
                seconds,
            )

    async def published(self, uow: Any) -> list[Event]:
        async with uow:
            rows = await uow.conn.fetch("SELECT topic, payload FROM outbox ORDER BY id")
        assert {r["topic"] for r in rows} <= {NOTIFICATIONS}
        return [parse_event(r["topic"], bytes(r["payload"])) for r in rows]
