"""Reading topics back in tests: from the beginning, without a consumer group (as the admin
principal the caller passes, `infra.kafka`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from shared.kafka_client import KafkaConnection


async def read_records(
    kafka: KafkaConnection, *topics: str, until: Callable[[list[Any]], bool], wait: float = 30.0
) -> list[Any]:
    """The records of `topics` from the beginning, read until `until(records)` holds or `wait`
    seconds have passed (then what was read so far; the caller's assertions say what is missing)."""
    consumer = kafka.consumer(*topics, auto_offset_reset="earliest", group_id=None)
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


async def group_lag(kafka: KafkaConnection, group_id: str, topic: str) -> int:
    """How many records of `topic` the consumer group has not committed yet (a partition it never
    committed counts from its first offset)."""
    admin = kafka.admin()
    consumer = kafka.consumer(group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer.topics()  # metadata of the topic
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        lag = 0
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            lag += ends[tp] - position
        return lag
    finally:
        await consumer.stop()
        await admin.close()
