"""The revocation barrier: a rebalance waits for the batch in hand, so no batch is delivered twice.

Without it a rebalance (a replica joining mid-stream, one leaving) takes a consumer's partitions
while it is still applying a batch from them: the batch's offsets are committed too late (the
commit fails, the group has moved on), and the partition's new owner reads the whole batch again
from the last committed offset. The inbox keeps the effects single, but the work is done twice
and every event of the batch counts as a duplicate.

`RevocationBarrier` is the subscriber's rebalance listener (`EventPolicy.listener()`). Kafka asks
each member to give up its partitions before it hands them out again, and accepts a member's
commits until then (the group is preparing its rebalance, its generation still current):
- `on_partitions_revoked` waits until the batch being handled, if any, has been handled and its
  offsets committed (or its partitions rewound, on a transient error): the partitions go to the
  next owner with every applied record committed.
- A batch the consumer fetched before the revocation and had not begun is not handled at all:
  its partitions restart from their committed offsets after the rebalance, with this consumer or
  another, so it is read again there, once.
`EventPolicy`'s middleware commits a batch's offsets itself, inside `batch()`, so the commit
happens before the revocation goes on; FastStream's acknowledgement afterwards finds it done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import structlog
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

log = structlog.get_logger(__name__)

REVOCATION_WAIT_SECONDS = 60.0
"""How long a revocation waits for the batch in hand. A batch's handler rewinds at once on a
transient error and retries a failing record a few times with backoff (seconds), so this only
bounds a handler that hangs: the group is not held up forever by it (its batch is then read again
by the partition's next owner, as without the barrier)."""


class RebalanceListener(Protocol):
    """What a subscriber's `listener` is (aiokafka's `ConsumerRebalanceListener`, typed)."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...
    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


class RevocationBarrier(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """One subscriber's rebalance listener and the gate its batches pass (see the module doc).

    `on_assigned` hears each assignment's partitions (the policy maps their topics to this
    barrier, so its middleware finds it)."""

    def __init__(self, on_assigned: Callable[[set[TopicPartition], RevocationBarrier], None]):
        self._on_assigned = on_assigned
        self._in_hand = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._assigned = asyncio.Event()
        self._assigned.set()
        self.revocations = 0
        self.stale_batches = 0
        """Batches fetched before a revocation and left to be read again (not handled)."""

    @property
    def revoking(self) -> bool:
        return not self._assigned.is_set()

    # ------------------------------------------------------------------ the listener

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revocations += 1
        self._assigned.clear()
        if self._idle.is_set():
            return
        try:
            await asyncio.wait_for(self._idle.wait(), REVOCATION_WAIT_SECONDS)
        except TimeoutError:
            log.warning(
                "partitions revoked while a batch is still being handled; "
                "its records will be read again by their next owner",
                partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in revoked),
                waited_s=REVOCATION_WAIT_SECONDS,
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(assigned, self)
        self._assigned.set()

    # ------------------------------------------------------------------- the gate

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[bool]:
        """Around the handling of one batch (and its commit). Yields False for a batch fetched
        before a revocation (after waiting for the new assignment): the caller handles none of
        it and commits nothing."""
        if self.revoking:
            await self._assigned.wait()
            self.stale_batches += 1
            yield False
            return
        self._in_hand += 1
        self._idle.clear()
        try:
            yield True
        finally:
            self._in_hand -= 1
            if self._in_hand == 0:
                self._idle.set()
