"""`apl serve notifications`: migrations, then the service under uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from services.notifications.bootstrap import asyncapi_json, create_app, running
from services.notifications.settings import NotificationsSettings
from shared.http import run_service
from shared.logging import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="apl serve notifications", description="Run the notifications service."
    )
    parser.add_argument(
        "--write-asyncapi", metavar="PATH", help="write the AsyncAPI document and exit"
    )
    parser.add_argument("--host", help="listen address (default: APL_NOTIFICATIONS_HTTP_HOST)")
    parser.add_argument(
        "--port", type=int, help="listen port (default: APL_NOTIFICATIONS_HTTP_PORT)"
    )
    args = parser.parse_args(list(argv or []))
    if args.write_asyncapi:
        Path(args.write_asyncapi).write_text(asyncapi_json(), encoding="utf-8")
        return 0
    settings = NotificationsSettings.load()
    configure_logging("notifications", settings.log_level, json=settings.log_json)
    return run_service(running, create_app, settings, host=args.host, port=args.port)
