"""Composition root of the placements service: settings in, a FastAPI app out.

Nothing connects at import or at `create_app`; the lifespan opens the pool, starts the broker
(its subscribers) and the outbox relay, and closes them again in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker

from shared.contracts import events as ev
from shared.db import create_pool
from shared.kafka import make_broker
from shared.outbox import OutboxRelay
from shared.settings import PlacementsSettings

from .adapters.postgres import init_connection
from .entrypoints import problems
from .entrypoints.http import internal_router, router
from .entrypoints.subscribers import build_router
from .handlers import PlacementsService

VERSION = "1.0.0"


@dataclass
class Runtime:
    """What the lifespan built; `app.state.runtime` in a running app."""

    settings: PlacementsSettings
    broker: KafkaBroker
    service: PlacementsService | None = None
    relay: OutboxRelay | None = None
    relay_task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def apply(self, event: ev.Event) -> object:
        if self.service is None:
            raise ConnectionError("the placements service is not started")
        return await self.service.apply_event(event)


def create_app(settings: PlacementsSettings) -> FastAPI:
    broker = make_broker(settings.kafka_bootstrap, client_id="placements")
    runtime = Runtime(settings, broker)
    broker.include_router(build_router(broker, settings.topics, runtime.apply))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            settings.db_schema,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            init=init_connection,
        )
        try:
            runtime.service = PlacementsService(pool)
            app.state.service = runtime.service
            await broker.start()
            runtime.relay = OutboxRelay(
                settings.database_url,
                settings.db_schema,
                broker,
                settings.topics,
                batch=settings.outbox_batch,
                poll_seconds=settings.outbox_poll_seconds,
            )
            runtime.relay_task = asyncio.create_task(runtime.relay.run(), name="outbox-relay")
            try:
                yield
            finally:
                runtime.relay_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runtime.relay_task
                await broker.stop()
        finally:
            runtime.service = None
            await pool.close()

    app = FastAPI(
        title="APL Match — placements",
        version=VERSION,
        description=(
            "The front door of APL Match: companies post placements, students register and rank "
            "them, coordinators run matching rounds. Errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.add_middleware(problems.BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(router)
    app.include_router(internal_router(settings.internal_token))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """Ready: the broker answers and the database runs `SELECT 1`."""
        checks = {"broker": False, "database": False}
        with contextlib.suppress(Exception):
            checks["broker"] = await broker.ping(timeout=2.0)
        with contextlib.suppress(Exception):
            if runtime.service is not None:
                checks["database"] = await asyncio.wait_for(runtime.service.ready(), 2.0)
        if all(checks.values()):
            return JSONResponse({"status": "ready", **checks})
        return problems.problem(
            503,
            "Not ready",
            ", ".join(name for name, ok in checks.items() if not ok) + " unavailable",
        )

    return app
