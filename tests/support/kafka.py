"""Reading topics back in tests: from the beginning, without a consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer


async def read_records(
    bootstrap: str, *topics: str, until: Callable[[list[Any]], bool], wait: float = 30.0
) -> list[Any]:
    """The records of `topics` from the beginning, read until `until(records)` holds or `wait`
    seconds have passed (then what was read so far; the caller's assertions say what is missing)."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not until(records) and loop.time() < deadline:
            for part in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records
