"""The notifications handlers over a unit of work: the same tests against the in-memory fake and
(marked infra) against real PostgreSQL.

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
from services.notifications.domain.notices import message_id, notification_id, recipient_of
from services.notifications.handlers import (
    NoticeEvent,
    Notifier,
    RetryPolicy,
    deliver_due,
    record_notices,
)
from shared.contracts.events import (
    Event,
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
    proposed,
)

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
        """A fresh placement and student with a notice context; their supervisor's address."""
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        address = f"sup-{pid}@company.example"
        contexts.contexts[(pid, sid)] = context(pid, sid, email=address, **details)
        return pid, sid, address

    @staticmethod
    async def rows(uow: NotificationsUnitOfWork, source: uuid.UUID) -> list[Delivery]:
        async with uow:
            return await uow.notices.of_source(source)

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
        events: list[NoticeEvent] = [proposed(pid, sid), confirmed(pid, sid), cancelled(pid, sid)]
        for event in events:
            assert await record_notices(event, uow) == 1
            assert await record_notices(event, uow) == 0  # a redelivery adds nothing
        for event, kind in zip(events, ["proposed", "confirmed", "cancelled"], strict=True):
            [row] = await self.rows(uow, event.event_id)
            assert row.notification_id == notification_id(event.event_id, recipient_of(pid))
            assert (row.kind, row.status, row.attempts) == (kind, "pending", 0)
            assert (row.placement_id, row.student_id) == (pid, sid)
            assert row.match_id == event.data.match_id
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
        assert await self.deliver(uow, notifier) == 1
        expected = notification_id(event.event_id, recipient_of(pid))
        [message] = mail.to(address)
        assert message["Message-ID"] == message_id(expected)
        assert message["Subject"].startswith("A student is proposed for your placement")
        [row] = await self.rows(uow, event.event_id)
        assert (row.status, row.attempts, row.channel) == ("delivered", 1, "email")
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationDelivered)
        assert outcome.data.notification_id == expected
        assert outcome.data.source_event_id == event.event_id
        assert outcome.data.match_id == event.data.match_id
        assert (outcome.data.channel, outcome.data.attempts) == ("email", 1)
        # delivered means done: nothing is due any more, and a redelivery adds nothing
        assert await self.deliver(uow, notifier) == 0
        assert await record_notices(event, uow) == 0
        assert await self.deliver(uow, notifier) == 0
        assert len(mail.to(address)) == 1

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
            assert await self.deliver(uow, notifier) == 1
            row = await self.row(uow, notice)
            assert (row.status, row.attempts) == ("pending", attempt)
            assert row.last_error is not None
            assert "451" in row.last_error
            assert await self.deliver(uow, notifier) == 0  # not due yet
            await self.advance(uow, delay - 10)
            assert await self.deliver(uow, notifier) == 0  # still not due
            await self.advance(uow, 20)
        assert await self.published(uow) == []  # retries report nothing
        assert await self.deliver(uow, notifier) == 1  # the third and last attempt
        row = await self.row(uow, notice)
        assert (row.status, row.attempts) == ("failed", 3)
        assert mail.refused[address] == 3
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationFailed)
        assert outcome.data.notification_id == notice
        assert outcome.data.attempts == 3
        assert "451" in outcome.data.error
        assert address not in outcome.data.error
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
        assert await self.deliver(uow, notifier) == 1
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 1
        [row] = await self.rows(uow, event.event_id)
        assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationDelivered)
        assert outcome.data.attempts == 2
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
        assert await self.deliver(uow, notifier) == 2
        outcomes = {e.data.source_event_id: e for e in await self.published(uow)}
        for event, error in [(refused, "550"), (unknown, "no notice context")]:
            outcome = outcomes[event.event_id]
            assert isinstance(outcome, NotificationFailed)
            assert outcome.data.attempts == 1
            assert error in outcome.data.error
            [row] = await self.rows(uow, event.event_id)
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
        for _ in range(RETRY.max_attempts + 1):
            assert await self.deliver(uow, notifier) == 1
            [row] = await self.rows(uow, event.event_id)
            assert (row.status, row.attempts) == ("pending", 0)  # no attempt used up
            assert await self.deliver(uow, notifier) == 0  # waits upstream_seconds
            await self.advance(uow, RETRY.upstream_seconds + 1)
        assert await self.deliver(uow, notifier) == 1
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationDelivered)
        assert outcome.data.attempts == 1
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
        assert await self.deliver(uow, notifier) == 1
        await self.advance(uow, 61)
        assert await self.deliver(uow, notifier) == 1
        expected = str(notification_id(event.event_id, recipient_of(pid)))
        [payload] = hooks.received[url]
        assert hooks.keys[url] == [expected]
        assert payload["notification_id"] == expected
        assert payload["kind"] == "confirmed"
        assert payload["student"]["name"] == "Kim Lindqvist"
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationDelivered)
        assert (outcome.data.channel, outcome.data.attempts) == ("webhook", 2)
        assert not mail.to(address)

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
        events = [proposed(pid, sid, round_id) for sid in students]
        for event in events:
            assert await record_notices(event, uow, digest_seconds=60) == 1
        digest_id = notification_id(round_id, recipient_of(pid))
        for event in events:
            [row] = await self.rows(uow, event.event_id)
            assert (row.status, row.digest_id) == ("grouped", digest_id)
        digest = await self.row(uow, digest_id)
        assert (digest.kind, digest.status, digest.round_id) == ("digest", "pending", round_id)
        # a confirmation of the same placement is never digested; a proposal of another round
        # joins another digest
        confirmation = confirmed(pid, students[0])
        other_round = proposed(pid, "other")
        await record_notices(confirmation, uow, digest_seconds=60)
        await record_notices(other_round, uow, digest_seconds=60)
        [row] = await self.rows(uow, confirmation.event_id)
        assert (row.status, row.digest_id) == ("pending", None)
        [row] = await self.rows(uow, other_round.event_id)
        assert row.digest_id == notification_id(other_round.data.round_id, recipient_of(pid))

        assert await self.deliver(uow, notifier) == 1  # the confirmation; the digests wait
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
        outcomes = {e.data.source_event_id: e for e in await self.published(uow)}
        for event in events:  # each member event gets its own outcome under its own id
            outcome = outcomes[event.event_id]
            assert isinstance(outcome, NotificationDelivered)
            assert outcome.data.notification_id == notification_id(
                event.event_id, recipient_of(pid)
            )
            [row] = await self.rows(uow, event.event_id)
            assert row.status == "delivered"
        assert (await self.row(uow, digest_id)).status == "delivered"

        # a late proposal of the round, after its digest went out, is told on its own
        late = proposed(pid, "late", round_id)
        assert await record_notices(late, uow, digest_seconds=60) == 1
        [row] = await self.rows(uow, late.event_id)
        assert (row.status, row.digest_id) == ("pending", None)
        assert await self.deliver(uow, notifier) == 1
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
            events.append(proposed(pid, sid, round_id))
            await record_notices(events[-1], uow)
        assert await self.deliver(uow, notifier) == 2
        assert len(mail.to(address)) == 2
        assert await self.row_count_of_round(uow, round_id) == 0  # no digest row

    async def test_a_batch_is_at_most_batch_size_notices(
        self,
        uow: NotificationsUnitOfWork,
        notifier: Notifier,
        contexts: FakeContextSource,
    ) -> None:
        for _ in range(3):
            pid, sid, _ = self.supervised(contexts)
            await record_notices(confirmed(pid, sid), uow)
        assert await self.deliver(uow, notifier, batch_size=2) == 2
        assert await self.deliver(uow, notifier, batch_size=2) == 1
        assert await self.deliver(uow, notifier, batch_size=2) == 0
        assert len(await self.published(uow)) == 3

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
        with pytest.raises(ConnectionError):
            await self.deliver(CrashOnPublish(uow), notifier)
        [row] = await self.rows(uow, event.event_id)
        assert (row.status, row.attempts) == ("pending", 0)  # rolled back: still due
        assert await self.published(uow) == []
        assert await self.deliver(uow, notifier) == 1
        first, again = mail.to(address)
        assert first["Message-ID"] == again["Message-ID"]  # the receiver can drop the repeat
        [outcome] = await self.published(uow)
        assert isinstance(outcome, NotificationDelivered)
        assert outcome.data.attempts == 1

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
        assert await self.deliver(uow, self.linked(notifier)) == 2
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
            events.append(proposed(pid, sid, round_id))
            await record_notices(events[-1], uow, digest_seconds=60)
        await self.advance(uow, 61)
        assert await self.deliver(uow, self.linked(notifier)) == 1
        [message] = mail.to(address)
        found = list(self.links_in(message).values())
        assert sorted((link.match_id, link.action) for link in found) == sorted(
            (e.data.match_id, action) for e in events for action in ("confirm", "decline")
        )


class CrashOnPublish:
    """A unit of work whose outbox write fails: the process "crashes" after sending, before the
    transaction commits."""

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
        raise ConnectionError("lost the database before the commit")


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
