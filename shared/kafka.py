"""Kafka plumbing: the broker factory, topic creation, and the event consumer every subscriber uses.

Delivery semantics, in one place:
- Producers are idempotent with `acks=all`.
- Subscribers name their group, start from the earliest offset, and use `NACK_ON_ERROR`: the
  offset is committed only after the handler returned. An exception that escapes (the database or
  broker is unreachable) rewinds the partition, so the event is processed again later.
- `EventConsumer.dispatch` turns every other failure into a dead letter: a message that breaks the
  contract goes to `<topic>.dlt` at once; a handler that keeps failing on a valid event goes there
  after bounded retries with backoff (and the consumer's `on_dead_letter` hook hears of it).
  Either way the partition moves on.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from tenacity import (
    AsyncRetrying,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from shared.contracts.events import ContractError, Event, parse_event
from shared.contracts.topics import PARTITIONS, Topics, dlt

log = structlog.get_logger(__name__)

# Failures of the infrastructure itself: retrying the same event later is right, dead-lettering
# it would lose a good event.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and TimeoutError (asyncio's too)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    KafkaConnectionError,
)


def make_broker(bootstrap: str, client_id: str, **kwargs: Any) -> KafkaBroker:
    """A broker with the project's producer defaults (idempotent, acks from all replicas)."""
    # FastStream's own lines go through the standard logging set up by configure_logging
    # (JSON off a terminal); its per-message "Received"/"Processed" lines are debug output.
    kwargs.setdefault("logger", logging.getLogger("faststream"))
    kwargs.setdefault("log_level", logging.DEBUG)
    kwargs.setdefault("graceful_timeout", 15.0)
    return KafkaBroker(
        bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        allow_auto_create_topics=False,
        **kwargs,
    )


class SubscriberOptions(TypedDict):
    group_id: str
    ack_policy: AckPolicy
    auto_offset_reset: Literal["earliest"]
    max_poll_interval_ms: int


def subscriber_options(group_id: str) -> SubscriberOptions:
    """The keyword arguments every subscriber passes to `broker.subscriber` (see the module doc)."""
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "max_poll_interval_ms": 600_000,
    }


async def ensure_topics(
    bootstrap: str, topics: Topics, *, partitions: int = PARTITIONS, timeout_s: float = 60.0
) -> list[str]:
    """Create every contract topic and its `.dlt` twin; return the names created now."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics.all_with_dlt() if t not in existing]
        if wanted:
            new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
            # another process may create them at the same moment
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return wanted
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    """Delete every contract topic and `.dlt` twin under `topics`' prefix (benchmarks, tests)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # some may not exist
            await admin.delete_topics(topics.all_with_dlt())
    finally:
        await admin.close()


async def publish_event(broker: KafkaBroker, topics: Topics, event: Event) -> None:
    """Publish one event on its topic, keyed by region; return once the broker acknowledged."""
    await broker.publish(
        event.to_json(),
        topics.name(event.topic),
        key=event.key(),
        headers=event_headers(event.type, event.event_id),
    )


def event_headers(event_type: str, event_id: uuid.UUID) -> dict[str, str]:
    """The headers of every published event (here and by the outbox relay)."""
    return {
        "content-type": "application/json",
        "event-type": event_type,
        "event-id": str(event_id),
    }


@dataclass
class EventConsumer:
    """Parses, logs, retries and dead-letters the events of one subscriber."""

    broker: KafkaBroker
    topics: Topics
    group_id: str
    max_attempts: int = 5
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    # Called with a valid event after it was dead-lettered because its handler kept failing
    # (not for messages that break the contract: those have no trustworthy event). An
    # infrastructure error here rewinds like one in the handler.
    on_dead_letter: Callable[[Event], Awaitable[None]] | None = None
    dead_letters: int = field(default=0, init=False)

    async def dispatch(
        self,
        message: KafkaMessage,
        handle: Callable[[Event], Awaitable[None]],
        *,
        accept: Iterable[type[Event]] | None = None,
    ) -> None:
        """Handle one Kafka message. Returns normally unless the infrastructure failed."""
        await self.dispatch_record(_record(message.raw_message), handle, accept=accept)

    async def dispatch_batch(
        self,
        message: KafkaMessage,
        handle: Callable[[Event], Awaitable[None]],
        *,
        accept: Iterable[type[Event]] | None = None,
    ) -> None:
        """Handle the records of a batch subscriber (`batch=True`) one by one, in order.

        The offset is committed once per batch, which is what makes batches fast; each record
        still gets its own handling, retries and dead letter. An infrastructure error rewinds to
        the batch's start: records handled before it come again and must be idempotent (inbox).
        """
        raw = message.raw_message
        for record in raw if isinstance(raw, tuple | list) else (raw,):
            await self.dispatch_record(record, handle, accept=accept)

    async def dispatch_record(
        self,
        record: ConsumerRecord[Any, Any],
        handle: Callable[[Event], Awaitable[None]],
        *,
        accept: Iterable[type[Event]] | None = None,
    ) -> None:
        """Parse, log, retry and dead-letter one record."""
        contract_topic = self.topics.contract_topic(record.topic)
        structlog.contextvars.bind_contextvars(topic=contract_topic)
        try:
            try:
                event = parse_event(contract_topic, record.value or b"")
            except ContractError as exc:
                await self.dead_letter(record, exc, attempts=1)
                return
            structlog.contextvars.bind_contextvars(
                event_id=str(event.event_id), event_type=event.type, region=event.region
            )
            if accept is not None and not isinstance(event, tuple(accept)):
                return  # another consumer's event on a shared topic
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.max_attempts),
                    wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
                    retry=retry_if_not_exception_type(INFRASTRUCTURE_ERRORS),
                    reraise=True,
                ):
                    with attempt:
                        n = attempt.retry_state.attempt_number
                        if n > 1:
                            log.warning("retrying event", attempt=n)
                        await handle(event)
            except INFRASTRUCTURE_ERRORS:
                log.warning("infrastructure unavailable; event will be redelivered", exc_info=True)
                raise
            except Exception as exc:  # the handler keeps failing on this event: dead-letter it
                await self.dead_letter(record, exc, attempts=self.max_attempts)
                if self.on_dead_letter is not None:
                    await self.on_dead_letter(event)
        finally:
            structlog.contextvars.unbind_contextvars(
                "topic", "event_id", "event_type", "region", "round_id"
            )

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], error: BaseException, *, attempts: int
    ) -> None:
        """Publish the original bytes with its headers and the error to `<topic>.dlt`."""
        headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}
        headers.update(
            {
                "x-error": f"{type(error).__name__}: {error}"[:4000],
                "x-error-trace": "".join(traceback.format_exception(error))[-4000:],
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer-group": self.group_id,
                "x-attempts": str(attempts),
            }
        )
        await self.broker.publish(record.value, dlt(record.topic), key=record.key, headers=headers)
        self.dead_letters += 1
        log.error("event dead-lettered", error=str(error), dlt=dlt(record.topic), attempts=attempts)


def _record(raw: Any) -> ConsumerRecord[Any, Any]:
    if isinstance(raw, tuple | list):
        raise TypeError("a batch message: use dispatch_batch")
    record: ConsumerRecord[Any, Any] = raw
    return record
