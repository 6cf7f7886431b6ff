"""Test-only: run the shared outbox relay in its own OS process, optionally stopping it for good
after the broker acknowledged a batch and before the rows are marked sent.

    python -m tests.integration.placements.relay_process DSN SCHEMA BOOTSTRAP PREFIX \
        [--hang-before-mark]

It connects as the placements service's principal (`APL_PLACEMENTS_KAFKA_USERNAME`,
`..._PASSWORD`, as the placements service's relay does). With `--hang-before-mark` it prints
`ACKED <n>` once a batch was acknowledged and then waits forever instead of marking, so the test
can SIGKILL it at exactly that point.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from services.placements.settings import PlacementsSettings
from shared.contracts.topics import Topics
from shared.kafka import make_broker
from shared.outbox import OutboxRelay


class _Relay(OutboxRelay):
    hang: bool = False

    async def _mark_sent(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        if self.hang:  # the broker acknowledged these rows; stop for good before marking them
            print(f"ACKED {len(ids)}", flush=True)
            await asyncio.Event().wait()
        await super()._mark_sent(conn, ids)


async def run(args: argparse.Namespace) -> None:
    kafka = PlacementsSettings.load(kafka_bootstrap=args.bootstrap).kafka
    broker = make_broker(kafka, "relay-process")
    relay = _Relay(args.dsn, args.schema, broker, Topics(args.prefix), batch=50, poll_seconds=0.05)
    relay.hang = args.hang_before_mark
    async with broker:
        await broker.connect()
        print("STARTED", flush=True)
        await relay.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("schema")
    parser.add_argument("bootstrap")
    parser.add_argument("prefix")
    parser.add_argument("--hang-before-mark", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
