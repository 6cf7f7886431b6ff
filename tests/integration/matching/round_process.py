"""Test-only: the matching service in its own OS process, stopping for good at one moment of its
first round, so that a crash test can SIGKILL it exactly there.

    python -m tests.integration.matching.round_process {before-commit|after-commit} SENTINEL

The service is the real one (`running(settings)` with the settings of the environment, served
by `shared.http.serve`) but for its round hooks (`SleepingHooks`): at the chosen moment a round
writes `<moment> <pid>` to SENTINEL and then sleeps. `before-commit` is inside the round's
transaction after all its writes; `after-commit` is after the commit, before the round
request's offset is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Literal

from services.matching.bootstrap import create_app, running
from services.matching.handlers import RoundHooks
from services.matching.settings import MatchingSettings
from shared.http import serve
from shared.logging import configure_logging

Moment = Literal["before-commit", "after-commit"]


class SleepingHooks(RoundHooks):
    """Round hooks that stop the round at `moment`: they touch `sentinel`, then sleep."""

    def __init__(self, moment: Moment, sentinel: Path, seconds: float = 3600.0) -> None:
        self.moment = moment
        self.sentinel = sentinel
        self.seconds = seconds

    async def _stop(self, moment: Moment) -> None:
        if moment != self.moment:
            return
        partial = self.sentinel.with_suffix(".partial")
        partial.write_text(f"{moment} {os.getpid()}\n", encoding="utf-8")
        partial.replace(self.sentinel)  # whole or not at all
        await asyncio.sleep(self.seconds)

    async def before_commit(self) -> None:
        await self._stop("before-commit")

    async def after_commit(self) -> None:
        await self._stop("after-commit")


def command(moment: Moment, sentinel: Path) -> tuple[str, ...]:
    """The `ServiceProcess.command` that runs this script."""
    return ("-m", "tests.integration.matching.round_process", moment, str(sentinel))


async def run(moment: Moment, sentinel: Path) -> None:
    settings = MatchingSettings.load()
    configure_logging("matching", settings.log_level, json=settings.log_json)
    async with running(settings, hooks=SleepingHooks(moment, sentinel)) as c:
        await serve(create_app(c), host=settings.http_host, port=settings.http_port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("moment", choices=["before-commit", "after-commit"])
    parser.add_argument("sentinel", type=Path)
    args = parser.parse_args()
    asyncio.run(run(args.moment, args.sentinel))


if __name__ == "__main__":
    main()
