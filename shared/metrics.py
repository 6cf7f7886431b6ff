"""Prometheus metrics: one registry per process, served at `/metrics` by every service.

Names follow the Prometheus conventions: an `apl_` prefix, the unit in the name (`_seconds`,
`_records`, `_events`), `_total` on counters. Labels are bounded sets only: contract topic names,
event types, channels, route templates, status codes; never an event, round, student or company id,
never an e-mail address.

What the shared plumbing counts by itself:
- `shared.kafka.EventPolicy`: events consumed, applied, duplicated (the inbox claim of
  `shared.uow`), retried and dead-lettered per topic and type, and the handler's duration;
- `shared.outbox.OutboxRelay`: events published per topic;
- `shared.http`: HTTP requests by route template and status, and their duration;
- at scrape time (`sample()`, called by the `/metrics` route): the outbox backlog and the age of
  its oldest unsent row (from each open pool), and the consumer lag per partition (the highwater
  each consumer last fetched minus its own position), for every pool and broker `runtime.opened`
  registered with `watching`.

Events about ids a consumer does not know are counted (`apl_events_unknown_ids_total`) and
logged once per id by `unknown_id`; the handlers apply nothing for them.

The services' own metrics are declared here too, so that every name lives in one place: a round's
duration and size (matching) and the notices sent, retried and failed by channel (notifications).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from faststream.kafka import KafkaBroker
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The exposition format's media type (text, version 0.0.4)."""

# Handlers run from a millisecond (a duplicate) to seconds (a round, a slow SMTP relay).
HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ROUND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000)


@dataclass(eq=False)
class _Samples(Collector):
    """Gauges whose values are replaced whole at each scrape (`sample()`): a partition revoked
    from this consumer, or a pool closed, leaves no stale series behind."""

    lag: dict[tuple[str, str, str], float] = field(default_factory=dict)
    backlog: dict[str, tuple[float, float]] = field(default_factory=dict)

    def collect(self) -> Iterable[Metric]:
        lag = GaugeMetricFamily(
            "apl_consumer_lag_records",
            "Records on a partition this consumer has not fetched yet: the partition's highwater "
            "offset (as last fetched) minus the consumer's position.",
            labels=["group", "topic", "partition"],
        )
        for (group, topic, partition), value in sorted(self.lag.items()):
            lag.add_metric([group, topic, partition], value)
        backlog = GaugeMetricFamily(
            "apl_outbox_backlog_events",
            "Outbox rows not yet published to Kafka.",
            labels=["schema"],
        )
        age = GaugeMetricFamily(
            "apl_outbox_oldest_unsent_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none waits).",
            labels=["schema"],
        )
        for schema, (count, oldest) in sorted(self.backlog.items()):
            backlog.add_metric([schema], count)
            age.add_metric([schema], oldest)
        yield from (lag, backlog, age)


class Metrics:
    """The process's registry and every metric of the services (`METRICS`)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series double the count and no rule reads them
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.samples = _Samples()
        registry.register(self.samples)
        by_event = ["topic", "event_type"]

        # --- consuming (shared.kafka.EventPolicy, shared.uow)
        self.events_consumed = Counter(
            "apl_events_consumed_total",
            "Records consumed, per contract topic and event type (`invalid`: broke the contract).",
            by_event,
            registry=registry,
        )
        self.events_applied = Counter(
            "apl_events_applied_total",
            "Consumed events whose handler returned and applied them (duplicates excluded).",
            by_event,
            registry=registry,
        )
        self.events_duplicated = Counter(
            "apl_events_duplicated_total",
            "Consumed events the inbox had applied before (redeliveries), ignored.",
            by_event,
            registry=registry,
        )
        self.events_retried = Counter(
            "apl_events_retried_total",
            "Extra attempts at a consumed event after its handler failed.",
            by_event,
            registry=registry,
        )
        self.events_rewound = Counter(
            "apl_events_rewound_total",
            "Consumed events left for redelivery because the broker or database was unavailable.",
            by_event,
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "apl_events_dead_lettered_total",
            "Records sent to `<topic>.dlt`; reason `contract` (unparseable) or `handler` (kept "
            "failing after the retries).",
            [*by_event, "reason"],
            registry=registry,
        )
        self.events_unknown = Counter(
            "apl_events_unknown_ids_total",
            "Consumed events about an id this service does not know (a withdrawal of a student "
            "or placement never registered, an answer to a match never proposed): counted and "
            "logged, never applied; `field` names which id (`student_id`, `match_id`, ...).",
            [*by_event, "field"],
            registry=registry,
        )
        self.handler_duration = Histogram(
            "apl_event_handler_duration_seconds",
            "Time to handle one consumed event, retries included.",
            by_event,
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )

        # --- publishing (shared.outbox.OutboxRelay)
        self.outbox_published = Counter(
            "apl_outbox_published_total",
            "Events the outbox relay published to Kafka (and the broker acknowledged).",
            ["topic"],
            registry=registry,
        )

        # --- HTTP (shared.http)
        self.http_requests = Counter(
            "apl_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "apl_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.ready = Gauge(
            "apl_ready",
            "1 while a readiness check passes (broker, database), 0 when it fails; sampled at "
            "each scrape and each /readyz.",
            ["check"],
            registry=registry,
        )
        self.info = Gauge(
            "apl_service_info",
            "Always 1; names the service and its version.",
            ["service", "version"],
            registry=registry,
        )

        # --- matching (services/matching: the lead's handlers call these)
        self.round_duration = Histogram(
            "apl_matching_round_duration_seconds",
            "Time to run one matching round (load, solve, write), by kind and result.",
            ["kind", "result"],
            buckets=ROUND_BUCKETS,
            registry=registry,
        )
        self.round_students = Histogram(
            "apl_matching_round_students",
            "Students taking part in a matching round, by kind.",
            ["kind"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.round_placements = Histogram(
            "apl_matching_round_placements",
            "Open places offered in a matching round, by kind.",
            ["kind"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.round_matches = Histogram(
            "apl_matching_round_matches",
            "Matches a round proposed, by kind.",
            ["kind"],
            buckets=SIZE_BUCKETS,
            registry=registry,
        )

        # --- notifications (services/notifications: the lead's delivery worker calls these)
        self.notices_sent = Counter(
            "apl_notices_sent_total",
            "Notices delivered, by channel (email, webhook) and recipient (supervisor, student).",
            ["channel", "recipient"],
            registry=registry,
        )
        self.notices_retried = Counter(
            "apl_notices_retried_total",
            "Notice deliveries that failed and were scheduled again, by channel and recipient.",
            ["channel", "recipient"],
            registry=registry,
        )
        self.notices_failed = Counter(
            "apl_notices_failed_total",
            "Notices given up on for good (retries spent or refused), by channel and recipient.",
            ["channel", "recipient"],
            registry=registry,
        )

        self._pools: dict[int, asyncpg.Pool] = {}
        self._brokers: dict[int, KafkaBroker] = {}

    # ------------------------------------------------------------------ exposition

    def exposition(self) -> bytes:
        """The registry in the text exposition format."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------- scrape-time samples

    @contextlib.asynccontextmanager
    async def watching(self, pool: asyncpg.Pool, broker: KafkaBroker) -> AsyncIterator[None]:
        """Sample `pool`'s outbox (in the pool's schema) and `broker`'s consumers at each scrape
        while inside."""
        self._pools[id(pool)] = pool
        self._brokers[id(broker)] = broker
        try:
            yield
        finally:
            self._pools.pop(id(pool), None)
            self._brokers.pop(id(broker), None)

    async def sample(self, wait_seconds: float = 2.0) -> None:
        """Refresh the scrape-time gauges (outbox backlog, consumer lag); a source that does not
        answer within `wait_seconds` keeps no series rather than a stale one."""
        backlog: dict[str, tuple[float, float]] = {}
        for pool in list(self._pools.values()):
            try:
                async with asyncio.timeout(wait_seconds):
                    row = await pool.fetchrow(
                        "SELECT current_schema() AS schema, count(*) AS n, "
                        "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age "
                        "FROM outbox WHERE sent_at IS NULL"
                    )
            except Exception:  # the database is away: /readyz says so, apl_ready too
                log.debug("outbox backlog not sampled", exc_info=True)
                continue
            if row is not None:
                backlog[str(row["schema"])] = (float(row["n"]), max(float(row["age"]), 0.0))
        lag: dict[tuple[str, str, str], float] = {}
        for broker in list(self._brokers.values()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(wait_seconds):
                    lag.update(await consumer_lag(broker))
        self.samples.backlog, self.samples.lag = backlog, lag


async def consumer_lag(broker: KafkaBroker) -> dict[tuple[str, str, str], float]:
    """(group, topic, partition) -> records behind, for each partition assigned to one of the
    broker's consumers whose highwater is known (it fetched from it at least once)."""
    lag: dict[tuple[str, str, str], float] = {}
    for subscriber in broker.subscribers:
        consumer: Any = getattr(subscriber, "consumer", None)
        if consumer is None:
            continue
        group = str(getattr(subscriber, "group_id", "") or "")
        for tp in list(consumer.assignment()):
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), 0.5)
            except Exception:  # revoked meanwhile, or no position yet
                log.debug("no position", topic=tp.topic, partition=tp.partition, exc_info=True)
                continue
            lag[(group, tp.topic, str(tp.partition))] = float(max(highwater - position, 0))
    return lag


@contextlib.contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the block's duration in `histogram` (with `labels`), whatever its outcome."""
    start = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(*labels).observe(time.perf_counter() - start)


METRICS = Metrics()
"""The process's metrics. Prometheus counts per process: each replica is a target of its own."""


@dataclass
class Outcome:
    """What the handler of the event being handled found: `duplicate` if its inbox claim said
    the event had been applied before; `duplicates` counts such claims by (topic, event type)
    (a batch of events handled at once has one outcome)."""

    duplicate: bool = False
    duplicates: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)


_OUTCOME: ContextVar[Outcome | None] = ContextVar("apl_event_outcome", default=None)


@contextlib.contextmanager
def handling_outcome() -> Iterator[Outcome]:
    """The outcome of the consumed event handled inside (`shared.kafka.EventPolicy`)."""
    outcome = Outcome()
    token = _OUTCOME.set(outcome)
    try:
        yield outcome
    finally:
        _OUTCOME.reset(token)


def claimed(topic: str, event_type: str, *, fresh: bool) -> None:
    """An inbox claim's result (`shared.uow`): a duplicate is counted by the policy handling the
    event (which then does not count it as applied), or here when no policy handles it."""
    if fresh:
        return
    outcome = _OUTCOME.get()
    if outcome is not None:
        outcome.duplicate = True
        outcome.duplicates[(topic, event_type)] += 1
    else:
        METRICS.events_duplicated.labels(topic, event_type).inc()


_UNKNOWN_LOGGED: dict[tuple[str, str], None] = {}
UNKNOWN_LOGGED_MAX = 10_000
"""Unknown ids a process remembers having logged (the oldest are forgotten first)."""


def unknown_id(topic: str, event_type: str, id_kind: str, value: str) -> None:
    """A consumed event names an id this service does not know: count it (every time) and log
    it (the first time this process meets that id). The caller applies nothing for it."""
    METRICS.events_unknown.labels(topic, event_type, id_kind).inc()
    key = (id_kind, value)
    if key in _UNKNOWN_LOGGED:
        return
    _UNKNOWN_LOGGED[key] = None
    if len(_UNKNOWN_LOGGED) > UNKNOWN_LOGGED_MAX:
        del _UNKNOWN_LOGGED[next(iter(_UNKNOWN_LOGGED))]
    log.warning("event about an unknown id; nothing applied", id_kind=id_kind, id=value)
