"""The process's metrics (`shared.metrics`): what the event policy and the inbox count, what the
HTTP middleware counts, the exposition `/metrics` serves, and the naming rules every metric
follows. FastStream's in-memory `TestKafkaBroker`, the in-memory unit of work, FastAPI in
process: no infrastructure."""

from __future__ import annotations

import re
from typing import Any

import httpx
from faststream.kafka import KafkaRouter, TestKafkaBroker
from prometheus_client.parser import text_string_to_metric_families

from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.http import service_app
from shared.kafka import EventPolicy, make_broker, publish_event, subscriber_options
from shared.kafka_client import KafkaConnection
from shared.metrics import METRICS
from shared.uow import InMemoryUnitOfWork
from tests.support.factories import placement

TOPIC = "apl.placements.v1"


def _value(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def _families() -> dict[str, Any]:
    text = METRICS.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_consumed_applied_duplicated_and_dead_lettered_are_counted_per_topic_and_type() -> (
    None
):
    uow = InMemoryUnitOfWork()
    failing: set[str] = set()
    topics = Topics()
    broker = make_broker(KafkaConnection("localhost:9092"), "metrics-test")
    policy = EventPolicy(broker, topics, group_id="g", max_attempts=2, backoff_initial=0.001)
    router = KafkaRouter(middlewares=[policy.middleware])

    @router.subscriber(topics.placements, decoder=policy.decode, **subscriber_options("g"))
    async def on_placement(event: ev.PlacementEvent) -> None:
        if event.data.placement_id in failing:
            raise ValueError("this handler cannot apply it")
        async with uow:
            if not await uow.claim(event):
                return

    broker.include_router(router)
    posted = {"topic": TOPIC, "event_type": "PlacementPosted"}
    before = {
        name: _value(name, **posted)
        for name in (
            "apl_events_consumed_total",
            "apl_events_applied_total",
            "apl_events_duplicated_total",
            "apl_events_retried_total",
            "apl_event_handler_duration_seconds_count",
        )
    }
    contract = _value(
        "apl_events_dead_lettered_total", topic=TOPIC, event_type="invalid", reason="contract"
    )
    handler = _value("apl_events_dead_lettered_total", **posted, reason="handler")
    async with TestKafkaBroker(broker) as br:
        event = ev.PlacementPosted(producer="placements", data=placement())
        await publish_event(br, topics, event)
        await publish_event(br, topics, event)  # redelivered: the inbox knows it
        bad = ev.PlacementPosted(producer="placements", data=placement(placement_id="p-bad"))
        failing.add("p-bad")
        await publish_event(br, topics, bad)
        await br.publish(b"{broken", topics.placements, key=b"SE-AB")

    def delta(name: str) -> float:
        return _value(name, **posted) - before[name]

    assert delta("apl_events_consumed_total") == 3
    assert delta("apl_events_applied_total") == 1
    assert delta("apl_events_duplicated_total") == 1
    assert delta("apl_events_retried_total") == 1  # the failing one's second attempt
    assert delta("apl_event_handler_duration_seconds_count") == 3
    assert _value("apl_events_dead_lettered_total", **posted, reason="handler") == handler + 1
    assert (
        _value(
            "apl_events_dead_lettered_total", topic=TOPIC, event_type="invalid", reason="contract"
        )
        == contract + 1
    )


async def test_a_claim_outside_a_consumer_counts_its_duplicate_itself() -> None:
    uow = InMemoryUnitOfWork()
    event = ev.PlacementPosted(producer="placements", data=placement())
    labels = {"topic": TOPIC, "event_type": "PlacementPosted"}
    before = _value("apl_events_duplicated_total", **labels)
    async with uow:
        assert await uow.claim(event)
    async with uow:
        assert not await uow.claim(event)
    assert _value("apl_events_duplicated_total", **labels) == before + 1


async def test_http_requests_are_counted_by_route_template_and_metrics_are_served() -> None:
    async def fine() -> bool:
        return True

    async def broken() -> bool:
        raise ConnectionError("no broker")

    app = service_app(
        title="t", description="d", version="1", checks={"database": fine, "broker": broken}
    )

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    labels = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    before = _value("apl_http_requests_total", **labels)
    unmatched = _value("apl_http_requests_total", method="GET", route="unmatched", status="404")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for n in range(3):
            assert (await client.get(f"/things/t-{n}")).status_code == 200
        assert (await client.get("/no/such/page")).status_code == 404
        scraped = await client.get("/metrics")
    assert _value("apl_http_requests_total", **labels) == before + 3
    assert (
        _value("apl_http_requests_total", method="GET", route="unmatched", status="404")
        == unmatched + 1
    )
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    ready = {s.labels["check"]: s.value for s in families["apl_ready"].samples}
    assert ready == {"database": 1.0, "broker": 0.0}
    routes = {s.labels["route"] for s in families["apl_http_requests"].samples}
    assert not [r for r in routes if r.startswith("/things/t-")], "a path became a label"


UNIT = re.compile(
    r"_(seconds|bytes|records|events|students|placements|matches|info|ready|total|objects|"
    r"collections|fds)$"
)
FORBIDDEN_LABELS = re.compile(r"(^|_)(id|email|name|student|company|placement|round)($|_)")


def test_every_metric_follows_the_naming_rules() -> None:
    families = _families()
    ours = {name: f for name, f in families.items() if name.startswith("apl_")}
    assert len(ours) >= 20
    for name, family in ours.items():
        sample_names = {s.name for s in family.samples}  # none yet: nothing to check
        if family.type == "counter":  # a count of things: `_total` is its unit
            assert all(n.endswith(("_total", "_created")) for n in sample_names), name
        else:
            assert UNIT.search(name) or name == "apl_ready", f"{name}: no unit in the name"
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        assert not [k for k in labels if FORBIDDEN_LABELS.search(k)], (name, labels)
        assert family.documentation, name
    for declared in (
        "apl_matching_round_duration_seconds",
        "apl_matching_round_students",
        "apl_notices_sent",
        "apl_notices_retried",
        "apl_notices_failed",
        "apl_outbox_backlog_events",
        "apl_outbox_oldest_unsent_age_seconds",
        "apl_consumer_lag_records",
    ):
        assert declared in families, declared
