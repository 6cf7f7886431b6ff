"""The matching service's composition root: settings, pool, broker, relay, handlers, app."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from services.matching import handlers
from services.matching.adapters import repository as repo
from services.matching.adapters.engine import engine_solver, warm_up
from services.matching.auto import AutoRounds
from services.matching.domain.model import Solver
from services.matching.settings import MatchingServiceSettings
from shared.contracts import events as ev
from shared.contracts.topics import Topics
from shared.db import create_pool
from shared.kafka import EventConsumer, make_broker
from shared.outbox import OutboxRelay

log = structlog.get_logger(__name__)


@dataclass
class Matching:
    """Everything the subscribers call, wired once. `pool` exists between start() and stop()."""

    settings: MatchingServiceSettings
    broker: KafkaBroker
    solver: Solver
    consumer: EventConsumer
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    auto: AutoRounds | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)

    @property
    def topics(self) -> Topics:
        return self.settings.topics

    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ConnectionError("matching service is not started (no database pool)")
        return self.pool

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        s = self.settings
        self.pool = await create_pool(
            s.database_url, s.db_schema, min_size=s.pool_min_size, max_size=s.pool_max_size
        )
        self.relay = OutboxRelay(
            s.database_url,
            s.db_schema,
            self.broker,
            self.topics,
            batch=s.outbox_batch,
            poll_seconds=s.outbox_poll_seconds,
        )
        self._tasks.append(asyncio.create_task(self.relay.run()))
        if self.solver is engine_solver:
            self._tasks.append(asyncio.create_task(self._warm_up()))
        self.auto = AutoRounds(
            run=self.automatic_round,
            is_automatic=s.is_automatic,
            delay=s.auto_round_delay_seconds,
        )
        # Regions changed before a crash or restart still get their automatic round.
        async with self.pool.acquire() as conn:
            self.auto.touch(await repo.changed_regions(conn))

    async def _warm_up(self) -> None:
        """Load the engine's compiled kernel beside the event loop. A round that starts first
        runs the interpreted kernel (same result, slower), or, if it is large enough to want the
        compiled one (engine/ssp.py, JIT_MIN_ARCS), waits for this load to finish."""
        started = time.perf_counter()
        try:
            await asyncio.to_thread(warm_up)
        except Exception:
            log.exception("matching kernel not loaded; rounds use the interpreted kernel")
            return
        log.info("matching kernel loaded", seconds=round(time.perf_counter() - started, 2))

    async def stop(self) -> None:
        if self.auto is not None:
            await self.auto.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def ready(self) -> bool:
        if self.pool is None:
            return False
        try:
            async with asyncio.timeout(3):
                await self.pool.fetchval("SELECT 1")
            return bool(await self.broker.ping(timeout=3.0))
        except Exception:
            return False

    # ------------------------------------------------------------------ handlers

    def _changed(self, regions: Iterable[str]) -> None:
        if self.auto is not None:
            self.auto.touch(regions)

    async def on_placement(self, event: ev.Event) -> None:
        s = self.settings
        changed = await handlers.apply_placement_event(
            event,
            pool=self._pool(),
            automatic=s.is_automatic,
            any_automatic=bool(s.auto_regions.strip()),
        )
        self._changed(changed)

    async def on_student(self, event: ev.Event) -> None:
        changed = await handlers.apply_student_event(
            event, pool=self._pool(), automatic=self.settings.is_automatic
        )
        self._changed(changed)

    async def on_match(self, event: ev.Event) -> None:
        changed = await handlers.respond_to_match(
            event, pool=self._pool(), automatic=self.settings.is_automatic
        )
        self._changed(changed)

    async def on_dead_letter(self, event: ev.Event) -> None:
        await handlers.record_dead_input(event, pool=self._pool())

    async def on_round(self, event: ev.Event) -> None:
        await handlers.handle_round_request(
            event,
            pool=self._pool(),
            solver=self.solver,
            after_commit=self._pause_after_commit,
            before_commit=self._pause_before_commit,
        )

    async def automatic_round(self, region: str) -> None:
        await handlers.run_round(
            pool=self._pool(),
            solver=self.solver,
            region=region,
            round_id=uuid.uuid4(),
            only_if_changed=True,
        )

    async def _pause_after_commit(self) -> None:
        seconds = self.settings.test_pause_after_commit_seconds
        if seconds > 0:  # test-only hook, see MatchingServiceSettings
            log.warning("test pause after commit", seconds=seconds)
            await asyncio.sleep(seconds)

    async def _pause_before_commit(self) -> None:
        seconds = self.settings.test_pause_before_commit_seconds
        if seconds > 0:  # test-only hook, see MatchingServiceSettings
            log.warning("test pause before commit", seconds=seconds)
            await asyncio.sleep(seconds)


def build_service(settings: MatchingServiceSettings, solver: Solver = engine_solver) -> Matching:
    broker = make_broker(settings.kafka_bootstrap, f"{settings.topic_prefix}matching")
    consumer = EventConsumer(
        broker, settings.topics, group_id=settings.group_id, max_attempts=settings.max_attempts
    )
    service = Matching(settings=settings, broker=broker, solver=solver, consumer=consumer)
    consumer.on_dead_letter = service.on_dead_letter
    return service


def specification() -> AsyncAPI:
    return AsyncAPI(
        title="APL Match — matching service",
        version="1.0.0",
        description=(
            "Consumes placement, student, round-request and match-response events into its own "
            "read model; runs matching rounds per region; publishes proposals, confirmations, "
            "cancellations and round results through a transactional outbox."
        ),
    )


def build_app(
    settings: MatchingServiceSettings, solver: Solver = engine_solver
) -> tuple[AsgiFastStream, Matching]:
    """The ASGI app (subscribers, /healthz, /readyz, AsyncAPI at /docs/asyncapi) and its service."""
    from services.matching.entrypoints import build_router

    service = build_service(settings, solver)
    service.broker.include_router(build_router(service))

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    @get(include_in_schema=False)
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b"ok", status_code=200)

    @get(include_in_schema=False)
    async def readyz(scope: Any) -> AsgiResponse:
        if await service.ready():
            return AsgiResponse(b"ready", status_code=200)
        return AsgiResponse(b"not ready", status_code=503)

    app = AsgiFastStream(
        service.broker,
        asgi_routes=[("/healthz", healthz), ("/readyz", readyz)],
        lifespan=lifespan,
        specification=specification(),
        asyncapi_path="/docs/asyncapi",
    )
    return app, service


def asyncapi_json(settings: MatchingServiceSettings | None = None) -> dict[str, Any]:
    """The AsyncAPI document of the production topology (no topic prefix)."""
    settings = settings or MatchingServiceSettings(
        kafka_bootstrap="kafka:9092", topic_prefix="", database_url="postgresql://unused/apl"
    )
    app, _ = build_app(settings)
    document: dict[str, Any] = app.schema.to_specification().to_jsonable()
    return document
