"""The send-time SSRF guard in the running notifications service (real Kafka and PostgreSQL):
a notice whose webhook resolves, or redirects, to an address the guard refuses fails at once
(NotificationFailed naming why, one attempt) and the address gets nothing; the allow-list of the
test service (127.0.0.1, where its receiver listens) is what lets the other webhook tests
deliver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response

from bench.notification_peers import serve_in_thread
from shared.contracts.events import NotificationDelivered, NotificationFailed
from shared.kafka import publish_event
from tests.integration.notifications.conftest import Peers, Running
from tests.integration.notifications.peers import context
from tests.support.fakes.notifications import confirmed

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def redirector() -> Iterator[str]:
    """Answers `POST /to?url=...` with a 307 to that URL."""
    api = FastAPI()

    @api.post("/to")
    async def to(url: str) -> Response:
        return Response(status_code=307, headers={"location": url})

    with serve_in_thread(api) as base:
        yield base


async def _notify(service: Running, peers: Peers, producer: Any, url: str) -> Any:
    pid, sid = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    peers.placements.contexts[(pid, sid)] = context(
        pid, sid, email=f"{pid}@company.example", webhook_url=url
    )
    event = confirmed(pid, sid)
    await publish_event(producer, service.topics, event)
    [outcome] = await service.watcher.wait_outcome(event.event_id)
    return outcome


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "private"),
        ("http://[::1]:{port}/hook/{name}", "loopback"),
        ("http://127.0.0.2:{port}/hook/{name}", "loopback"),
    ],
)
async def test_a_webhook_to_a_refused_address_fails_at_once(
    service: Running, peers: Peers, producer: Any, target: str, why: str
) -> None:
    name = f"guard-{uuid.uuid4().hex[:8]}"
    port = httpx.URL(peers.webhooks.url).port
    outcome = await _notify(service, peers, producer, target.format(port=port, name=name))
    assert isinstance(outcome, NotificationFailed)
    assert outcome.data.attempts == 1  # refused: never retried
    assert why in outcome.data.error
    assert not peers.webhooks.received[name]


async def test_each_redirect_is_checked_before_it_is_followed(
    service: Running, peers: Peers, producer: Any, redirector: str
) -> None:
    allowed, refused = f"guard-{uuid.uuid4().hex[:8]}", f"guard-{uuid.uuid4().hex[:8]}"
    port = httpx.URL(peers.webhooks.url).port
    to_allowed = f"{redirector}/to?url={peers.webhooks.url}/hook/{allowed}"
    outcome = await _notify(service, peers, producer, to_allowed)
    assert isinstance(outcome, NotificationDelivered)
    assert len(peers.webhooks.received[allowed]) == 1
    to_refused = f"{redirector}/to?url=http://127.0.0.2:{port}/hook/{refused}"
    outcome = await _notify(service, peers, producer, to_refused)
    assert isinstance(outcome, NotificationFailed)
    assert "loopback" in outcome.data.error
    assert not peers.webhooks.received[refused]
