"""OpenTelemetry traces: one trace follows a request from the HTTP call through the outbox and
Kafka to every consumer downstream, and to the events those publish in turn.

The W3C trace context (`traceparent`, `tracestate`) travels:
- HTTP: FastAPI's own OpenTelemetry support (`fastapi.telemetry`, on as soon as a tracer
  provider is installed) continues an incoming `traceparent` (or starts a trace) in a SERVER span
  named after the route template, with spans for dependencies, endpoint and serialisation; with
  tracing off, the `shared.http` middleware still makes an incoming context current, so that a
  trace begun upstream goes on through the outbox;
- outbox: `shared.outbox.enqueue` stores the current context with each row;
- Kafka: the relay publishes each row in a PRODUCER span that is a child of the stored context,
  and puts that span's context in the record's headers (`publish_event` does the same for direct
  publications; a dead letter keeps the original's headers);
- consumer: `shared.kafka.EventPolicy` handles each record (each record of a batch too) in a
  CONSUMER span whose parent is the record's `traceparent`, so the handler's own outbox rows
  carry the story on;
- work a row waits for (a notice: the notifications service's delivery log keeps the consumer's
  context with each row): `stored_span` continues the stored context when the row is worked on,
  later and in another task (the delivery worker's CLIENT span of each notice).

Exporting is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (then OTLP over HTTP/protobuf, the
standard `OTEL_*` variables apply: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, ...). Off, the API's no-op tracer records nothing: contexts that arrive are
passed on (so a trace begun upstream is not cut), nothing is buffered or sent.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

TRACER_NAME = "apl-match"
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"

_state: dict[str, Any] = {"provider": None, "global": False}


def configure_tracing(
    service: str, version: str = "1.0.0", *, exporter: Any = None, simple: bool = False
) -> bool:
    """Install the SDK's tracer provider if spans are to go anywhere: to OTLP when
    `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or to `exporter` (tests: the SDK's in-memory one,
    exported at once with `simple=True`). Return whether tracing records; once per process."""
    if _state["provider"] is not None:
        return True
    if exporter is None and not os.environ.get(ENDPOINT_VARIABLE):
        return False
    # Imported only when tracing is on: a service without an endpoint never loads the SDK.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    attributes = {"service.version": version, "service.namespace": "apl-match"}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = f"apl-{service}"
    provider = TracerProvider(resource=Resource.create(attributes))
    processor = SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _state["global"] = True
    return True


def enabled() -> bool:
    """Whether spans are recorded in this process (`configure_tracing` installed the SDK)."""
    return _state["provider"] is not None


def shutdown() -> None:
    """Flush and stop the exporter (at the end of `run_service`)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()


def tracer() -> trace.Tracer:
    provider = _state["provider"] or trace.get_tracer_provider()
    tracer: trace.Tracer = provider.get_tracer(TRACER_NAME)
    return tracer


@contextlib.contextmanager
def recording(exporter: Any) -> Iterator[None]:
    """Record this process's spans into `exporter` inside the block (tests: the SDK's
    `InMemorySpanExporter`), without installing a global provider for good."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous, _state["provider"] = _state["provider"], provider
    try:
        yield
    finally:
        _state["provider"] = previous
        provider.shutdown()


# --------------------------------------------------------------------------- context


def current_headers() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, maybe `tracestate`); empty
    outside any trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context to `headers` (returned)."""
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(headers)


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None outside a valid trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def add_trace_ids(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` on every line logged inside a trace."""
    ids = current_ids()
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict


# ------------------------------------------------------------------------------ spans


@contextlib.contextmanager
def continued(headers: Mapping[str, str]) -> Iterator[None]:
    """An HTTP request's handling in the caller's trace context. With a global tracer provider,
    FastAPI's own SERVER span does it (and this nothing); without one, the incoming
    `traceparent` is made current as it came, at no more cost than parsing it."""
    if _state["global"] or "traceparent" not in headers:
        yield
        return
    token = otel_context.attach(extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def consumer_span(
    topic: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
) -> Iterator[Span]:
    """The CONSUMER span of one record's handling, a child of the record's `traceparent`."""
    with tracer().start_as_current_span(
        f"process {topic}",
        context=extract(headers),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            **attributes,
        },
    ) as span:
        yield span


_EVENT_TRACES: ContextVar[Mapping[str, dict[str, str]] | None] = ContextVar(
    "apl_event_traces", default=None
)


_W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_PLAIN_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
"""A traceparent the W3C propagator reads and writes back unchanged (version 00, lower-case,
ids not all zeros, nothing after the flags)."""


def _records_spans() -> bool:
    """Whether spans started now are recorded (the SDK is installed, here or globally)."""
    return _state["provider"] is not None or not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def passed_on(headers: Mapping[str, str]) -> dict[str, str]:
    """What a span that records nothing, started as a child of a record's `headers`, passes on
    (`propagate.inject` of it): its parent's trace context. Copied as it is where the default
    W3C propagators would write it back unchanged (a plain traceparent, no tracestate or
    baggage), else made by them; tests compare the two ways."""
    return _passer()(headers)


def _passer() -> Callable[[Mapping[str, str]], dict[str, str]]:
    """`passed_on` for the propagators set now (asked once per batch, not per record)."""
    return _copied_or_made if propagate.get_global_textmap().fields == _W3C_FIELDS else _made


def _copied_or_made(headers: Mapping[str, str]) -> dict[str, str]:
    if _W3C_FIELDS.isdisjoint(headers.keys() - {"traceparent"}):
        parent = headers.get("traceparent")
        if parent is None:
            return {}
        if _PLAIN_TRACEPARENT.fullmatch(parent):
            return {"traceparent": parent}
    return _made(headers)


def _made(headers: Mapping[str, str]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    span = trace.get_current_span(extract(headers))
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


@contextlib.contextmanager
def batch_spans(
    topic: str, records: Sequence[tuple[str, Mapping[str, str], Mapping[str, Any]]]
) -> Iterator[list[Span]]:
    """The CONSUMER spans of a batch of records handled at once (`shared.kafka.EventPolicy`
    with `whole_batches`), one per record, each a child of its record's `traceparent`: records
    are `(event id, headers, attributes)`. While open, `event_trace(event_id)` is the context of
    that event's span, for what the handler stores with the rows of that event.

    Where spans are not recorded, none is started (starting and injecting a non-recording span
    per record cost more than parsing the record): each event passes on its record's trace
    context (`passed_on`), as such a span would, and the spans given are invalid ones."""
    if not _records_spans():
        passing = _passer()
        token = _EVENT_TRACES.set({event_id: passing(headers) for event_id, headers, _ in records})
        try:
            yield [trace.INVALID_SPAN] * len(records)
        finally:
            _EVENT_TRACES.reset(token)
        return
    spans = [
        tracer().start_span(
            f"process {topic}",
            context=extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                **attributes,
            },
        )
        for _, headers, attributes in records
    ]
    carriers: dict[str, dict[str, str]] = {}
    for (event_id, _, _), span in zip(records, spans, strict=True):
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        carriers[event_id] = carrier
    token = _EVENT_TRACES.set(carriers)
    try:
        yield spans
    finally:
        _EVENT_TRACES.reset(token)
        for span in spans:
            span.end()


def event_trace(event_id: object) -> dict[str, str]:
    """The trace context to store with what the handling of event `event_id` writes: its span's
    in a batch (`batch_spans`), else the current one (`current_headers`)."""
    traces = _EVENT_TRACES.get()
    found = traces.get(str(event_id)) if traces is not None else None
    return found if found is not None else current_headers()


@contextlib.contextmanager
def stored_span(
    name: str,
    stored: Mapping[str, str],
    attributes: Mapping[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span continuing a trace context kept with a database row (`traceparent`, maybe
    `tracestate`); a root span when none was kept. Tracing off: the stored context is made
    current as it was (a non-recording span), so what the block publishes carries it on."""
    carrier = {k: v for k, v in stored.items() if k in ("traceparent", "tracestate") and v}
    with tracer().start_as_current_span(
        name, context=extract(carrier), kind=kind, attributes=dict(attributes)
    ) as span:
        yield span


def producer_headers(
    topic: str, stored: Mapping[str, str], attributes: Mapping[str, Any]
) -> dict[str, str]:
    """The trace headers of one record the relay publishes: a PRODUCER span, child of the
    context `stored` with the outbox row, ended at once (publishing is batched; the span marks
    the hand-over). Tracing off: the stored context as it was."""
    if not enabled():
        return {k: v for k, v in stored.items() if k in ("traceparent", "tracestate") and v}
    span = tracer().start_span(
        f"publish {topic}",
        context=extract(stored),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            **attributes,
        },
    )
    try:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier
    finally:
        span.end()


def mark_error(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def mark_failed(span: Span, description: str) -> None:
    span.set_status(Status(StatusCode.ERROR, description))
