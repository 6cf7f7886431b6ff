"""Kafka plumbing: the broker factory, topic (and ACL) creation, and the event policy every
subscriber uses. How a client connects and as whom is `shared.kafka_client.KafkaConnection`'s.

Delivery semantics, in one place:
- Producers are idempotent with `acks=all`.
- Subscribers name their group, start from the earliest offset, and use `NACK_ON_ERROR`: the
  offset is committed only after the handler returned. A transient error that escapes (the
  database or broker is unreachable: the composition root says which errors are transient) rewinds
  the partition, so the event is processed again later.
- `EventPolicy` turns every other failure into a dead letter: a message that breaks the contract
  (an event whose `producer` is not its topic's owner included) goes to `<topic>.dlt` at once; a
  handler that keeps failing on a valid event goes there after bounded retries with backoff (and
  the policy's `on_dead_letter` hook hears of it). Either way the partition moves on.

Subscribers declare their payload types (`async def on_round(event: RoundEvent)` or, batched,
`events: list[PlacementEvent]`), so the AsyncAPI document shows every consumed schema. The policy
is a FastStream middleware of the router (`KafkaRouter(middlewares=[policy.middleware])`) and its
decoder (`decoder=policy.decode`) parses the contract with `parse_event`. A batch is handled one
record at a time (each with its own retries and dead letter) and its offsets committed once.
A subscriber given the policy's listener (`listener=policy.listener()`) commits them inside its
revocation barrier (`shared.rebalance`): a rebalance waits for the batch in hand and its commit.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict, cast

import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    for_code,
)
from faststream import AckPolicy
from faststream.exceptions import IncorrectState
from faststream.kafka import KafkaBroker
from faststream.message import AckStatus, StreamMessage
from faststream.middlewares import BaseMiddleware
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from shared import kafka_acl, tracing
from shared.contracts.events import (
    ContractError,
    Envelope,
    Event,
    check_owner,
    parse_event,
    read_envelope,
)
from shared.contracts.topics import PARTITIONS, Topics, dlt
from shared.kafka_client import KafkaConnection
from shared.metrics import METRICS, handling_outcome
from shared.rebalance import RebalanceListener, RevocationBarrier

log = structlog.get_logger(__name__)

# Failures of the broker or the network: retrying the same event later is right, dead-lettering
# it would lose a good event. A composition root adds its own (the database's, see shared.db).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError and TimeoutError (asyncio's too)
    KafkaConnectionError,
    KafkaTimeoutError,
)


PRODUCER_BATCH_BYTES = 256 * 1024
"""The producer's batch per partition (aiokafka's default is 16 KiB): a producer sends one
batch per partition per request, so a region's burst (its partition's rows) goes out in fewer
round trips. Within the broker's 1 MiB `message.max.bytes`."""


def make_broker(kafka: KafkaConnection, client_id: str, **kwargs: Any) -> KafkaBroker:
    """A broker with the project's producer defaults (idempotent, acks from all replicas,
    `PRODUCER_BATCH_BYTES` batches), connected as `kafka`'s principal to any of the nodes
    `kafka.bootstrap` lists (comma-separated)."""
    # FastStream's own lines go through the standard logging set up by configure_logging
    # (JSON off a terminal); its per-message "Received"/"Processed" lines are debug output.
    kwargs.setdefault("logger", logging.getLogger("faststream"))
    kwargs.setdefault("log_level", logging.DEBUG)
    kwargs.setdefault("graceful_timeout", 15.0)
    kwargs.setdefault("max_batch_size", PRODUCER_BATCH_BYTES)
    return KafkaBroker(
        # a comma-separated list of nodes (FastStream takes a string as one host)
        [host.strip() for host in kafka.bootstrap.split(",") if host.strip()],
        client_id=client_id,
        security=kafka.broker_security(),
        enable_idempotence=True,
        acks="all",
        allow_auto_create_topics=False,
        **kwargs,
    )


def aiokafka_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The connected broker's own aiokafka producer (idempotent, acks=all: `make_broker`).

    The outbox relay sends through it directly: FastStream's `publish` builds a command and runs
    the publisher middlewares for every message, which costs more than the send itself at the
    relay's rates. Raises `BrokerNotStarted` while the broker is not connected (the relay
    waits)."""
    state = getattr(broker.config.producer, "_producer", None)  # FastStream 0.7's producer state
    try:
        producer = getattr(state, "producer", None)
    except IncorrectState:  # not connected yet (or any more)
        producer = None
    if not isinstance(producer, AIOKafkaProducer):
        raise BrokerNotStarted("the broker is not connected: it has no aiokafka producer")
    return producer


FATAL_PRODUCER_ERRORS: tuple[type[BaseException], ...] = (OutOfOrderSequenceNumber, ProducerFenced)
"""Errors after which an idempotent producer sends nothing more (its sender has stopped, e.g.
after a whole-cluster outage outlived its batches): only a new producer (`renew_producer`)
sends again."""


async def renew_producer(broker: KafkaBroker) -> None:
    """Give the connected broker a new aiokafka producer (a new producer id and sequence), with
    the settings of the first, and close the old one."""
    old = aiokafka_producer(broker)
    fast: Any = broker.config.producer  # FastStream 0.7's producer: connect() takes a new one
    new = AIOKafkaProducer(**broker._connection_kwargs)
    await fast.connect(new, serializer=fast.serializer, codec=fast.codec)
    with contextlib.suppress(Exception):
        await old.stop()
    log.warning("the Kafka producer was renewed")


class BrokerNotStarted(KafkaConnectionError):  # type: ignore[misc]  # aiokafka is untyped
    """The broker has not started (yet): `shared.runtime.opened` starts it in the background."""


BATCH_WAIT_MS = 50
"""How long a batch subscriber's poll waits for records before it gives up (faststream's
`batch_timeout_ms`, 200 by default). After a poll that found nothing, faststream sleeps as long
again before the next one, so a record that reaches an idle batch subscriber during that sleep
waited up to the whole wait: 200 ms by default. The batch subscribers are matching's placements
and students, placements' matches, and notifications' round-requests, matches and rounds. An
idle subscriber polls 10 times a second instead of 2.5 (its CPU cost was not measured)."""


class SubscriberOptions(TypedDict):
    group_id: str
    listener: NotRequired[RebalanceListener]
    ack_policy: AckPolicy
    auto_offset_reset: Literal["earliest"]
    max_poll_interval_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    group_instance_id: str | None
    batch_timeout_ms: int


def subscriber_options(
    group_id: str,
    *,
    session_timeout_ms: int = 10_000,
    instance_id: str | None = None,
    listener: RevocationBarrier | None = None,
) -> SubscriberOptions:
    """The keyword arguments every subscriber passes to `broker.subscriber` (see the module doc).

    A shorter session timeout (tests use a few seconds) lets a killed consumer's partitions move
    to the survivors sooner. `instance_id` makes the consumer a static member of its group
    (`group.instance.id`): restarted under the same id, it gets its partitions back without
    waiting for the group to give up on its previous life. `listener`: the subscriber's
    revocation barrier (`EventPolicy.listener()`)."""
    options: SubscriberOptions = {
        "group_id": group_id,
        "group_instance_id": instance_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "max_poll_interval_ms": 600_000,
        "session_timeout_ms": session_timeout_ms,
        "heartbeat_interval_ms": max(session_timeout_ms // 3, 100),
        "batch_timeout_ms": BATCH_WAIT_MS,
    }
    if listener is not None:
        options["listener"] = listener
    return options


DEFAULT_REPLICATION = 3
"""Replicas of each partition of the topics `ensure_topics` creates on a cluster of three or more
brokers (with `min.insync.replicas` 2 and acks from all, a broker may fail without a loss)."""


async def ensure_topics(
    kafka: KafkaConnection,
    topics: Topics,
    *,
    partitions: int = PARTITIONS,
    replication: int | None = None,
    usernames: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> list[str]:
    """Create every contract topic and its `.dlt` twin, and each service's ACLs on them
    (`shared.kafka_acl`; `usernames`: a service's principal where it is not the service's name).
    Each partition gets `replication` replicas; None: as many as the cluster has brokers, at most
    `DEFAULT_REPLICATION` (one broker: 1; a cluster of three or more: 3). Return the topic names
    created now. `kafka` is the admin principal."""
    admin = kafka.admin(request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics.all_with_dlt() if t not in existing]
        if wanted:
            if replication is None:
                brokers = len((await admin.describe_cluster()).get("brokers") or ()) or 1
                replication = min(DEFAULT_REPLICATION, brokers)
            new = [NewTopic(n, partitions, replication) for n in wanted]
            # another process may create them at the same moment
            with contextlib.suppress(TopicAlreadyExistsError):
                _refused(await admin.create_topics(new))
        if kafka.sasl:  # a cluster without authentication has no principals to authorise
            await kafka_acl.grant(admin, topics, usernames)
        return wanted
    finally:
        await admin.close()


def _refused(response: Any) -> None:
    """Raise for the topics the broker refused to create (aiokafka returns its per-topic errors
    rather than raising them; one that exists already, made meanwhile, is fine)."""
    refused = [
        f"{error[0]}: {(error[2] if len(error) > 2 else None) or for_code(error[1]).__name__}"
        for error in getattr(response, "topic_errors", ())  # (topic, code[, message])
        if error[1] not in (0, TopicAlreadyExistsError.errno)
    ]
    if refused:
        raise KafkaError("topics not created: " + "; ".join(refused[:3]))


async def delete_topics(
    kafka: KafkaConnection, topics: Topics, *, usernames: Mapping[str, str] | None = None
) -> None:
    """Delete every contract topic and `.dlt` twin under `topics`' prefix, and the services'
    ACLs on them (benchmarks, tests, the demo)."""
    admin = kafka.admin()
    await admin.start()
    try:
        with contextlib.suppress(Exception):  # some may not exist
            await admin.delete_topics(topics.all_with_dlt())
        if kafka.sasl:
            await kafka_acl.revoke(admin, topics, usernames)
    finally:
        await admin.close()


async def publish_event(broker: KafkaBroker, topics: Topics, event: Event) -> None:
    """Publish one event on its topic, keyed by region; return once the broker acknowledged."""
    await broker.publish(
        event.to_json(),
        topics.name(event.topic),
        key=event.key(),
        headers=event_headers(event.type, event.event_id, tracing.current_headers()),
    )


def event_headers(
    event_type: str, event_id: uuid.UUID, trace: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers of every published event (here and by the outbox relay): its type and id,
    and the W3C trace context (`traceparent`, `tracestate`) when there is one."""
    return {
        "content-type": "application/json",
        "event-type": event_type,
        "event-id": str(event_id),
        **(trace or {}),
    }


MAX_ERROR_HEADER = 500
"""Characters of a dead letter's `x-error` header, at most."""


def error_header(error: BaseException) -> str:
    """What a dead letter says of its error: `Type: first line of the message`, printable
    characters only, at most MAX_ERROR_HEADER characters. Never a traceback, nor the lines an
    exception may add below its message: the full trace is in the service's log."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    name = type(error).__name__
    text = f"{name}: {lines[0]}" if lines else name
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_ERROR_HEADER else text[: MAX_ERROR_HEADER - 1] + "…"


def record_headers(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    """A consumed record's headers as text."""
    return {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}


@dataclass
class EventPolicy:
    """Parses, logs, retries and dead-letters the events of one consumer group.

    Every record is parsed as its topic's union and must name the topic's owner as its
    `producer` (`check_owner`): an event from anyone else breaks the contract.

    `transient` names the errors that rewind the partition instead (the composition root passes
    `TRANSIENT_ERRORS` plus its database's). `on_dead_letter` is called with a valid event after
    it was dead-lettered because its handler kept failing; `on_unparsed_dead_letter` with the
    contract topic and what can be read of the envelope of a message dead-lettered for breaking
    the contract (its id, producer and region: `read_envelope`), when they can be read. A
    transient error in either rewinds like one in the handler.

    With `whole_batches` a poll's records go to the subscriber at once (one call, so one
    transaction for the batch), each in a CONSUMER span of its own (`tracing.batch_spans`). If a
    record breaks the contract, or the call fails otherwise than transiently, the batch is
    handled one record at a time as without it (its effects were rolled back with the failed
    call), so only the bad record is retried and dead-lettered.
    """

    broker: KafkaBroker
    topics: Topics
    group_id: str
    max_attempts: int = 5
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS
    on_dead_letter: Callable[[Event], Awaitable[None]] | None = None
    on_unparsed_dead_letter: Callable[[str, Envelope], Awaitable[None]] | None = None
    whole_batches: bool = False
    dead_letters: int = field(default=0, init=False)
    _parsed: dict[int, Event] = field(default_factory=dict, init=False)
    """Records of a whole batch parsed once already (by `id`), for the subscriber's decoder."""
    _barriers: dict[str, RevocationBarrier] = field(default_factory=dict, init=False)
    """Each subscribed topic's (as the broker names it) revocation barrier, once assigned."""

    # ---------------------------------------------------------------- FastStream hooks

    async def decode(self, message: StreamMessage[Any]) -> Event | list[Event]:
        """The subscribers' decoder: the contract's model of each record (a list for a batch)."""
        raw = message.raw_message
        if isinstance(raw, tuple | list):
            return [self.parse(record) for record in raw]
        return self.parse(raw)

    def parse(self, record: ConsumerRecord[Any, Any]) -> Event:
        parsed = self._parsed.get(id(record))
        if parsed is not None:
            return parsed
        topic = self.topics.contract_topic(record.topic)
        return check_owner(topic, parse_event(topic, record.value or b""))

    def middleware(self, msg: Any, /, *, context: Any) -> BaseMiddleware[Any, Any]:
        """The router's middleware factory: `KafkaRouter(middlewares=[policy.middleware])`."""
        return _PolicyMiddleware(msg, context=context, policy=self)

    def listener(self) -> RevocationBarrier:
        """A subscriber's rebalance listener (`listener=policy.listener()`, one per subscriber):
        its rebalances wait for the batch in hand and its offsets' commit, and a batch fetched
        before a revocation is left to be read again (`shared.rebalance`). A subscriber without
        one is handled the same, without the barrier."""
        return RevocationBarrier(self._assigned)

    def _assigned(self, partitions: set[Any], barrier: RevocationBarrier) -> None:
        for tp in partitions:
            self._barriers[tp.topic] = barrier

    def barrier(self, message: StreamMessage[Any]) -> RevocationBarrier | None:
        """The revocation barrier of the subscriber `message` came to, if it has one."""
        raw = message.raw_message
        record = raw[0] if isinstance(raw, tuple | list) and raw else raw
        topic = getattr(record, "topic", None)
        return self._barriers.get(topic) if isinstance(topic, str) else None

    # ------------------------------------------------------------------------ policy

    async def handle(
        self,
        message: StreamMessage[Any],
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
    ) -> None:
        """Handle a message (each record of a batch on its own). Returns normally unless a
        transient error escaped, which rewinds the partition."""
        raw = message.raw_message
        if not isinstance(raw, tuple | list):
            await self._handle_one(message, raw, call_next)
            return
        if (
            self.whole_batches
            and len(raw) > 1
            and await self._handle_whole(message, raw, call_next)
        ):
            return
        for record in raw:
            single = copy.copy(message)  # its own decode cache
            single.raw_message = (record,)
            single.body = [record.value]
            single.batch_headers = [dict(record.headers or ())]
            await self._handle_one(single, record, call_next)

    async def _handle_whole(
        self,
        message: StreamMessage[Any],
        records: Sequence[ConsumerRecord[Any, Any]],
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
    ) -> bool:
        """Hand every record of a batch to the subscriber in one call; False (nothing applied)
        when a record breaks the contract or the call failed otherwise than transiently: the
        caller then handles them one at a time."""
        try:
            events = [self.parse(record) for record in records]
        except ContractError:
            return False
        topic = self.topics.contract_topic(records[0].topic)
        spans = [
            (
                str(event.event_id),
                record_headers(record),
                {
                    "messaging.consumer.group.name": self.group_id,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "messaging.message.id": str(event.event_id),
                    "apl.event_type": event.type,
                },
            )
            for record, event in zip(records, events, strict=True)
        ]
        self._parsed.update({id(r): e for r, e in zip(records, events, strict=True)})
        whole = copy.copy(message)  # its own decode cache
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(topic=topic)
        try:
            with tracing.batch_spans(topic, spans) as opened, handling_outcome() as outcome:
                try:
                    await call_next(whole)
                except self.transient as exc:
                    for span in opened:
                        tracing.mark_error(span, exc)
                    for event in events:
                        METRICS.events_rewound.labels(topic, event.type).inc()
                    log.warning(
                        "infrastructure unavailable; batch will be redelivered", exc_info=True
                    )
                    raise
                except Exception:
                    log.warning("batch failed; handling its records one at a time", exc_info=True)
                    return False
        finally:
            for record in records:
                self._parsed.pop(id(record), None)
            structlog.contextvars.unbind_contextvars("topic")
        each = (time.perf_counter() - started) / len(events)
        for event in events:
            labels = (topic, event.type)
            METRICS.events_consumed.labels(*labels).inc()
            METRICS.handler_duration.labels(*labels).observe(each)
            if outcome.duplicates[labels] > 0:
                outcome.duplicates[labels] -= 1
                METRICS.events_duplicated.labels(*labels).inc()
            else:
                METRICS.events_applied.labels(*labels).inc()
        return True

    async def _handle_one(
        self,
        message: StreamMessage[Any],
        record: ConsumerRecord[Any, Any],
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
    ) -> None:
        topic = self.topics.contract_topic(record.topic)
        attributes = {
            "messaging.consumer.group.name": self.group_id,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        structlog.contextvars.bind_contextvars(topic=topic)
        try:
            with tracing.consumer_span(topic, record_headers(record), attributes) as span:
                await self._handle_in_span(message, record, call_next, topic, span)
        finally:
            structlog.contextvars.unbind_contextvars(
                "topic", "event_id", "event_type", "region", "round_id"
            )

    async def _handle_in_span(
        self,
        message: StreamMessage[Any],
        record: ConsumerRecord[Any, Any],
        call_next: Callable[[StreamMessage[Any]], Awaitable[Any]],
        topic: str,
        span: Any,
    ) -> None:
        try:
            decoded = await message.decode()
        except ContractError as exc:
            METRICS.events_consumed.labels(topic, "invalid").inc()
            tracing.mark_error(span, exc)
            await self.dead_letter(record, exc, attempts=1)
            METRICS.events_dead_lettered.labels(topic, "invalid", "contract").inc()
            envelope = read_envelope(record.value or b"")
            if envelope is not None and self.on_unparsed_dead_letter is not None:
                await self.on_unparsed_dead_letter(topic, envelope)
            return
        event = cast(Event, decoded[0] if isinstance(decoded, list) else decoded)
        labels = (topic, event.type)
        METRICS.events_consumed.labels(*labels).inc()
        bound: dict[str, str] = {
            "event_id": str(event.event_id),
            "event_type": event.type,
            "region": event.region,
        }
        round_id = getattr(event, "round_id", None)
        if round_id is not None:
            bound["round_id"] = str(round_id)
        structlog.contextvars.bind_contextvars(**bound)
        span.set_attributes(
            {"messaging.message.id": str(event.event_id), "apl.event_type": event.type}
        )
        started = time.perf_counter()
        try:
            with handling_outcome() as outcome:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.max_attempts),
                    wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
                    retry=retry_if_exception(lambda e: not isinstance(e, self.transient)),
                    reraise=True,
                ):
                    with attempt:
                        n = attempt.retry_state.attempt_number
                        if n > 1:
                            METRICS.events_retried.labels(*labels).inc()
                            log.warning("retrying event", attempt=n)
                        outcome.duplicate = False
                        await call_next(message)
        except self.transient as exc:
            METRICS.events_rewound.labels(*labels).inc()
            tracing.mark_error(span, exc)
            log.warning("infrastructure unavailable; event will be redelivered", exc_info=True)
            raise
        except Exception as exc:  # the handler keeps failing on this event: dead-letter it
            tracing.mark_error(span, exc)
            await self.dead_letter(record, exc, attempts=self.max_attempts)
            METRICS.events_dead_lettered.labels(*labels, "handler").inc()
            if self.on_dead_letter is not None:
                await self.on_dead_letter(event)
        else:
            counter = METRICS.events_duplicated if outcome.duplicate else METRICS.events_applied
            counter.labels(*labels).inc()
        finally:
            METRICS.handler_duration.labels(*labels).observe(time.perf_counter() - started)

    async def dead_letter(
        self, record: ConsumerRecord[Any, Any], error: BaseException, *, attempts: int
    ) -> None:
        """Publish the original bytes with its headers and the error to `<topic>.dlt`: the
        error's type and the first line of its message (`error_header`), never a traceback, which
        goes to the log with the record's coordinates."""
        headers = record_headers(record)
        headers.update(
            {
                "x-error": error_header(error),
                "x-error-type": type(error).__name__,
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer-group": self.group_id,
                "x-attempts": str(attempts),
            }
        )
        await self.broker.publish(record.value, dlt(record.topic), key=record.key, headers=headers)
        self.dead_letters += 1
        log.error(
            "event dead-lettered",
            error=headers["x-error"],
            dlt=dlt(record.topic),
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            exc_info=error,
        )


class _PolicyMiddleware(BaseMiddleware[Any, Any]):
    """`EventPolicy.handle` around the decoding and the handler of every subscriber."""

    def __init__(self, msg: Any, /, *, context: Any, policy: EventPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        barrier = self.policy.barrier(msg)
        if barrier is None:
            await self.policy.handle(msg, call_next)
            return None
        async with barrier.batch() as fresh:
            if not fresh:  # fetched before a revocation: read again from the committed offset
                msg.committed = AckStatus.REJECTED  # nothing to commit (FastStream skips it)
                return None
            try:
                await self.policy.handle(msg, call_next)
            except Exception:
                await msg.nack()  # rewinds the batch's partitions before they are revoked
                raise
            try:
                await msg.ack()  # commits before a revocation waiting for this batch goes on
            except KafkaError:
                log.warning("offsets not committed; the batch will be read again", exc_info=True)
        return None
