"""`apl serve notifications`: migrations, then the service under uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from services.notifications.bootstrap import MIGRATIONS, asyncapi_document, build_app
from services.notifications.settings import NotifierSettings
from shared.db import migrate
from shared.logging import configure_logging, get_logger


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="apl serve notifications", description="Run the notifications service."
    )
    parser.add_argument(
        "--write-asyncapi", metavar="PATH", help="write the AsyncAPI document and exit"
    )
    args = parser.parse_args(list(argv or []))
    if args.write_asyncapi:
        Path(args.write_asyncapi).write_text(asyncapi_document(), encoding="utf-8")
        return 0
    settings: NotifierSettings = NotifierSettings.load()
    configure_logging("notifications", settings.log_level, settings.log_json)
    log = get_logger(__name__)
    applied = asyncio.run(migrate(settings.database_url, settings.db_schema, MIGRATIONS))
    log.info("migrations applied", applied=applied, schema=settings.db_schema)
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve())
    log.info("stopped")
    return 0
