"""The revocation barrier's gate, without a broker (the broker's side: tests/integration)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from shared import rebalance
from shared.rebalance import RevocationBarrier

TP = TopicPartition("apl.students.v1", 3)


def _barrier() -> tuple[RevocationBarrier, dict[str, RevocationBarrier]]:
    seen: dict[str, RevocationBarrier] = {}

    def assigned(tps: set[TopicPartition], barrier: RevocationBarrier) -> None:
        seen.update({tp.topic: barrier for tp in tps})

    return RevocationBarrier(assigned), seen


async def test_a_revocation_waits_for_the_batch_in_hand() -> None:
    barrier, _ = _barrier()
    order: list[str] = []
    handling = asyncio.Event()

    async def batch() -> None:
        async with barrier.batch() as fresh:
            assert fresh
            handling.set()
            await asyncio.sleep(0.05)
            order.append("batch committed")

    task = asyncio.create_task(batch())
    await handling.wait()
    await barrier.on_partitions_revoked({TP})
    order.append("revoked")
    await task
    assert order == ["batch committed", "revoked"]


async def test_a_batch_fetched_before_a_revocation_is_left_for_the_next_owner() -> None:
    barrier, seen = _barrier()
    await barrier.on_partitions_revoked({TP})
    assert barrier.revoking

    async def batch() -> bool:
        async with barrier.batch() as fresh:
            return fresh

    task = asyncio.create_task(batch())
    await asyncio.sleep(0.01)
    assert not task.done()  # it waits for the new assignment
    await barrier.on_partitions_assigned({TP})
    assert await task is False
    assert barrier.stale_batches == 1
    assert seen == {TP.topic: barrier}
    async with barrier.batch() as fresh:  # after the assignment, batches are handled again
        assert fresh


async def test_a_hanging_batch_holds_a_revocation_up_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebalance, "REVOCATION_WAIT_SECONDS", 0.05)
    barrier, _ = _barrier()
    async with barrier.batch():
        await asyncio.wait_for(barrier.on_partitions_revoked({TP}), 1.0)
    assert barrier.revocations == 1
