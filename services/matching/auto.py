"""Automatic mode: a region's round runs by itself a few seconds after its input last changed.

Each replica debounces the regions whose events it applied (the replica that owns a region's
partition sees its changes). The round itself is safe anywhere: it takes the region's advisory
lock and runs only when the region's input version moved past its last round's
(`only_if_changed`), so two replicas that both schedule one run it once.

`running()` (bootstrap.py) runs `AutoRounds.run()` as a background task for the container's
lifetime and schedules, at start, the regions changed before the last stop or crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import structlog

log = structlog.get_logger(__name__)


@dataclass
class AutoRounds:
    run_round: Callable[[str], Awaitable[object]]
    is_automatic: Callable[[str], bool]
    delay: float
    retry_delay: float = 5.0
    _timers: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _running: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closed: bool = field(default=False, init=False)

    @property
    def idle(self) -> bool:
        """No round is scheduled or running: until the next `touch`, none will run."""
        return not self._timers and not self._running

    def touch(self, regions: Iterable[str]) -> None:
        """The input of `regions` changed: (re)start their timers."""
        if self._closed:
            return
        for region in regions:
            if not self.is_automatic(region):
                continue
            timer = self._timers.pop(region, None)
            if timer is not None:
                timer.cancel()  # only a sleeping timer is ever in _timers
            self._timers[region] = asyncio.create_task(self._after_delay(region, self.delay))

    async def _after_delay(self, region: str, delay: float) -> None:
        await asyncio.sleep(delay)
        me = cast(asyncio.Task[None], asyncio.current_task())  # always inside its own task
        if self._timers.get(region) is me:
            del self._timers[region]
        self._running.add(me)
        try:
            await self.run_round(region)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("automatic round failed; trying again", region=region, exc_info=True)
            if region not in self._timers and not self._closed:
                self._timers[region] = asyncio.create_task(
                    self._after_delay(region, self.retry_delay)
                )
        finally:
            self._running.discard(me)

    async def run(self) -> None:
        """Serve until cancelled; then cancel the scheduled and running rounds."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._timers.values(), *self._running]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._timers.clear()
