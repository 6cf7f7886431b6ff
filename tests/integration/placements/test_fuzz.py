"""A schemathesis fuzz run of the OpenAPI document against the real placements app: the service's
own composition root (`running`, real PostgreSQL and Kafka) served by uvicorn on a local port,
every request signed in with a test issuer's token, as the other API tests are.

Every operation of the committed document (docs/openapi.json, which tests/unit/placements/
test_openapi.py keeps equal to the app's) gets EXAMPLES generated requests in each of
schemathesis' modes, valid and invalid, with a fixed seed; no shrinking, so a run stays bounded in
time even when it finds something (about two minutes on the 2-core machine). No answer may be a
5xx, and every answer must match the document: its status code, content type, headers and body
schema; an invalid request must be refused.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.ports import free_port
from services.placements.bootstrap import create_app, running
from services.placements.settings import PlacementsSettings
from shared.contracts.topics import Topics
from tests.support.infra import Infra
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.infra

EXAMPLES = int(os.environ.get("APL_FUZZ_EXAMPLES", "10"))
"""Generated requests per operation and mode (`APL_FUZZ_EXAMPLES` for a longer run)."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
REGIONS = ["SE-AB", "SE-O", "FI-18"]


@dataclass
class LiveApp:
    url: str
    headers: dict[str, str]


def _serve(
    settings: PlacementsSettings, issuer: TestIssuer, port: int, up: threading.Event
) -> Callable[[], None]:
    """The app under uvicorn in a thread of its own (its own event loop, pool and broker);
    returns what stops it."""
    server = uvicorn.Server(
        uvicorn.Config(
            "", host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )

    async def main() -> None:
        async with running(settings, verifier=issuer.verifier()) as container:
            server.config.app = create_app(container)
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():  # noqa: ASYNC110  # uvicorn has no event
                await asyncio.sleep(0.05)
            up.set()
            await serving

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    return stop


@pytest.fixture(scope="module")
async def live_app(
    infra: Infra, database_url: str, make_topics: Callable[[], Awaitable[Topics]]
) -> AsyncIterator[LiveApp]:
    topics = await make_topics()
    settings = PlacementsSettings(
        **infra.kafka_settings("placements"),
        database_url=database_url,
        topic_prefix=topics.prefix,
        schema_name=f"fuzz_{uuid.uuid4().hex[:8]}",
        outbox_poll_seconds=0.05,
        kafka_session_timeout_ms=6000,
        environment="test",
    )
    issuer = TestIssuer()
    port = free_port()
    up = threading.Event()
    stop = _serve(settings, issuer, port, up)
    try:
        if not await asyncio.to_thread(up.wait, 90):
            raise TimeoutError("the placements app did not start")
        token = issuer.mint("coordinator", regions=REGIONS)
        yield LiveApp(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"})
    finally:
        await asyncio.to_thread(stop)


DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_path(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_5xx_or_an_answer_the_document_does_not_describe(
    case: Any, live_app: LiveApp
) -> None:
    case.call_and_validate(
        base_url=live_app.url, headers=live_app.headers, checks=CHECKS, timeout=30
    )
