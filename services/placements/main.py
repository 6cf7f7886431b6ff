"""`apl serve placements`: migrate the schema, then serve HTTP (and the consumers and outbox relay
that run in the same process) until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import structlog
import uvicorn

from shared.db import migrate
from shared.logging import configure_logging
from shared.settings import PlacementsSettings

from .bootstrap import create_app

MIGRATIONS = Path(__file__).parent / "migrations"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl serve placements")
    parser.add_argument("--host", help="listen address (default from settings)")
    parser.add_argument("--port", type=int, help="listen port (default from settings)")
    parser.add_argument("--no-migrate", action="store_true", help="skip the migrations")
    args = parser.parse_args(list(argv or []))
    settings: PlacementsSettings = PlacementsSettings.load()
    configure_logging("placements", settings.log_level, settings.log_json)
    log = structlog.get_logger("services.placements")
    if not args.no_migrate:
        applied = asyncio.run(migrate(settings.database_url, settings.db_schema, MIGRATIONS))
        log.info("migrations applied", applied=applied)
    config = uvicorn.Config(
        create_app(settings),
        host=args.host or settings.http_host,
        port=args.port or settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = _Server(config)
    server.run()
    return 0 if server.started else 1


class _Server(uvicorn.Server):
    """Uvicorn, except that a SIGTERM/SIGINT shutdown exits with status 0.

    Uvicorn already shuts down gracefully on those signals, but then re-raises the signal, so the
    process would die of it (status -15/143). This drops the captured signals (a private list of
    uvicorn.Server; re-check on upgrades). `test_process.py` asserts the 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()
