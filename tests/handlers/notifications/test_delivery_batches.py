"""Delivery in batches without a transaction held across the sends: a batch's notice contexts
in one call, claims that keep a batch from other workers until their lease ends, a message not
sent within the lease retried, and (on PostgreSQL) no row locked while messages are on the wire
and two workers sending each notice once. The same tests run against the in-memory unit of work
and, marked infra, against PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from bench.notification_peers import context
from services.notifications.adapters.rendering import Renderer
from services.notifications.adapters.smtp import OutgoingMail
from services.notifications.adapters.store import HeldMarks, Result
from services.notifications.adapters.uow import (
    NotificationsUnitOfWork,
    PostgresNotificationsUnitOfWork,
)
from services.notifications.bootstrap import MIGRATIONS
from services.notifications.domain.contexts import ContextBatch, StudentKey, SupervisorKey
from services.notifications.domain.notices import UpstreamUnavailable
from services.notifications.handlers import (
    LEASE_SECONDS,
    HandOverMarks,
    Notifier,
    RetryPolicy,
    deliver_due,
    record_notices,
)
from shared.contracts.events import Event, NotificationDelivered, parse_event
from shared.db import create_pool, migrate
from tests.support.fakes.notifications import (
    FakeContextSource,
    FakeHookSender,
    FakeMailSender,
    InMemoryNoticeStore,
    InMemoryNotificationsUnitOfWork,
    confirmed,
    student_context,
)

RETRY = RetryPolicy(max_attempts=3, base_seconds=60.0, max_seconds=600.0, upstream_seconds=30.0)


def _pair(contexts: FakeContextSource) -> tuple[str, str]:
    """A fresh placement and student with their notice contexts."""
    pid, sid = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    contexts.contexts[(pid, sid)] = context(pid, sid, email=f"sup-{pid}@company.example")
    contexts.students[sid] = student_context(sid)
    return pid, sid


class Unavailable(FakeContextSource):
    """A placements service whose batch route does not answer at all."""

    async def fetch_many(
        self, supervisors: Sequence[SupervisorKey], students: Sequence[StudentKey]
    ) -> ContextBatch:
        raise UpstreamUnavailable("placements service unreachable: ConnectError")


@dataclass
class Hanging(FakeMailSender):
    """Accepts every message except those to `hang_for`, whose send never ends."""

    hang_for: str = ""

    async def send(self, mail: OutgoingMail) -> None:
        if mail.recipient == self.hang_for:
            await asyncio.Event().wait()
        await super().send(mail)


class DeliveryBatchContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def advance(self, uow: Any, seconds: float) -> None:
        raise NotImplementedError

    async def published(self, uow: Any) -> list[Event]:
        raise NotImplementedError

    def marks(self, uow: Any) -> HandOverMarks:
        """The hand-over marks on the same delivery log (outside the unit of work)."""
        raise NotImplementedError

    @staticmethod
    def notifier(
        contexts: FakeContextSource, mail: FakeMailSender | None = None
    ) -> tuple[Notifier, FakeMailSender]:
        sender = mail or FakeMailSender()
        told = Notifier(contexts, sender, FakeHookSender(), Renderer(), "APL <noreply@apl.example>")
        return told, sender

    @staticmethod
    async def statuses(uow: NotificationsUnitOfWork, source: uuid.UUID) -> list[tuple[str, int]]:
        async with uow:
            rows = await uow.notices.of_source(source)
        return sorted((r.status, r.attempts) for r in rows)

    async def test_a_batchs_contexts_come_in_one_call_and_each_notice_is_told(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        contexts = FakeContextSource()
        pairs = [_pair(contexts) for _ in range(3)]
        for pid, sid in pairs:
            await record_notices(confirmed(pid, sid), uow)  # two notices each
        notifier, mail = self.notifier(contexts)
        assert await deliver_due(uow, notifier, retry=RETRY, batch_size=10) == 6
        [(supervisors, students)] = contexts.batches  # one call for the whole batch
        assert sorted(supervisors) == sorted(pairs)
        assert sorted(students) == sorted((sid, pid, None) for pid, sid in pairs)
        assert len(mail.messages) == 6
        assert len({m["Message-ID"] for m in mail.messages}) == 6
        assert len(await self.published(uow)) == 6

    async def test_a_claim_whose_lease_ended_records_nothing(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        contexts = FakeContextSource()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        first, second = uuid.uuid4(), uuid.uuid4()
        async with uow:
            claimed = await uow.notices.claim_due(10, first, 120.0)
        assert len(claimed) == 2
        async with uow:
            assert await uow.notices.claim_due(10, second, 120.0) == []  # kept from others
        await self.advance(uow, 121)  # the first worker died: its lease ends
        async with uow:
            taken = await uow.notices.claim_due(10, second, 120.0)
        assert {d.notification_id for d in taken} == {d.notification_id for d in claimed}
        done = [Result(d.notification_id, "delivered", 1, "email") for d in claimed]
        async with uow:
            assert await uow.notices.record(done, first) == set()  # too late: not its claim
        assert await self.statuses(uow, event.event_id) == [("pending", 0), ("pending", 0)]
        async with uow:
            recorded = await uow.notices.record(done, second)
        assert recorded == {d.notification_id for d in claimed}
        assert await self.statuses(uow, event.event_id) == [("delivered", 1), ("delivered", 1)]

    async def test_an_unanswered_context_call_waits_without_using_an_attempt(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        contexts = Unavailable()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        notifier, mail = self.notifier(contexts)
        assert await deliver_due(uow, notifier, retry=RETRY) == 2
        assert mail.messages == []
        assert await self.statuses(uow, event.event_id) == [("pending", 0), ("pending", 0)]
        assert await self.published(uow) == []

    async def test_a_message_not_sent_within_the_lease_is_tried_again_later(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        contexts = FakeContextSource()
        pid, sid = _pair(contexts)
        event = confirmed(pid, sid)
        await record_notices(event, uow)
        hanging = Hanging(hang_for=f"sup-{pid}@company.example")
        notifier, _ = self.notifier(contexts, hanging)
        # a lease of 21 s leaves the sends 1 s (20 s are kept for recording the outcomes)
        assert await deliver_due(uow, notifier, retry=RETRY, lease_seconds=21.0) == 2
        assert [m["To"] for m in hanging.messages] == [f"Kim Lindqvist <{sid}@student.example>"]
        assert await self.statuses(uow, event.event_id) == [("delivered", 1), ("pending", 1)]
        [told] = await self.published(uow)
        assert isinstance(told, NotificationDelivered)
        assert told.data.recipient == "student"

    async def test_a_claim_that_ran_out_after_a_marked_hand_over_is_not_sent_again(
        self, uow: NotificationsUnitOfWork
    ) -> None:
        """Its worker died between the mail server's 250 and the record: the next worker
        records the notice as delivered, with its outcome event, and sends only the other."""
        contexts = FakeContextSource()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        dead = uuid.uuid4()
        async with uow:
            claimed = await uow.notices.claim_due(10, dead, 120.0)
            await uow.notices.mark_handed_over(claimed[0].notification_id, dead)
            await uow.notices.mark_handed_over(claimed[1].notification_id, uuid.uuid4())
        await self.advance(uow, 121)  # its lease ends
        notifier, mail = self.notifier(contexts)
        marks = self.marks(uow)
        assert await deliver_due(uow, notifier, retry=RETRY, marks=marks) == 2
        assert len(mail.messages) == 1  # the one whose hand-over was not marked (not its claim)
        assert await self.statuses(uow, event.event_id) == [("delivered", 1), ("delivered", 1)]
        assert len(await self.published(uow)) == 2


class TestInMemory(DeliveryBatchContract):
    @pytest.fixture
    def uow(self) -> InMemoryNotificationsUnitOfWork:
        return InMemoryNotificationsUnitOfWork()

    async def advance(self, uow: Any, seconds: float) -> None:
        uow.notices.elapsed += seconds

    def marks(self, uow: Any) -> HandOverMarks:
        return uow.notices.mark_handed_over  # type: ignore[no-any-return]

    async def published(self, uow: Any) -> list[Event]:
        return list(uow.published)

    async def test_a_record_that_meets_a_database_outage_is_tried_again(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The messages went out; the database was away for the first record: the record is
        tried again (within the claim's lease), so nothing is due again and sent twice."""
        uow = InMemoryNotificationsUnitOfWork()
        contexts = FakeContextSource()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        failures = [ConnectionRefusedError("the database restarts")]
        original = InMemoryNoticeStore.record

        async def flaky(
            store: InMemoryNoticeStore, results: Sequence[Result], claim: uuid.UUID
        ) -> set[uuid.UUID]:
            if failures:
                raise failures.pop()
            return await original(store, results, claim)

        monkeypatch.setattr(InMemoryNoticeStore, "record", flaky)
        notifier, mail = self.notifier(contexts)
        assert await deliver_due(uow, notifier, retry=RETRY) == 2
        assert not failures
        assert await self.statuses(uow, event.event_id) == [("delivered", 1), ("delivered", 1)]
        await self.advance(uow, LEASE_SECONDS + 1)
        assert await deliver_due(uow, notifier, retry=RETRY) == 0  # nothing due again
        assert len(mail.messages) == 2


@pytest.mark.infra
class TestPostgres(DeliveryBatchContract):
    @pytest.fixture
    async def pool(self, database_url: str, fresh_schema: str) -> AsyncIterator[asyncpg.Pool]:
        await migrate(database_url, fresh_schema, MIGRATIONS)
        pool = await create_pool(database_url, fresh_schema, max_size=4)
        self.held: list[HeldMarks] = []
        try:
            yield pool
        finally:
            for held in self.held:
                await held.release()  # else the pool's close waits for their connection
            await pool.close()

    @pytest.fixture
    def uow(self, pool: asyncpg.Pool) -> PostgresNotificationsUnitOfWork:
        return PostgresNotificationsUnitOfWork(pool)

    def marks(self, uow: Any) -> HandOverMarks:
        held = HeldMarks(uow._pool)
        self.held.append(held)
        return held

    async def test_marks_hold_one_connection_and_drop_a_broken_one(
        self, uow: PostgresNotificationsUnitOfWork, pool: asyncpg.Pool
    ) -> None:
        """The hand-over marks run on one held connection; one that breaks is dropped (that
        mark fails) and the next mark takes another; `release` gives it back to the pool."""
        contexts = FakeContextSource()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        claim = uuid.uuid4()
        async with uow:
            (first, second) = await uow.notices.claim_due(10, claim, LEASE_SECONDS)
        marks = HeldMarks(pool)
        self.held.append(marks)
        pids = set()
        for notice in (first, second):
            await marks(notice.notification_id, claim)
            assert marks._conn is not None
            pids.add(marks._conn.get_server_pid())
        assert len(pids) == 1
        (pid,) = pids
        await pool.execute("SELECT pg_terminate_backend($1)", pid)
        broken = (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        )
        with pytest.raises(broken):
            await marks(first.notification_id, claim)
        await marks(first.notification_id, claim)  # on a new connection
        assert marks._conn is not None
        assert marks._conn.get_server_pid() != pid
        handed = await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE claimed_by = $1 AND handed_over_at IS NOT NULL",
            claim,
        )
        assert handed == 2
        await marks.release()
        assert marks._conn is None
        assert pool.get_idle_size() == pool.get_size()

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
        return [parse_event(r["topic"], bytes(r["payload"])) for r in rows]

    async def test_no_row_is_locked_while_its_message_is_on_the_wire(
        self, uow: PostgresNotificationsUnitOfWork, pool: asyncpg.Pool
    ) -> None:
        """The claim's transaction has ended before a message goes out, and its outcome is
        recorded after (the outcomes of the others may be recorded meanwhile)."""
        contexts = FakeContextSource()
        event = confirmed(*_pair(contexts))
        await record_notices(event, uow)
        rows = {
            str(r["notification_id"]): r["status"]
            for r in await pool.fetch(
                "SELECT notification_id, status FROM deliveries WHERE source_event_id = $1",
                event.event_id,
            )
        }
        seen: list[str] = []

        @dataclass
        class Probing(FakeMailSender):
            async def send(self, mail: OutgoingMail) -> None:
                [sending] = [n for n in rows if n in mail.message_id]
                async with pool.acquire() as conn, conn.transaction():
                    # NOWAIT fails at once if a transaction still holds the message's row
                    status = await conn.fetchval(
                        "SELECT status FROM deliveries WHERE notification_id = $1 "
                        "FOR UPDATE NOWAIT",
                        uuid.UUID(sending),
                    )
                seen.append(status)
                await super().send(mail)

        notifier, mail = self.notifier(contexts, Probing())
        assert await deliver_due(uow, notifier, retry=RETRY) == 2
        assert seen == ["pending", "pending"]  # not yet recorded while on the wire
        assert len(mail.messages) == 2
        assert await self.statuses(uow, event.event_id) == [("delivered", 1), ("delivered", 1)]

    async def test_each_outcome_is_recorded_as_soon_as_its_message_went_out(
        self, uow: PostgresNotificationsUnitOfWork, pool: asyncpg.Pool
    ) -> None:
        """A message that is slow on the wire does not hold back the record of one sent: a
        process killed then would send again only the slow one."""
        contexts = FakeContextSource()
        pid, sid = _pair(contexts)
        event = confirmed(pid, sid)
        await record_notices(event, uow)
        statuses: list[list[str]] = []

        @dataclass
        class OneSlow(FakeMailSender):
            async def send(self, mail: OutgoingMail) -> None:
                if mail.recipient.startswith("sup-"):
                    for _ in range(200):  # until the student's notice is recorded
                        got = await pool.fetch(
                            "SELECT status FROM deliveries WHERE source_event_id = $1",
                            event.event_id,
                        )
                        if sorted(r["status"] for r in got) == ["delivered", "pending"]:
                            break
                        await asyncio.sleep(0.01)
                    statuses.append(sorted(r["status"] for r in got))
                await super().send(mail)

        notifier, mail = self.notifier(contexts, OneSlow())
        assert await deliver_due(uow, notifier, retry=RETRY) == 2
        assert statuses == [["delivered", "pending"]]
        assert len(mail.messages) == 2

    async def test_two_workers_send_each_notice_once(
        self, uow: PostgresNotificationsUnitOfWork, pool: asyncpg.Pool
    ) -> None:
        contexts = FakeContextSource()
        for _ in range(20):
            await record_notices(confirmed(*_pair(contexts)), uow)  # 40 notices

        @dataclass
        class Slow(FakeMailSender):
            async def send(self, mail: OutgoingMail) -> None:
                await asyncio.sleep(0.005)  # the other worker claims meanwhile
                await super().send(mail)

        notifier, mail = self.notifier(contexts, Slow())
        workers = [PostgresNotificationsUnitOfWork(pool) for _ in range(2)]

        async def work(each: PostgresNotificationsUnitOfWork) -> int:
            told = 0
            while n := await deliver_due(each, notifier, retry=RETRY, batch_size=7):
                told += n
            return told

        counts = await asyncio.gather(*(work(w) for w in workers))
        assert sum(counts) == 40
        assert all(counts), counts  # both workers took batches
        ids = Counter(m["Message-ID"] for m in mail.messages)
        assert len(ids) == 40
        assert set(ids.values()) == {1}  # no notice sent twice
        outcomes = Counter(e.data.notification_id for e in await self.published(uow))
        assert len(outcomes) == 40
        assert set(outcomes.values()) == {1}
