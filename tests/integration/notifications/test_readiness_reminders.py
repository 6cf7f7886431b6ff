"""Reminders before a placement starts through the running service (real Kafka, PostgreSQL and
SMTP server; the placements peer names the confirmed matches due, over HTTP, only to the
issuer's live tokens): each is sent once, to the supervisor (with the course and the link to
record it, their training not being valid) and to the student, however many scans read the
match, and still once after the service is stopped and started again on the same schema."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifications.domain.notices import (
    message_id,
    notification_id,
    recipient_of,
    reminder_source,
    student_recipient,
)
from shared.contracts.events import NotificationDelivered
from shared.contracts.internal import DueReminder, NoticeReadiness
from tests.integration.notifications.conftest import (
    Peers,
    running_service,
    service_settings,
)
from tests.integration.notifications.peers import context
from tests.integration.notifications.test_delivery import text_of
from tests.support.fakes.notifications import student_context
from tests.support.infra import Infra
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

COURSE = "https://kurs.example.se/handledare"


async def test_a_reminder_is_sent_once_across_scans_and_a_restart(
    infra: Infra, database_url: str, make_topics: Any, peers: Peers
) -> None:
    pid, sid = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    supervisor, pupil = f"sup-{pid}@company.example", f"{sid}@student.example"
    found = context(pid, sid, email=supervisor, shared=True)
    readiness = NoticeReadiness(
        status="not_started", validity_years=3, course_url=COURSE, required=True
    )
    peers.placements.contexts[(pid, sid)] = found.model_copy(update={"readiness": readiness})
    peers.placements.students[sid] = student_context(sid, placement=found.placement)
    today = datetime.now(UTC).date()
    due = DueReminder(
        match_id=uuid.uuid4(),
        region="SE-AB",
        placement_id=pid,
        student_id=sid,
        starts_on=today + timedelta(days=4),
    )
    peers.placements.due.append(due)
    topics = await make_topics()
    settings = service_settings(
        infra,
        database_url,
        topics,
        peers,
        f"n_{uuid.uuid4().hex[:8]}",
        reminder_days=7,
        reminder_poll_seconds=0.3,
    )
    source = reminder_source(due.match_id)

    async def scans_after(seen: int, more: int) -> None:
        await eventually(
            lambda: peers.placements.due_calls >= seen + more,
            wait=30,
            what=f"{more} more scans of the due reminders",
        )

    async with running_service(settings, topics, infra.kafka) as first:
        [told] = await first.watcher.wait_outcome(source, recipient="supervisor")
        [student] = await first.watcher.wait_outcome(source, recipient="student")
        await scans_after(peers.placements.due_calls, 3)  # scanned again and again
        assert isinstance(told, NotificationDelivered)
        assert first.watcher.outcomes(source=source, recipient="supervisor") == [told]
    assert len(peers.smtp.to(supervisor)) == 1
    assert len(peers.smtp.to(pupil)) == 1

    async with running_service(
        settings, topics, infra.kafka
    ) as again:  # the same schema: a restart
        await scans_after(peers.placements.due_calls, 3)
        await again.container.worker.deliver_due()  # whatever might be due is tried now
        async with again.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT kind, status, attempts FROM {settings.schema_name}.deliveries "  # noqa: S608
                "WHERE source_event_id = $1 ORDER BY kind",
                source,
            )
    assert [(r["kind"], r["status"], r["attempts"]) for r in rows] == [
        ("reminder", "delivered", 1),
        ("student_reminder", "delivered", 1),
    ]
    assert student.data.recipient == "student"
    [mail] = peers.smtp.to(supervisor)
    assert len(peers.smtp.to(pupil)) == 1
    assert mail["Message-ID"] == message_id(notification_id(source, recipient_of(pid)))
    assert peers.smtp.to(pupil)[0]["Message-ID"] == message_id(
        notification_id(source, student_recipient(sid))
    )
    plain, html = text_of(mail)
    assert mail["Subject"] == "Påminnelse: APL-perioden börjar snart: Elektrikerlärling"
    assert "Kim Lindqvist" in plain
    assert COURSE in plain
    assert f'<a href="{COURSE}">' in html
    assert "/v1/actions/" in plain  # the link to record the course
