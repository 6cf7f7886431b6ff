"""`apl demo`: the whole product on this machine, with a realistic sample round.

It starts what is missing (local Kafka, PostgreSQL and Keycloak, an SMTP sink with a web
inbox), runs the three services as separate processes signed in to the local issuer, submits a
generated data set through the placements HTTP API as each region's coordinator, asks for a round
per region, waits for them with a progress display, prints a per-region table and the notices
delivered, writes the same as a report, and leaves everything running until `apl demo --down`
(`make demo-down`), with the users to sign in with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=7000, help="students to generate")
    parser.add_argument("--seed", type=int, default=2027, help="seed of the generated data set")
    parser.add_argument("--down", action="store_true", help="stop what the demo started")
    parser.add_argument(
        "--keep-infra",
        action="store_true",
        help="with --down: leave Kafka, PostgreSQL and Keycloak running",
    )
    args = parser.parse_args(argv)
    from devtools.demo import run
    from devtools.localinfra import InfraError

    try:
        if args.down:
            return run.down(keep_infra=args.keep_infra)
        return run.demo(students=args.students, seed=args.seed)
    except (run.DemoError, InfraError) as exc:
        print(f"apl demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\napl demo: interrupted; `make demo-down` stops what was started", file=sys.stderr)
        return 130
