"""Reminders before a placement starts: once, by e-mail, to the supervisor and to the student of
every confirmed match, `reminder_days` before its placement's first day.

`record_reminders` asks the placements service which confirmed matches start within the coming
`days` (`GET /internal/v1/reminders-due`, every page of it) and records their notices
(`domain/notices.py:plan_reminders`: kinds `reminder` and `student_reminder`) in the delivery
log, whose `UNIQUE (source_event_id, recipient)` keeps each once per match and recipient: asking
again (the next scan, a restart, a second process) records nothing new. The delivery worker
sends them like any notice: the supervisor's from the notice context (with the student's
contact, the match being confirmed, and, when their training is not valid, the region's course
and the link to record it), the student's from the student notice context.

`ReminderScanner` runs `record_reminders` when the service starts and then every
`reminder_poll_seconds`; an unavailable placements service is tried again sooner.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog

from services.notifications.adapters.uow import NotificationsUnitOfWork
from services.notifications.domain.notices import plan_reminders
from shared.contracts.internal import DueReminders

log = structlog.get_logger(__name__)

RETRY_SECONDS = 60.0
"""How soon a scan that failed (the placements service unavailable) is tried again, at most."""


@runtime_checkable
class ReminderSource(Protocol):
    """The placements service's due reminders (`adapters/placements.py:PlacementsClient`)."""

    async def due_reminders(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None = None
    ) -> DueReminders: ...


def _today() -> date:
    return datetime.now(UTC).date()


async def record_reminders(
    source: ReminderSource,
    uow: Callable[[], NotificationsUnitOfWork],
    *,
    days: int,
    today: date | None = None,
) -> int:
    """Record the reminders of the confirmed matches whose placement starts from `today` to
    `days` days later, each page in one transaction; those recorded before are left alone.
    Returns how many notices were new."""
    first = today or _today()
    last = first + timedelta(days=days)
    recorded = 0
    after: uuid.UUID | None = None
    while True:
        page = await source.due_reminders(first, last, after=after)
        if page.items:
            async with uow() as work:
                recorded += await work.notices.insert_notices(plan_reminders(page.items))
        if page.next_after is None:
            return recorded
        after = page.next_after


@dataclass
class ReminderScanner:
    """`run()` as a task (cancel to stop): a scan at start, then one every `poll_seconds`."""

    source: ReminderSource
    uow: Callable[[], NotificationsUnitOfWork]
    days: int
    poll_seconds: float = 3600.0
    on_recorded: Callable[[], None] = field(default=lambda: None)
    """Called after a scan recorded reminders (the delivery worker's wake-up)."""
    clock: Callable[[], date] = _today

    async def scan(self) -> int:
        recorded = await record_reminders(self.source, self.uow, days=self.days, today=self.clock())
        if recorded:
            log.info("reminders recorded", notices=recorded, days=self.days)
            self.on_recorded()
        return recorded

    async def run(self) -> None:
        while True:
            wait = self.poll_seconds
            try:
                await self.scan()
            except Exception:
                log.warning("reminder scan failed; trying again", exc_info=True)
                wait = min(self.poll_seconds, RETRY_SECONDS)
            await asyncio.sleep(wait)
