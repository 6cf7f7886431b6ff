"""The outbox relay after a fatal producer error: it gives the broker a new producer and goes
on (shared/outbox.py, `OutboxRelay.run`), without infrastructure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber
from faststream.kafka import KafkaBroker

from shared import outbox
from shared.contracts.topics import Topics
from shared.outbox import OutboxRelay, RelayError


@pytest.mark.parametrize(
    ("refusal", "renewed"),
    [(OutOfOrderSequenceNumber(), 1), (KafkaTimeoutError(), 0)],
    ids=["out-of-order", "timeout"],
)
async def test_a_fatal_producer_error_renews_the_producer(
    monkeypatch: pytest.MonkeyPatch, refusal: BaseException, renewed: int
) -> None:
    relay = OutboxRelay("postgresql://unused/apl", "s", KafkaBroker(), Topics())
    attempts: list[int] = []
    renewals: list[Any] = []

    async def once() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RelayError("the broker did not acknowledge every row", refusal)
        await asyncio.Event().wait()  # then it runs on

    async def renew(broker: KafkaBroker) -> None:
        renewals.append(broker)

    monkeypatch.setattr(relay, "_run_once_connected", once)
    monkeypatch.setattr(outbox, "renew_producer", renew)
    monkeypatch.setattr(asyncio, "sleep", _no_pause)
    task = asyncio.create_task(relay.run())
    for _ in range(100):
        if len(attempts) >= 2:
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(attempts) == 2
    assert len(renewals) == renewed


_real_sleep = asyncio.sleep


async def _no_pause(seconds: float) -> None:
    await _real_sleep(0)
