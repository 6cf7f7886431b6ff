"""`apl serve matching`: the running container (schema migrated), served until a signal."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from services.matching.bootstrap import MIGRATIONS, create_app, running
from services.matching.settings import MatchingSettings
from shared.http import run_service
from shared.logging import configure_logging

__all__ = ["MIGRATIONS", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl serve matching")
    parser.add_argument("--host", help="HTTP host (default: settings.http_host)")
    parser.add_argument("--port", type=int, help="HTTP port (default: settings.http_port)")
    args = parser.parse_args(list(argv or []))
    settings = MatchingSettings.load()
    configure_logging("matching", settings.log_level, json=settings.log_json)
    return run_service(running, create_app, settings, host=args.host, port=args.port)
