"""What operators can count on (../shared/PRODUCT.md), black-box: the three services as separate
OS processes on the real Kafka, PostgreSQL and Keycloak, exporting traces by OTLP to a receiver
in this test, an SMTP server here for the supervisor's mail.

One story: a company posts a placement, a coordinator imports a student and asks for a round
(with a `traceparent` of this test's), the round proposes the match, the supervisor gets the
notice (its delivery span, from the notice's row later, is in the request's trace too). Then each
service's `/metrics` is scraped and parsed with prometheus_client's own parser, the spans the
services exported are read back, and the services' logs are read line by line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client.parser import text_string_to_metric_families

from shared.contracts.topics import Topics
from tests.support.databases import create_database, drop_database
from tests.support.identity import DevTokens
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.infra

REGION = "SE-AB"
COORDINATOR = "coordinator-se-ab"
SERVICES = ("placements", "matching", "notifications")
NOTIFICATIONS_SECRET = "dev-notifications-secret"  # deploy/keycloak/dev: apl-notifications
ACTION_LINK_SECRET = "observability-action-link-secret"
SUPERVISOR = "handledare.obs@example.se"


# ----------------------------------------------------------------------------- receivers


class _Spans:
    """An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf): what the services export."""

    def __init__(self) -> None:
        self.spans: list[dict[str, str]] = []
        self.lock = threading.Lock()
        spans = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": attributes.get("service.name", ""),
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_id": span.parent_span_id.hex(),
                                "start": str(span.start_time_unix_nano),
                            }
                        )

    def of_trace(self, trace_id: str) -> list[dict[str, str]]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


@pytest.fixture
def otlp() -> Iterator[_Spans]:
    receiver = _Spans()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


class _Mail:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Mail, int]]:
    sink = _Mail()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


# -------------------------------------------------------------------------------- stack


@pytest.fixture
async def stack(
    infra: Infra,
    make_topics: Callable[[], Awaitable[Topics]],
    otlp: _Spans,
    smtp: tuple[_Mail, int],
    tmp_path: Path,
) -> Any:
    topics = await make_topics()
    database = await create_database(infra.database_url, "apl_obs")
    placements_port = free_port()
    common = {
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_AUTH_ISSUER": infra.auth_issuer,
        "APL_LOG_LEVEL": "INFO",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    extra: dict[str, dict[str, str]] = {
        "placements": {"APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET},
        "matching": {},
        "notifications": {
            "APL_NOTIFICATIONS_PLACEMENTS_URL": f"http://127.0.0.1:{placements_port}",
            "APL_NOTIFICATIONS_CLIENT_SECRET": NOTIFICATIONS_SECRET,
            "APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET,
            "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "APL_NOTIFICATIONS_SMTP_PORT": str(smtp[1]),
        },
    }
    processes: dict[str, ServiceProcess] = {}
    for name in SERVICES:
        env = {
            **common,
            **infra.kafka_env(name),
            f"APL_{name.upper()}_DATABASE_URL": database,
            **extra[name],
        }
        processes[name] = ServiceProcess(name, env, tmp_path / "logs")
    processes["placements"].port = placements_port
    try:
        for process in processes.values():
            await asyncio.to_thread(process.start, 90)
        yield topics, processes
    finally:
        for process in processes.values():
            await asyncio.to_thread(process.stop)
        await drop_database(infra.database_url, database)


async def _call(
    client: httpx.AsyncClient, tokens: DevTokens, user: str, method: str, path: str, **kw: Any
) -> httpx.Response:
    response = await client.request(method, path, auth=tokens.auth(user), **kw)
    assert response.status_code < 300, (method, path, response.status_code, response.text)
    return response


async def _scrape(process: ServiceProcess) -> dict[str, Any]:
    """The service's /metrics, parsed: family name -> family."""
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


SHOWN = ("apl_events_applied_total", "apl_outbox_published_total", "apl_ready")


def _some_lines(families: dict[str, Any], per_family: int = 2) -> list[str]:
    """A few samples of the scrape, in the exposition format, for the log."""
    lines = []
    for family in families.values():
        for s in [s for s in family.samples if s.name in SHOWN][:per_family]:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{s.name}{{{labels}}} {s.value}")
    return lines


def _print_tree(spans: list[dict[str, str]], span: dict[str, str], indent: str) -> None:
    print(f"{indent}{span['service']}: {span['name']}")
    children = sorted(
        (s for s in spans if s["parent_id"] == span["span_id"]), key=lambda s: int(s["start"])
    )
    for child in children:
        _print_tree(spans, child, indent + "  ")


def _value(families: dict[str, Any], sample: str, **labels: str) -> float:
    """The sum of `sample`'s values whose labels include `labels`."""
    family = sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
    found = families.get(family) or families.get(sample)
    assert found is not None, f"{sample} is not exported"
    return sum(
        float(s.value)
        for s in found.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# -------------------------------------------------------------------------------- the test


async def test_one_story_is_counted_traced_and_logged_by_every_service(
    infra: Infra, stack: Any, otlp: _Spans, smtp: tuple[_Mail, int]
) -> None:
    topics, processes = stack
    mail, _ = smtp
    tokens = DevTokens(infra.auth_issuer)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with httpx.AsyncClient(base_url=processes["placements"].url, timeout=15) as api:
        placement = {
            "placement_id": "p-obs",
            "company_id": "c-000001",
            "region": REGION,
            "capacity": 1,
            "title": "Placement p-obs",
            "programmes": ["EE"],
            "starts_on": "2027-01-18",
            "ends_on": "2027-03-12",
            "supervisor": {"name": "Supervisor", "email": SUPERVISOR, "language": "sv"},
        }
        headers = {"Idempotency-Key": "p-obs"}
        await _call(
            api, tokens, "company", "POST", "/v1/placements", json=placement, headers=headers
        )
        student = {
            "student_id": "s-000001",
            "region": REGION,
            "programme": "EE",
            "preferences": ["p-obs"],
            "priority": 0,
            "name": "Student S1",
            "email": "s-000001@students.example.se",
        }
        await _call(
            api,
            tokens,
            COORDINATOR,
            "POST",
            "/v1/students/batch",
            json={"items": [student]},
            headers={"Idempotency-Key": "students"},
        )
        accepted = await _call(
            api,
            tokens,
            COORDINATOR,
            "POST",
            "/v1/rounds",
            json={"region": REGION},
            headers={"Idempotency-Key": "round", "traceparent": traceparent},
        )
        round_id = accepted.json()["round_id"]

        async def completed() -> bool:
            response = await api.get(f"/v1/rounds/{round_id}", auth=tokens.auth(COORDINATOR))
            return response.status_code == 200 and response.json()["status"] == "completed"

        await eventually(completed, wait=120, interval=0.3, what="the round completed")
    await eventually(
        lambda: SUPERVISOR in mail.recipients, wait=120, interval=0.3, what="the notice"
    )

    # A record that breaks the contract: the consumers dead-letter it.
    producer = infra.kafka.producer()
    await producer.start()
    try:
        await producer.send_and_wait(topics.name("apl.placements.v1"), b"not json", key=b"x")
    finally:
        await producer.stop()

    # ---- metrics: every service, parsed by the library's own parser
    async def dead_lettered() -> dict[str, Any] | None:
        families = await _scrape(processes["matching"])
        count = _value(
            families,
            "apl_events_dead_lettered_total",
            topic="apl.placements.v1",
            reason="contract",
        )
        return families if count >= 1 else None

    matching = await eventually(dead_lettered, wait=60, interval=0.5, what="a dead letter")
    placements = await _scrape(processes["placements"])
    notifications = await _scrape(processes["notifications"])
    every = {"placements": placements, "matching": matching, "notifications": notifications}
    for name, families in every.items():
        print(f"{name} /metrics (some lines):")
        for line in _some_lines(families):
            print(f"  {line}")
        for family in (
            "apl_events_consumed",
            "apl_event_handler_duration_seconds",
            "apl_outbox_backlog_events",
            "apl_outbox_oldest_unsent_age_seconds",
            "apl_consumer_lag_records",
            "apl_http_requests",
            "apl_ready",
            "process_resident_memory_bytes",
        ):
            assert family in families, (name, family)
        assert _value(families, "apl_ready", check="database") == 1, name
        assert _value(families, "apl_ready", check="broker") == 1, name
        lag = families["apl_consumer_lag_records"].samples
        assert lag, f"{name}: no partition's lag"
        groups = {s.labels["group"] for s in lag}  # one per subscriber: <prefix><service>.<name>
        assert groups, name
        assert all(g.startswith(f"{topics.prefix}{name}.") for g in groups), groups
        assert all(s.value >= 0 for s in lag)

    assert (
        _value(placements, "apl_http_requests_total", route="/v1/rounds", status="202")
        + _value(placements, "apl_http_requests_total", route="/v1/rounds", status="201")
        >= 1
    ), sorted(
        {(s.labels["route"], s.labels["status"]) for s in placements["apl_http_requests"].samples}
    )
    routes = {s.labels["route"] for s in placements["apl_http_requests"].samples}
    assert "/v1/rounds/{round_id}" in routes, routes  # the template, not the path
    assert not [r for r in routes if round_id in r]
    assert _value(matching, "apl_events_applied_total", topic="apl.round-requests.v1") >= 1
    assert _value(matching, "apl_events_applied_total", topic="apl.placements.v1") >= 1
    assert _value(placements, "apl_outbox_published_total", topic="apl.round-requests.v1") >= 1
    assert _value(matching, "apl_outbox_published_total", topic="apl.matches.v1") >= 1
    assert _value(notifications, "apl_events_applied_total", topic="apl.matches.v1") >= 1
    assert (
        _value(matching, "apl_event_handler_duration_seconds_count", topic="apl.round-requests.v1")
        >= 1
    )
    for name, families in every.items():
        assert _value(families, "apl_outbox_backlog_events") >= 0, name

    # ---- traces: the coordinator's request, the round and the notice share one trace
    def story_spans() -> list[dict[str, str]] | None:
        spans = otlp.of_trace(trace_id)
        wanted = {
            ("apl-placements", "POST /v1/rounds"),
            ("apl-placements", "publish apl.round-requests.v1"),
            ("apl-matching", "process apl.round-requests.v1"),
            ("apl-matching", "publish apl.matches.v1"),
            ("apl-notifications", "process apl.matches.v1"),
            # the delivery worker reads the notice's row later and continues the stored trace
            ("apl-notifications", "deliver notice"),
            # and the NotificationDelivered that tells of it goes on in the same trace
            ("apl-notifications", "publish apl.notifications.v1"),
        }
        return spans if wanted <= {(s["service"], s["name"]) for s in spans} else None

    spans = await eventually(story_spans, wait=30, interval=0.3, what="the story's spans")
    assert spans is not None
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] not in ids]
    assert [(r["service"], r["name"]) for r in roots] == [("apl-placements", "POST /v1/rounds")], (
        spans
    )
    by_id = {s["span_id"]: s for s in spans}
    print(f"the story's trace {trace_id}:")
    _print_tree(spans, roots[0], "  ")
    deliveries = [s for s in spans if s["name"] == "deliver notice"]
    assert {
        (by_id[d["parent_id"]]["service"], by_id[d["parent_id"]]["name"]) for d in deliveries
    } == {("apl-notifications", "process apl.matches.v1")}, deliveries
    told = [s for s in spans if s["name"] == "publish apl.notifications.v1"]
    assert {by_id[s["parent_id"]]["name"] for s in told} == {"deliver notice"}, told

    # ---- logs: JSON lines only, and a message's handling carries its ids and the trace
    handled: list[dict[str, Any]] = []
    for name, process in processes.items():
        # tests/support/processes.py marks each start with a "=== start N ===" line of its own
        lines = [
            line
            for line in process.log_path.read_text().splitlines()
            if line.strip() and not line.startswith("=== start ")
        ]
        plain = [line for line in lines if not _json_object(line)]
        assert plain == [], f"{name}: lines that are not JSON"
        for record in map(json.loads, lines):
            assert record["service"] == name
            if record.get("trace_id") == trace_id and "event_id" in record:
                handled.append(record)
    assert handled, "no log line of the story's handling"
    matching_lines = [r for r in handled if r["service"] == "matching"]
    assert matching_lines
    assert all(r["region"] == REGION for r in handled)
    assert any(r.get("round_id") == round_id for r in matching_lines)
