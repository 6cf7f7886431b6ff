"""Polling until something holds, for tests that watch other processes or the broker."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]], *, wait: float = ..., interval: float = ..., what: str = ...
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T], *, wait: float = ..., interval: float = ..., what: str = ...
) -> T: ...
async def eventually(
    check: Callable[[], Any],
    *,
    wait: float = 60.0,
    interval: float = 0.2,
    what: str = "a condition",
) -> Any:
    """Call `check` (plain or async) every `interval` seconds until it returns something truthy,
    and return that; raise AssertionError naming `what` after `wait` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        result = check()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {wait:g} s waiting for {what}")
        await asyncio.sleep(interval)
