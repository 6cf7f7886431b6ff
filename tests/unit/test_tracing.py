"""Trace context through the shared plumbing (`shared.tracing`), recorded by the SDK's
in-memory exporter: a publication's `traceparent` header, the consumer's span as its child, the
next publication from inside the handler, the relay's producer headers, the log lines' ids.
FastStream's in-memory `TestKafkaBroker`: no infrastructure."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from faststream.kafka import KafkaRouter, TestKafkaBroker
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import tracing
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.kafka import EventPolicy, make_broker, publish_event, subscriber_options
from shared.kafka_client import KafkaConnection
from shared.logging import configure_logging
from tests.support.factories import placement

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_one_story_through_kafka_shares_the_caller_trace_id() -> None:
    exporter = InMemorySpanExporter()
    topics = Topics()
    broker = make_broker(KafkaConnection("localhost:9092"), "tracing-test")
    policy = EventPolicy(broker, topics, group_id="g", max_attempts=1)
    router = KafkaRouter(middlewares=[policy.middleware])
    seen: list[dict[str, str]] = []

    @router.subscriber(topics.placements, decoder=policy.decode, **subscriber_options("g"))
    async def on_placement(event: ev.PlacementEvent) -> None:
        seen.append(tracing.current_headers())
        if isinstance(event, ev.PlacementPosted):
            # the handler's own publication goes on in the same trace
            withdrawn = ev.PlacementWithdrawn(producer="placements", data=_withdrawn())
            await publish_event(broker, topics, withdrawn)

    broker.include_router(router)
    with tracing.recording(exporter):
        async with TestKafkaBroker(broker) as br:
            with tracing.continued({"traceparent": TRACEPARENT}):
                await publish_event(
                    br, topics, ev.PlacementPosted(producer="placements", data=placement())
                )
    spans = exporter.get_finished_spans()
    consumers = [s for s in spans if s.kind == SpanKind.CONSUMER]
    assert len(consumers) == 2  # the posted event, then the withdrawal its handler published
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    kinds = {str((s.attributes or {}).get("apl.event_type")): s for s in consumers}
    first, second = kinds["PlacementPosted"], kinds["PlacementWithdrawn"]
    assert first.parent is not None
    assert format(first.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id  # published from inside the first
    assert first.name == "process apl.placements.v1"
    assert (first.attributes or {})["messaging.destination.name"] == "apl.placements.v1"
    assert seen[0]["traceparent"].split("-")[1] == TRACE_ID


def _withdrawn() -> ev.PlacementWithdrawnData:
    return ev.PlacementWithdrawnData(placement_id="p1", region="SE-AB", reason="filled")


def test_the_relay_passes_a_stored_context_on_and_records_a_producer_span() -> None:
    stored = {"traceparent": TRACEPARENT, "tracestate": ""}
    # tracing off: the stored context, as it was, and nothing recorded
    assert tracing.producer_headers("apl.matches.v1", stored, {}) == {"traceparent": TRACEPARENT}
    exporter = InMemorySpanExporter()
    with tracing.recording(exporter):
        headers = tracing.producer_headers("apl.matches.v1", stored, {"apl.event_type": "X"})
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.PRODUCER
    assert span.name == "publish apl.matches.v1"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert headers["traceparent"] == f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01"
    assert tracing.producer_headers("apl.matches.v1", {}, {}) == {}


def test_tracing_stays_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_VARIABLE, raising=False)
    assert not tracing.enabled()
    assert tracing.configure_tracing("placements") is False
    assert not tracing.enabled()


def test_log_lines_inside_a_trace_carry_its_id() -> None:
    stream = io.StringIO()
    configure_logging("test", json=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    with tracing.continued({"traceparent": TRACEPARENT}):
        logging.getLogger("faststream").warning("from the standard library")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["trace_id"] == TRACE_ID
    assert lines[0]["logger"] == "faststream"
    assert lines[0]["service"] == "test"
    structlog.contextvars.clear_contextvars()


def _made_by_the_propagators(headers: dict[str, str]) -> dict[str, str]:
    """What a non-recording child span of `headers`' trace context passes on, made the long
    way: extracted and injected again by OpenTelemetry's global propagators."""
    carrier: dict[str, str] = {}
    span = trace.get_current_span(tracing.extract(headers))
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


_HEX = "0123456789abcdef"
_traceparents = st.one_of(
    st.builds(
        lambda version, trace_id, span_id, flags, case, pad, tail: (
            (pad + f"{version}-{trace_id}-{span_id}-{flags}{tail}" + pad).upper()
            if case
            else pad + f"{version}-{trace_id}-{span_id}-{flags}{tail}" + pad
        ),
        st.sampled_from(["00", "00", "00", "01", "ff"]),
        st.one_of(st.text(_HEX, min_size=32, max_size=32), st.just("0" * 32)),
        st.one_of(st.text(_HEX, min_size=16, max_size=16), st.just("0" * 16)),
        st.text(_HEX, min_size=2, max_size=2),
        st.booleans(),
        st.sampled_from(["", "", " ", "\t"]),
        st.sampled_from(["", "", "", "-extra"]),
    ),
    st.text(max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(
    traceparent=st.none() | _traceparents,
    tracestate=st.none() | st.sampled_from(["a=b", "a=b, c=d", "x", "k=v,k=w"]),
    baggage=st.none() | st.sampled_from(["user=1", "a=b;p=1"]),
)
def test_a_record_passes_on_the_trace_context_the_propagators_would_write(
    traceparent: str | None, tracestate: str | None, baggage: str | None
) -> None:
    headers = {"event-type": "PlacementPosted", "content-type": "application/json"}
    for name, value in (("traceparent", traceparent), ("tracestate", tracestate)):
        if value is not None:
            headers[name] = value
    if baggage is not None:
        headers["baggage"] = baggage
    assert tracing.passed_on(headers) == _made_by_the_propagators(headers)


def test_a_batch_without_recorded_spans_passes_each_record_s_context_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracing, "_records_spans", lambda: False)
    records: list[tuple[str, dict[str, str], dict[str, object]]] = [
        ("e-1", {"traceparent": TRACEPARENT}, {}),
        ("e-2", {}, {}),
        ("e-3", {"traceparent": TRACEPARENT, "tracestate": "a=b"}, {}),
    ]
    with tracing.batch_spans("apl.placements.v1", records) as spans:
        assert [tracing.event_trace(e) for e, _, _ in records] == [
            {"traceparent": TRACEPARENT},
            {},
            {"traceparent": TRACEPARENT, "tracestate": "a=b"},
        ]
        assert all(not s.is_recording() for s in spans)
