"""What every service's HTTP side shares: `/healthz`, `/readyz`, `/metrics`, the AsyncAPI
document, the request middleware (metrics and the SERVER span of each request), `serve()`.

Every service is a FastAPI app built by its composition root over a running container; `serve`
runs it under uvicorn until SIGTERM or SIGINT and returns, so the caller's `async with running()`
closes everything in order and the process exits with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any, TypeVar

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared import assets, tracing
from shared.metrics import CONTENT_TYPE, METRICS
from shared.settings import ServiceSettings

Check = Callable[[], Awaitable[bool]]
PUBLIC: dict[str, Any] = {"x-apl-access": "public"}
"""The access rule of the shared routes (services/placements/domain/policy.py): anyone."""
S = TypeVar("S", bound=ServiceSettings)
C = TypeVar("C")


def database_check(pool: asyncpg.Pool, timeout: float = 2.0) -> Check:
    async def check() -> bool:
        async with asyncio.timeout(timeout):
            return bool(await pool.fetchval("SELECT 1") == 1)

    return check


def broker_check(broker: KafkaBroker, timeout: float = 2.0) -> Check:
    async def check() -> bool:
        return bool(await broker.ping(timeout=timeout))

    return check


async def run_checks(checks: dict[str, Check]) -> dict[str, bool]:
    """Each check's result (an exception is a failure), also set on the `apl_ready` gauge."""
    results: dict[str, bool] = {}
    for name, check in checks.items():
        results[name] = False
        with contextlib.suppress(Exception):
            results[name] = await check()
        METRICS.ready.labels(name).set(1 if results[name] else 0)
    return results


def health_router(checks: dict[str, Check]) -> APIRouter:
    """`/healthz` (alive), `/readyz` (every check passes: the broker answers, `SELECT 1`) and
    `/metrics` (Prometheus text exposition, `shared.metrics`)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", openapi_extra=PUBLIC)
    async def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "Not ready"}}, openapi_extra=PUBLIC)
    async def readyz() -> JSONResponse:
        """Ready: the broker answers and the database runs `SELECT 1`."""
        results = await run_checks(checks)
        failed = [name for name, ok in results.items() if not ok]
        if not failed:
            return JSONResponse({"status": "ready", **results})
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Not ready",
                "status": 503,
                "detail": ", ".join(failed) + " unavailable",
                **results,
            },
            status_code=503,
            media_type="application/problem+json",
        )

    @router.get("/metrics", include_in_schema=False, openapi_extra=PUBLIC)
    async def metrics() -> Response:
        """The process's metrics; the readiness checks, the outbox backlog and the consumers'
        lag are sampled now."""
        await run_checks(checks)
        await METRICS.sample()
        return Response(METRICS.exposition(), media_type=CONTENT_TYPE)

    return router


UNMATCHED = "unmatched"
"""The route label of a request no route matched (a scan of random paths stays one series)."""

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/placements/{placement_id}`), never the path."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else UNMATCHED


class ObservedRequests:
    """ASGI middleware: each HTTP request counted in `apl_http_requests_total` and
    `apl_http_request_duration_seconds` by route template and status, and handled in the
    caller's trace context (`shared.tracing.continued`; FastAPI's own telemetry makes the SERVER
    span when tracing is on)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        status = 500  # unless a response starts

        async def sent(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")
        }
        started = time.perf_counter()
        with tracing.continued(headers):
            try:
                await self.app(scope, receive, sent)
            finally:
                route = route_template(scope)
                METRICS.http_requests.labels(method, route, str(status)).inc()
                METRICS.http_duration.labels(method, route).observe(time.perf_counter() - started)


def asyncapi_document(broker: KafkaBroker, *, title: str, description: str) -> dict[str, Any]:
    """The AsyncAPI 3 document of a broker's subscribers and publishers."""
    spec = AsyncAPI(broker, title=title, version="1.0.0", description=description)
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document


def asyncapi_router(document: Callable[[], dict[str, Any]]) -> APIRouter:
    """`/docs/asyncapi.json`: the service's AsyncAPI document."""
    router = APIRouter(tags=["docs"])

    @router.get("/docs/asyncapi.json", include_in_schema=False, openapi_extra=PUBLIC)
    async def asyncapi() -> dict[str, Any]:
        return document()

    return router


def service_app(
    *,
    title: str,
    description: str,
    version: str,
    checks: dict[str, Check],
    asyncapi: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with the shared health, documentation (served offline: `shared/assets.py`)
    and AsyncAPI routes; services add their own."""
    app = FastAPI(
        title=title, description=description, version=version, docs_url=None, redoc_url=None
    )
    app.include_router(health_router(checks))
    app.add_middleware(ObservedRequests)
    app.include_router(assets.assets_router())
    app.include_router(assets.docs_router(app, asyncapi=asyncapi is not None))
    if asyncapi is not None:
        app.include_router(asyncapi_router(asyncapi))
    assets.check_assets()
    return app


class _Server(uvicorn.Server):
    """Uvicorn, except that a SIGTERM/SIGINT shutdown returns instead of re-raising the signal.

    Uvicorn shuts down gracefully on those signals, then re-raises the signal once `serve()`
    returns, so the process would die of it (status 143) before the caller's clean-up ran. This
    drops the captured signals (a private list of uvicorn.Server; re-check on upgrades)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


async def serve(app: FastAPI, *, host: str, port: int, graceful_seconds: float = 20.0) -> bool:
    """Serve `app` until SIGTERM or SIGINT; True if it started (False: e.g. the port is taken)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(graceful_seconds),
    )
    server = _Server(config)
    await server.serve()
    return bool(server.started)


def run_service(
    running: Callable[[S], contextlib.AbstractAsyncContextManager[C]],
    create_app: Callable[[C], FastAPI],
    settings: S,
    *,
    host: str | None = None,
    port: int | None = None,
) -> int:
    """What every `main.py` does: open the container, serve its app until a signal, close it.
    Exit status 0 after a signal, 1 if the server could not start."""

    async def main() -> bool:
        async with running(settings) as container:
            app = create_app(container)
            # What start-up made (imports, pydantic's schemas, the app) lives as long as the
            # process: frozen out of the cyclic collector's reach, its full collections walk
            # only the objects made since (the matching service freezes again once its kernel
            # is loaded).
            gc.collect()
            gc.freeze()
            return await serve(
                app, host=host or settings.http_host, port=port or settings.http_port
            )

    tracing.configure_tracing(settings.service)
    METRICS.info.labels(settings.service, version()).set(1)
    try:
        return 0 if asyncio.run(main()) else 1
    finally:
        tracing.shutdown()


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("apl-match")
    except PackageNotFoundError:
        return "0+unknown"
