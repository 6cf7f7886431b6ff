"""`apl serve placements`: migrate the schema, then serve HTTP (and the consumers and the outbox
relay that run in the same process) until SIGTERM or SIGINT, then exit 0."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from shared.http import run_service
from shared.logging import configure_logging

from .bootstrap import create_app, running
from .settings import PlacementsSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl serve placements")
    parser.add_argument("--host", help="listen address (default from settings)")
    parser.add_argument("--port", type=int, help="listen port (default from settings)")
    parser.add_argument("--no-migrate", action="store_true", help="skip the migrations")
    args = parser.parse_args(list(argv or []))
    settings = PlacementsSettings.load()
    configure_logging("placements", settings.log_level, json=settings.log_json)
    run = functools.partial(running, migrate=not args.no_migrate)
    return run_service(run, create_app, settings, host=args.host, port=args.port)
