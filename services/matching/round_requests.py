"""Round requests region by region: each region's in the order they arrived, regions at once.

The round-requests topic is read by one consumer (per replica) like every other topic, but a
request is not handled while the consumer waits: `RoundRequests.accept` (the round-requests
subscriber's middleware) puts it in its region's queue and the consumer reads on. Each region
with requests has one worker task that handles them one after another (so a region's rounds
never reorder; a request whose inputs are missing is parked in the database and done here:
services/matching/parking.py); workers of
different regions run side by side, at most `concurrency` rounds at a time inside their
transaction (`slot`).

The placements service's openings of supplementary rounds (for notifications), told by their
`event-type` header, are done at once without being parsed. A request is handled as the other
topics' records are: through the consumer group's `EventPolicy` (contract check, retries with
backoff, dead letter, metrics and tracing), by `handle(event)`. An infrastructure error that
escapes the policy (the database is down) is retried in place after a pause, still in the
region's order: what a rewind of the partition would do, without re-reading the requests of
other regions.

Offsets: a record's offset is committed only once it and every record before it on its
partition are done (the openings on the same topic are done at once), so a crash or a kill
loses nothing: what was not committed is delivered again, and a round already committed finds
its inbox claim. When the group takes partitions away
(`revoked`), the requests of those partitions still queued are dropped and the done prefix is
committed; the new owner reads on from there (a round still running here finishes, and the
new owner's copy of it finds its claim under the region lock).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware

from shared.contracts import events as ev
from shared.contracts.events import ContractError
from shared.kafka import EventPolicy

log = structlog.get_logger(__name__)

Handle = Callable[[ev.MatchingRoundRequested], Awaitable[None]]


@dataclass(eq=False)
class _Request:
    region: str | None  # None: nothing to do but count it done (not a request, or malformed)
    message: StreamMessage[Any] | None
    partition: _Partition | None
    offset: int
    dropped: bool = False


@dataclass(eq=False)
class _Partition:
    """Offsets of one partition of one consumer: those handed out and not done yet."""

    consumer: Any
    tp: TopicPartition
    pending: dict[int, _Request] = field(default_factory=dict)
    last: int = -1  # the highest offset seen
    committed: int = -1  # the offset committed last (the next one to read)
    committing: asyncio.Task[None] | None = None


class RoundRequests:
    """The round-requests subscriber's requests, per region (see the module)."""

    def __init__(
        self,
        policy: EventPolicy,
        handle: Handle,
        *,
        concurrency: int = 4,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
    ) -> None:
        self.policy = policy
        self.handle = handle
        self.slot = asyncio.Semaphore(concurrency)
        """Held by a round inside its transaction: at most `concurrency` at once."""
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._queues: dict[str, collections.deque[_Request]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._partitions: dict[tuple[int, str, int], _Partition] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    # ------------------------------------------------------------------------ the consumer

    def middleware(self, msg: Any, /, *, context: Any) -> BaseMiddleware[Any, Any]:
        """The round-requests router's middleware factory: hands every record to `accept`."""
        return _Accepting(msg, context=context, requests=self)

    async def accept(self, message: StreamMessage[Any]) -> None:
        """Take one record of the round-requests topic: a request goes to its region's queue;
        any other record (an opening of a supplementary round, a malformed one, which the
        policy dead-letters now) is done at once."""
        if self._closed:
            return  # not committed: delivered again after the restart
        record = message.raw_message
        partition = self._partition(message, record)
        if _event_type(record) in _IGNORED:  # an opening, for notifications: not even parsed
            request = _Request(None, None, partition, _offset(record))
            self._track(request)
            self._done(request)
            return
        try:
            event = await message.decode()
        except ContractError:
            event = None
        if not isinstance(event, ev.MatchingRoundRequested):
            if event is None:
                await self.policy.handle(message, self._call)  # dead-lettered
            request = _Request(None, None, partition, _offset(record))
            self._track(request)
            self._done(request)
            return
        request = _Request(event.data.region, message, partition, _offset(record))
        self._track(request)
        queue = self._queues.setdefault(request.region or "", collections.deque())
        queue.append(request)
        self._idle.clear()
        if request.region not in self._workers:
            region = request.region or ""
            self._workers[region] = asyncio.create_task(
                self._work(region), name=f"round-requests-{region}"
            )

    def _partition(self, message: StreamMessage[Any], record: Any) -> _Partition | None:
        consumer = getattr(message, "consumer", None)
        if not isinstance(record, ConsumerRecord) or not isinstance(consumer, AIOKafkaConsumer):
            return None  # the test broker: nothing to commit
        key = (id(consumer), record.topic, record.partition)
        partition = self._partitions.get(key)
        if partition is None:
            tp = TopicPartition(record.topic, record.partition)
            # the consumer reads from its committed offset: this record's is committed already
            partition = self._partitions[key] = _Partition(consumer, tp, committed=record.offset)
        return partition

    def _track(self, request: _Request) -> None:
        p = request.partition
        if p is not None:
            p.pending[request.offset] = request
            p.last = max(p.last, request.offset)

    # ------------------------------------------------------------------------- the workers

    async def _work(self, region: str) -> None:
        queue = self._queues[region]
        try:
            while queue:
                request = queue[0]
                if not request.dropped:
                    await self._run(request)
                queue.popleft()
                self._done(request)
        finally:
            if self._queues.get(region) is queue and not queue:
                del self._queues[region]
            if self._workers.get(region) is asyncio.current_task():
                del self._workers[region]
            if not self._workers:
                self._idle.set()

    async def _run(self, request: _Request) -> None:
        message = request.message
        if message is None:
            return
        pause = self.retry_initial
        while True:
            try:
                await self.policy.handle(message, self._call)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # an infrastructure error: again after a pause, in order
                if request.dropped or self._closed:
                    return
                log.warning(
                    "round request will be handled again", region=request.region, pause=pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.retry_max)

    async def _call(self, message: StreamMessage[Any]) -> None:
        event = await message.decode()
        if isinstance(event, ev.MatchingRoundRequested):
            await self.handle(event)

    # ---------------------------------------------------------------------------- offsets

    def _done(self, request: _Request) -> None:
        p = request.partition
        if p is None or request.dropped or p.pending.get(request.offset) is not request:
            return
        del p.pending[request.offset]
        if p.committing is None:  # one commit at a time: the next one takes what is done then
            p.committing = asyncio.create_task(self._commit(p), name=f"commit-{p.tp}")

    async def _commit(self, p: _Partition) -> None:
        try:
            while True:
                target = min(p.pending) if p.pending else p.last + 1
                if target <= p.committed:
                    return
                try:
                    await p.consumer.commit({p.tp: target})
                except (KafkaError, AssertionError, RuntimeError):
                    log.warning("round request offset not committed", partition=str(p.tp))
                    return
                p.committed = target
        finally:
            if p.committing is asyncio.current_task():
                p.committing = None

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """The group took `partitions` away: drop their queued requests (the new owner reads
        them again from the committed offset) and forget their offsets."""
        gone = set(partitions)
        for key, p in list(self._partitions.items()):
            if p.tp not in gone:
                continue
            for request in p.pending.values():
                request.dropped = True
            del self._partitions[key]

    def listener(self) -> ConsumerRebalanceListener:
        """The round-requests subscriber's rebalance listener (commits, then `revoked`)."""
        return _Listener(self)

    async def commit_done(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit the done prefix of `partitions` (all when None): before the group takes
        them away, and at the end."""
        wanted = None if partitions is None else set(partitions)
        for p in list(self._partitions.values()):
            if wanted is not None and p.tp not in wanted:
                continue
            if p.committing is not None:
                with contextlib.suppress(Exception):
                    await p.committing
            if p.committing is None:
                p.committing = asyncio.current_task()
                await self._commit(p)

    # ------------------------------------------------------------------------- lifecycle

    async def idle(self) -> None:
        """Until every accepted request is done."""
        await self._idle.wait()

    async def run(self) -> None:
        """Serve until cancelled; then `close`."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self, grace: float = 10.0) -> None:
        """Take no more requests, drop the queued ones, give the running rounds `grace`
        seconds, then cancel them (a cancelled round rolls back and is delivered again)."""
        self._closed = True
        for queue in self._queues.values():
            for request in list(queue)[1:]:
                request.dropped = True
        await finish_or_cancel(self._workers.values(), grace)
        with contextlib.suppress(Exception):
            await self.commit_done()


async def finish_or_cancel(tasks: Iterable[asyncio.Task[None]], grace: float) -> None:
    """Give `tasks` `grace` seconds to finish, then cancel those still running and wait for
    them (their errors are theirs: logged where they happen)."""
    running = list(tasks)
    if not running:
        return
    _, pending = await asyncio.wait(running, timeout=grace)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


_IGNORED = frozenset({"SupplementaryRoundOpened"})
"""Types on the round-requests topic the service does nothing with; told by the `event-type`
header every producer sets (`shared.kafka.event_headers`), so their bodies are not parsed. A
record without the header is parsed and checked."""


def _event_type(record: Any) -> str | None:
    for key, value in getattr(record, "headers", None) or ():
        if key == "event-type":
            return bytes(value).decode("utf-8", "replace")
    return None


def _offset(record: Any) -> int:
    return int(getattr(record, "offset", -1))


class _Accepting(BaseMiddleware[Any, Any]):
    def __init__(self, msg: Any, /, *, context: Any, requests: RoundRequests) -> None:
        super().__init__(msg, context=context)
        self.requests = requests

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        await self.requests.accept(msg)
        return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, requests: RoundRequests) -> None:
        self.requests = requests

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.requests.commit_done(revoked)
        self.requests.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
