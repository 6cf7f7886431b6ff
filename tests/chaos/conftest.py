"""The chaos suite's own infrastructure, never the shared one other tests run against.

- `chaos`: a PostgreSQL cluster made by initdb in a temporary folder on a free port (as
  `apl infra up` makes and provisions `.local/pg`: `tests/support/postgres.py`), a Kafka
  cluster of three combined broker+controller nodes on free ports (replication factor 3,
  `min.insync.replicas=2`: `tests/support/cluster.py`), the SMTP sink, and the identity
  provider (the local Keycloak of `apl infra up`, or `APL_AUTH_ISSUER`).
- `stacks`: the services on it, a stack at a time (`tests/chaos/stack.py`).
- `ledger`: every trial's result; its summary line is printed at the end of the run (with
  xdist too: it travels in the reports' `user_properties`).

`APL_CHAOS_TRIALS` (default 2) is how many faulty trials `test_trials` runs, `APL_CHAOS_SEED`
the seed of the data set and of the faults (default: a random one, printed).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator

import pytest

from devtools import keycloak, localinfra
from tests.chaos.stack import ChaosInfra, Sink, Stack
from tests.chaos.trials import Ledger
from tests.support.cluster import private_cluster
from tests.support.postgres import PrivatePostgres

SUMMARY = "chaos summary"


def trials() -> int:
    return int(os.environ.get("APL_CHAOS_TRIALS", "2"))


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    return int(os.environ.get("APL_CHAOS_SEED", random.randrange(1_000_000)))


@pytest.fixture(scope="session")
async def chaos(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosInfra]:
    if os.environ.get("APL_TESTS_NO_INFRA"):
        pytest.fail(
            "the chaos suite runs its own PostgreSQL and Kafka, which the unit tier never starts"
        )
    folder = tmp_path_factory.mktemp("chaos")  # the services' logs and progress.log stay
    pg = PrivatePostgres()
    issuer = asyncio.to_thread(keycloak.ensure, localinfra.Paths(localinfra.project_root()))
    try:
        async with private_cluster(folder / "kafka") as kafka:
            await asyncio.to_thread(pg.start)
            sink = Sink()
            sink.start()
            try:
                yield ChaosInfra(pg, kafka, await issuer, folder, sink)
            finally:
                sink.stop()
    finally:
        await asyncio.to_thread(pg.stop)


class Stacks:
    """Stacks one after another: a new one when the current one has no region left."""

    def __init__(self, infra: ChaosInfra) -> None:
        self.infra = infra
        self.made: list[Stack] = []

    async def region(self) -> tuple[Stack, str]:
        current = self.made[-1] if self.made else None
        region = current.take_region() if current else None
        if current is None or region is None:
            if current is not None:
                await current.drop()
            current = Stack(self.infra, f"s{len(self.made) + 1}")
            self.made.append(current)
            await current.start()
            region = current.take_region()
            assert region is not None
        return current, region

    async def close(self) -> None:
        for stack in self.made:
            await stack.drop()


@pytest.fixture(scope="session")
async def stacks(chaos: ChaosInfra) -> AsyncIterator[Stacks]:
    made = Stacks(chaos)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture(scope="session")
def ledger(chaos_seed: int) -> Ledger:
    return Ledger(seed=chaos_seed)


# ------------------------------------------------------------------------------ the summary

_lines: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, value in report.user_properties:
        if name == SUMMARY and report.when == "call":
            _lines.extend(str(value).splitlines())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _lines:
        terminalreporter.section("chaos")
        for line in _lines:
            terminalreporter.write_line(line)
