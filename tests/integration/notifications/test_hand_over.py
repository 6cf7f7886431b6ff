"""The hand-over gate (services/notifications/handover.py): with messages going out side by
side over four SMTP connections, a message reaches the server's end of DATA only once every
message accepted before it is durably known (its hand-over marked, or its outcome recorded), so
a process killed at any moment repeats at most one message. The sink (a real aiosmtpd server)
checks it at every message, before its 250; without the gate the same run breaks it. (A claim
whose worker died after a marked hand-over: tests/handlers/notifications/test_delivery_batches.)"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from bench.notification_peers import context
from services.notifications.adapters.rendering import Renderer
from services.notifications.handlers import Notifier, RetryPolicy, deliver_due, record_notices
from services.notifications.handover import HandOver, telling
from tests.integration.notifications.peers import sender_to
from tests.support.fakes.notifications import (
    FakeContextSource,
    FakeHookSender,
    InMemoryNotificationsUnitOfWork,
    confirmed,
    student_context,
)
from tests.support.processes import free_port

RETRY = RetryPolicy(max_attempts=3, base_seconds=60.0, max_seconds=600.0)
PAIRS = 12  # 24 notices, in one delivery batch


@dataclass
class CheckingSink:
    """Accepts every message; before each 250 it counts the messages accepted before this one
    that the delivery log does not yet show delivered (the window a kill would repeat)."""

    uow: InMemoryNotificationsUnitOfWork
    accepted: list[str] = field(default_factory=list)
    unrecorded: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> set[str]:
        """The Message-ID prefixes of the notices known to have gone out."""
        rows = [r.delivery for r in list(self.uow.notices.rows.values())]
        known = [d for d in rows if d.status == "delivered" or d.handed_over_at is not None]
        return {f"<{d.notification_id}@" for d in known}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.01)  # the 250 takes a while: the other connections reach DATA
        content = envelope.content.decode("ascii", "replace")
        mid = content.split("Message-ID: ", 1)[1].split("\r\n", 1)[0]
        with self.lock:
            done = self.delivered()
            earlier = [m for m in self.accepted if not any(m.startswith(d) for d in done)]
            self.unrecorded.append(len(earlier))
            self.accepted.append(mid)
        return "250 Message accepted for delivery"


async def _deliver(hand_over: HandOver | None) -> CheckingSink:
    """24 notices in one batch over four connections, the hand-over marked where gated."""
    uow = InMemoryNotificationsUnitOfWork()
    contexts = FakeContextSource()
    for _ in range(PAIRS):
        pid, sid = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
        contexts.contexts[(pid, sid)] = context(pid, sid, email=f"sup-{pid}@company.example")
        contexts.students[sid] = student_context(sid)
        await record_notices(confirmed(pid, sid), uow)
    sink, port = CheckingSink(uow), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    mail = sender_to(port, connections=4, hand_over=hand_over)
    notifier = Notifier(contexts, mail, FakeHookSender(), Renderer(), "APL <noreply@apl.example>")
    try:
        marks = None if hand_over is None else uow.notices.mark_handed_over
        told = await deliver_due(uow, notifier, retry=RETRY, batch_size=100, marks=marks)
        assert told == 2 * PAIRS
        await mail.close()
    finally:
        await asyncio.to_thread(controller.stop)
    assert len(sink.accepted) == 2 * PAIRS
    assert len(sink.delivered()) == 2 * PAIRS
    return sink


async def test_a_message_is_handed_over_only_once_the_ones_before_it_are_recorded() -> None:
    hand_over = HandOver()
    sink = await _deliver(hand_over)
    assert sink.unrecorded == [0] * (2 * PAIRS), sink.unrecorded
    assert not hand_over.busy  # every ticket gave the gate back


async def test_without_the_gate_several_messages_wait_for_their_record() -> None:
    sink = await _deliver(None)
    assert max(sink.unrecorded) >= 2, sink.unrecorded


async def test_a_failed_hand_over_gives_the_gate_back_and_marks_nothing() -> None:
    hand_over, marked = HandOver(), []

    async def mark() -> None:
        marked.append(1)

    with telling(mark) as ticket:
        assert ticket is not None
        await hand_over.enter()
        assert hand_over.busy
        hand_over.leave()  # DATA failed
        assert not hand_over.busy
        await hand_over.enter()
        await hand_over.handed()  # accepted: marked, then the gate is free
        assert not hand_over.busy
    assert (marked, ticket.marked) == ([1], True)


async def test_a_telling_stopped_while_holding_the_gate_gives_it_back() -> None:
    hand_over = HandOver()

    async def mark() -> None:
        await asyncio.Event().wait()  # the database hangs

    async def stopped() -> None:
        with telling(mark):
            await hand_over.enter()
            await hand_over.handed()  # cancelled here, holding the gate

    task = asyncio.ensure_future(stopped())
    await asyncio.sleep(0)
    assert hand_over.busy
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not hand_over.busy
