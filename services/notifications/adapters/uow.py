"""The notifications service's unit of work: a transaction with the delivery log in it.

`uow.notices` is the delivery log (`NoticeRepository` on the transaction's connection);
`uow.claim(event)` the inbox and `uow.publish(events)` the outbox, from `shared.uow`. The fake
(`tests/support/fakes/notifications.py`) offers the same in memory.
"""

from __future__ import annotations

from typing import Protocol

from services.notifications.adapters.store import NoticeRepository, NoticeStore
from shared.uow import PostgresUnitOfWork, UnitOfWork


class NotificationsUnitOfWork(UnitOfWork, Protocol):
    @property
    def notices(self) -> NoticeStore: ...


class PostgresNotificationsUnitOfWork(PostgresUnitOfWork):
    @property
    def notices(self) -> NoticeRepository:
        """The delivery log, on this transaction's connection (only inside `async with`)."""
        return NoticeRepository(self.conn)
