"""Supervisor readiness in the notifications service, over a unit of work (the in-memory fake,
and, marked infra, PostgreSQL): the reminders before a placement starts are recorded once per
match and recipient however often (and by however many scanners) the due matches are read, and
are sent once, the supervisor's with the student's contact and, when their training is not
valid, the region's course and a signed link to record it; the other notices carry that link
only for a supervisor who is not ready."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from bench.notification_peers import context
from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.uow import PostgresNotificationsUnitOfWork
from services.notifications.bootstrap import MIGRATIONS
from services.notifications.domain.actions import LinkSigner
from services.notifications.domain.notices import reminder_source
from services.notifications.handlers import Notifier, RetryPolicy, deliver_due, record_notices
from services.notifications.reminders import ReminderScanner, record_reminders
from shared.contracts.events import Event, NotificationDelivered, parse_event
from shared.contracts.internal import DueReminder, NoticeReadiness
from shared.contracts.links import verify as verify_link
from shared.db import create_pool, migrate
from tests.support.fakes.notifications import (
    FakeContextSource,
    FakeHookSender,
    FakeMailSender,
    InMemoryNotificationsUnitOfWork,
    proposed,
    student_context,
)

LINK_SECRET = b"readiness-test-action-link-secret"
TODAY = date(2027, 1, 11)
COURSE = "https://kurs.example.se/handledare"
NOT_READY = NoticeReadiness(
    status="not_started", validity_years=3, course_url=COURSE, required=True
)
READY = NoticeReadiness(
    status="valid",
    trained_on=date(2026, 5, 4),
    expires_on=date(2029, 5, 4),
    validity_years=3,
    course_url=COURSE,
)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def links_in(text: str) -> list[str]:
    return re.findall(r"https://apl\.example\.se/v1/actions/([A-Za-z0-9_-]+)", text)


class ReadinessNoticeContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[Event]:
        raise NotImplementedError

    @pytest.fixture
    def mail(self) -> FakeMailSender:
        return FakeMailSender()

    @pytest.fixture
    def contexts(self) -> FakeContextSource:
        return FakeContextSource()

    @pytest.fixture
    def notifier(self, mail: FakeMailSender, contexts: FakeContextSource) -> Notifier:
        signer = LinkSigner(LINK_SECRET, "https://apl.example.se")
        return Notifier(
            contexts,
            mail,
            FakeHookSender(),
            Renderer(),
            "APL Match <noreply@apl.example>",
            links=signer,
            clock=lambda: datetime(2027, 1, 11, 8, tzinfo=UTC),
        )

    @staticmethod
    def confirmed_pair(
        contexts: FakeContextSource, readiness: NoticeReadiness | None, starts: date
    ) -> DueReminder:
        """A confirmed match due for a reminder, with its (shared) notice context and the
        student's notice context."""
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        found = context(pid, sid, email=f"sup-{pid}@company.example", shared=True)
        contexts.contexts[(pid, sid)] = found.model_copy(update={"readiness": readiness})
        contexts.students[sid] = student_context(sid, placement=found.placement)
        due = DueReminder(
            match_id=uuid.uuid4(),
            region="SE-AB",
            placement_id=pid,
            student_id=sid,
            starts_on=starts,
        )
        contexts.due.append(due)
        return due

    @staticmethod
    async def drain(uow: Any, notifier: Notifier) -> int:
        sent = 0
        while n := await deliver_due(uow, notifier, retry=RetryPolicy(), batch_size=10):
            sent += n
        return sent

    # --------------------------------------------------------------------------- reminders

    async def test_reminders_are_recorded_once_however_often_the_due_matches_are_read(
        self, uow: Any, contexts: FakeContextSource
    ) -> None:
        first = self.confirmed_pair(contexts, NOT_READY, TODAY + timedelta(days=3))
        second = self.confirmed_pair(contexts, READY, TODAY + timedelta(days=7))
        self.confirmed_pair(contexts, READY, TODAY + timedelta(days=8))  # not due yet
        self.confirmed_pair(contexts, READY, TODAY - timedelta(days=1))  # started already
        contexts.due_page = 1  # one match a page: the scan reads every page
        assert await record_reminders(contexts, lambda: uow, days=7, today=TODAY) == 4
        assert contexts.due_calls == 2
        assert await record_reminders(contexts, lambda: uow, days=7, today=TODAY) == 0
        # another scanner (a restart, a second process) adds nothing either
        woken: list[int] = []
        again = ReminderScanner(
            contexts, lambda: uow, 7, on_recorded=lambda: woken.append(1), clock=lambda: TODAY
        )
        assert await again.scan() == 0
        assert woken == []
        for due in (first, second):
            async with uow:
                rows = await uow.notices.of_source(reminder_source(due.match_id))
            assert sorted((r.kind, r.recipient, r.detail) for r in rows) == [
                ("reminder", f"placement:{due.placement_id}", due.starts_on.isoformat()),
                ("student_reminder", f"student:{due.student_id}", due.starts_on.isoformat()),
            ]
            assert {r.match_id for r in rows} == {due.match_id}
        later = ReminderScanner(
            contexts, lambda: uow, 7, on_recorded=lambda: woken.append(1), clock=lambda: TODAY
        )
        later.clock = lambda: TODAY + timedelta(days=1)  # the next day: the 8-day one is due
        assert await later.scan() == 2
        assert woken == [1]

    async def test_a_reminder_is_sent_once_to_the_supervisor_and_once_to_the_student(
        self, uow: Any, contexts: FakeContextSource, mail: FakeMailSender, notifier: Notifier
    ) -> None:
        due = self.confirmed_pair(contexts, NOT_READY, TODAY + timedelta(days=2))
        supervisor = f"sup-{due.placement_id}@company.example"
        pupil = f"{due.student_id}@student.example"
        assert await record_reminders(contexts, lambda: uow, days=7, today=TODAY) == 2
        assert await self.drain(uow, notifier) == 2
        [to_supervisor] = mail.to(supervisor)
        [to_student] = mail.to(pupil)
        assert (
            to_supervisor["Subject"] == "Påminnelse: APL-perioden börjar snart: Elektrikerlärling"
        )
        text = body_of(to_supervisor)
        assert "börjar 2027-01-18" in text
        assert "Kim Lindqvist" in text  # confirmed: the student's contact goes with it
        assert "Handledarutbildning" in text
        assert COURSE in text
        [token] = links_in(text)
        link = verify_link(LINK_SECRET, token, now=datetime(2027, 1, 11, 9, tzinfo=UTC))
        assert (link.action, link.match_id) == ("training", due.match_id)
        assert to_student["Subject"] == "Påminnelse: din APL börjar snart: Elektrikerlärling"
        assert "2027-01-18 – 2027-03-12" in body_of(to_student)
        # asked again, and delivered again: nothing more is sent
        assert await record_reminders(contexts, lambda: uow, days=7, today=TODAY) == 0
        assert await self.drain(uow, notifier) == 0
        assert len(mail.messages) == 2
        delivered = [e for e in await self.published(uow) if isinstance(e, NotificationDelivered)]
        assert sorted(e.data.recipient for e in delivered) == ["student", "supervisor"]
        assert {e.data.match_id for e in delivered} == {due.match_id}

    async def test_a_ready_supervisors_reminder_offers_no_course(
        self, uow: Any, contexts: FakeContextSource, mail: FakeMailSender, notifier: Notifier
    ) -> None:
        due = self.confirmed_pair(contexts, READY, TODAY)
        await record_reminders(contexts, lambda: uow, days=0, today=TODAY)
        await self.drain(uow, notifier)
        [message] = mail.to(f"sup-{due.placement_id}@company.example")
        text = body_of(message)
        assert "Handledarutbildning" not in text
        assert links_in(text) == []

    # ------------------------------------------------------------------ the other notices

    @pytest.mark.parametrize(("readiness", "training"), [(NOT_READY, True), (READY, False)])
    async def test_a_proposal_carries_a_training_link_only_for_a_supervisor_not_ready(
        self,
        uow: Any,
        contexts: FakeContextSource,
        mail: FakeMailSender,
        notifier: Notifier,
        readiness: NoticeReadiness,
        training: bool,
    ) -> None:
        pid, sid = f"p-{_uid()}", f"s-{_uid()}"
        address = f"sup-{pid}@company.example"
        found = context(pid, sid, email=address, language="en")
        contexts.contexts[(pid, sid)] = found.model_copy(update={"readiness": readiness})
        contexts.students[sid] = student_context(sid, language="en")
        event = proposed(pid, sid)
        await record_notices(event, uow)
        await self.drain(uow, notifier)
        [message] = mail.to(address)
        text = body_of(message)
        now = datetime(2027, 1, 11, 9, tzinfo=UTC)
        actions = [verify_link(LINK_SECRET, t, now=now).action for t in links_in(text)]
        assert actions == ["confirm", "decline", *(["training"] if training else [])]
        assert ("Supervisor training" in text) == training


class TestInMemory(ReadinessNoticeContract):
    @pytest.fixture
    def uow(self) -> InMemoryNotificationsUnitOfWork:
        return InMemoryNotificationsUnitOfWork()

    async def published(self, uow: Any) -> list[Event]:
        return list(uow.published)


@pytest.mark.infra
class TestPostgres(ReadinessNoticeContract):
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

    async def published(self, uow: Any) -> list[Event]:
        async with uow:
            rows = await uow.conn.fetch("SELECT topic, payload FROM outbox ORDER BY id")
        return [parse_event(r["topic"], bytes(r["payload"])) for r in rows]
