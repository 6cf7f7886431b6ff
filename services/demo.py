"""`apl demo`: the sample round end to end (arrives with the deploy-and-demo issue)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    print(
        "apl demo: the end-to-end demo is not there yet; the services land first.\n"
        "Meanwhile: `apl infra up` starts Kafka and PostgreSQL, and `apl match --help` solves a "
        "round offline.",
        file=sys.stderr,
    )
    return 0
