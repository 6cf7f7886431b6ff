"""`apl serve <service>`: run one service in this process."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib import import_module

SERVICES = {
    "placements": "services.placements.main",
    "matching": "services.matching.main",
    "notifications": "services.notifications.main",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl serve", description="Run one service.")
    parser.add_argument("service", choices=sorted(SERVICES))
    args, rest = parser.parse_known_args(argv)
    result: int = import_module(SERVICES[args.service]).main(rest)
    return result
