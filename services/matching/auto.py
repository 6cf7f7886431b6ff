"""Automatic mode: a region's round runs by itself a few seconds after its input last changed.

Each replica debounces the regions whose events it applied (the replica that owns a region's
partition sees its changes). The round itself is safe anywhere: it takes the region's advisory
lock and runs only when the region's input version moved past its last round's
(`only_if_changed`), so two replicas that both schedule one run it once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


@dataclass
class AutoRounds:
    run: Callable[[str], Awaitable[object]]
    is_automatic: Callable[[str], bool]
    delay: float
    retry_delay: float = 5.0
    _timers: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _running: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def touch(self, regions: Iterable[str]) -> None:
        """The input of `regions` changed: (re)start their timers."""
        for region in regions:
            if not self.is_automatic(region):
                continue
            timer = self._timers.pop(region, None)
            if timer is not None:
                timer.cancel()  # only a sleeping timer is ever in _timers
            self._timers[region] = asyncio.create_task(self._after_delay(region, self.delay))

    async def _after_delay(self, region: str, delay: float) -> None:
        await asyncio.sleep(delay)
        me = asyncio.current_task()
        if self._timers.get(region) is me:
            del self._timers[region]
        assert me is not None
        self._running.add(me)
        try:
            await self.run(region)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("automatic round failed; trying again", region=region, exc_info=True)
            if region not in self._timers:
                self._timers[region] = asyncio.create_task(
                    self._after_delay(region, self.retry_delay)
                )
        finally:
            self._running.discard(me)

    async def close(self) -> None:
        tasks = [*self._timers.values(), *self._running]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._timers.clear()
