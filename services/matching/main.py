"""`apl serve matching`: migrate the schema, then serve the subscribers and HTTP under uvicorn."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog
import uvicorn

from services.matching.bootstrap import build_app
from services.matching.settings import MatchingServiceSettings
from shared.db import migrate
from shared.logging import configure_logging

MIGRATIONS = Path(__file__).parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl serve matching")
    parser.add_argument("--host", help="HTTP host (default: settings.http_host)")
    parser.add_argument("--port", type=int, help="HTTP port (default: settings.http_port)")
    args = parser.parse_args(list(argv or []))
    settings: MatchingServiceSettings = MatchingServiceSettings.load()
    configure_logging("matching", settings.log_level, settings.log_json)
    log = structlog.get_logger("services.matching")
    applied = asyncio.run(migrate(settings.database_url, settings.db_schema, MIGRATIONS))
    log.info("migrations applied", applied=applied, schema=settings.db_schema)
    app, _ = build_app(settings)
    uvicorn.run(
        app,
        host=args.host or settings.http_host,
        port=args.port or settings.http_port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=20,
    )
    return 0
