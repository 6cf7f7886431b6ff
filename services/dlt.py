"""`apl dlt list|replay`: read a dead-letter topic and publish its records again.

A consumer's `EventPolicy` (`shared/kafka.py`) sends a record it could not apply to
`<topic>.dlt` with the original bytes, key and headers, and adds `x-error`, `x-original-topic`
(the full name, prefix included), `x-original-partition`, `x-original-offset`,
`x-consumer-group` and `x-attempts`.

- `apl dlt list apl.matches.v1` shows every record of `apl.matches.v1.dlt` (under
  `APL_TOPIC_PREFIX`): partition and offset, key, event type and id, the consumer group that gave
  up, its attempts and the error. `--json` prints one JSON object per line instead.
- `apl dlt replay apl.matches.v1 --partition 3 --offset 17` publishes that record to its
  original topic (`x-original-topic`) with its key, its payload and its own headers (`event-type`,
  `event-id`, `traceparent`, ...), the `x-*` ones replaced by `x-replayed-from`
  (`<dlt>:<partition>:<offset>`); `--all` replays every record. Every consumer group of the
  original topic then sees the event again: a group that had applied it drops it in its inbox,
  the group that dead-lettered it applies it now (or dead-letters it again, if the cause is not
  fixed: a record that breaks the contract always is).

The broker comes from `APL_KAFKA_BOOTSTRAP` (or `.local/apl.env`, as the services read it) or
`--bootstrap`, and the command connects as the admin principal (`APL_KAFKA_ADMIN_USERNAME`,
`APL_KAFKA_ADMIN_PASSWORD` or `..._FILE`, and `APL_KAFKA_SECURITY_PROTOCOL`): it reads
dead-letter topics and writes every contract topic, which no service's principal may. The prefix
comes from `APL_TOPIC_PREFIX` or `--prefix`. The dead-letter topic is read without a consumer
group, from its beginning to the end it had when the command started: nothing is committed, and
listing never changes what replay finds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from shared.contracts.topics import DLT_SUFFIX, dlt
from shared.kafka_client import KafkaConnection
from shared.settings import KafkaAdminSettings, ServiceSettings

REPLAYED_FROM = "x-replayed-from"
DLT_HEADERS = frozenset(
    {
        "x-error",
        "x-error-type",
        "x-original-topic",
        "x-original-partition",
        "x-original-offset",
        "x-consumer-group",
        "x-attempts",
        REPLAYED_FROM,
    }
)


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, as `list` shows it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    event_type: str | None
    event_id: str | None
    error: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    consumer_group: str | None
    attempts: int | None
    value: bytes
    raw_key: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def where(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def summary(self) -> dict[str, Any]:
        """What `list --json` prints: everything but the payload and raw headers."""
        shown = asdict(self)
        del shown["value"], shown["raw_key"], shown["headers"]
        return shown

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original record's headers, without the dead letter's own, and where it came from."""
        kept = [(k, v) for k, v in self.headers if k not in DLT_HEADERS]
        return [*kept, (REPLAYED_FROM, self.where.encode())]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _from_payload(value: bytes) -> dict[str, Any]:
    """The event's envelope, when the payload is a JSON object (a contract breaker may not be)."""
    try:
        parsed = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def dead_letter(record: Any) -> DeadLetter:
    headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
    text = {k: v.decode("utf-8", "replace") for k, v in headers}
    value = bytes(record.value or b"")
    envelope = _from_payload(value) if "event-type" not in text else {}
    event_type = text.get("event-type") or envelope.get("type")
    event_id = text.get("event-id") or envelope.get("event_id")
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        event_type=str(event_type) if event_type is not None else None,
        event_id=str(event_id) if event_id is not None else None,
        error=text.get("x-error"),
        original_topic=text.get("x-original-topic"),
        original_partition=_int(text.get("x-original-partition")),
        original_offset=_int(text.get("x-original-offset")),
        consumer_group=text.get("x-consumer-group"),
        attempts=_int(text.get("x-attempts")),
        value=value,
        raw_key=bytes(record.key) if record.key is not None else None,
        headers=headers,
    )


def dlt_name(topic: str, prefix: str) -> str:
    """The dead-letter topic for `topic`: a contract name (`apl.matches.v1`) or a dead-letter
    name (`apl.matches.v1.dlt`), with or without the prefix."""
    name = topic if topic.startswith(prefix) else f"{prefix}{topic}"
    return name if name.endswith(DLT_SUFFIX) else dlt(name)


async def read(kafka: KafkaConnection, topic: str, *, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every record of the dead-letter topic `topic`, from its beginning to its end now."""
    partitions = await _partitions(kafka, topic)
    consumer = kafka.consumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        starts = await consumer.beginning_offsets(assigned)
        remaining = {tp for tp in assigned if ends[tp] > starts[tp]}
        for tp in remaining:
            consumer.seek(tp, starts[tp])
        found: list[DeadLetter] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while remaining:
            if loop.time() > deadline:
                raise TimeoutError(f"{topic}: not read to its end in {timeout_s:g} s")
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                found += [dead_letter(r) for r in records if r.offset < ends[tp]]
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return sorted(found, key=lambda d: (d.partition, d.offset))
    finally:
        await consumer.stop()


async def _partitions(kafka: KafkaConnection, topic: str) -> list[int]:
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [p["partition"] for d in described if not d["error_code"] for p in d["partitions"]]
    if not partitions:
        raise LookupError(f"no topic {topic!r} on {kafka.bootstrap}")
    return partitions


async def replay(
    kafka: KafkaConnection, letters: Sequence[DeadLetter]
) -> list[tuple[DeadLetter, str]]:
    """Publish each dead letter to its original topic; return (letter, topic) per record sent.
    Raises ValueError, sending nothing, if a letter does not say where it came from."""
    unknown = [d.where for d in letters if not d.original_topic]
    if unknown:
        raise ValueError(f"no x-original-topic header on {', '.join(unknown)}")
    producer = kafka.producer(enable_idempotence=True, acks="all")
    await producer.start()
    sent: list[tuple[DeadLetter, str]] = []
    try:
        for letter in letters:
            target = letter.original_topic or ""  # each has one: checked above
            await producer.send_and_wait(
                target, letter.value, key=letter.raw_key, headers=letter.replay_headers()
            )
            sent.append((letter, target))
    finally:
        await producer.stop()
    return sent


# ------------------------------------------------------------------------------------ command


def _line(d: DeadLetter) -> str:
    what = f"{d.event_type or '?'} {d.event_id or '?'}"
    origin = (
        f"from {d.original_topic}:{d.original_partition}:{d.original_offset}"
        if d.original_topic
        else "from ?"
    )
    by = f"group {d.consumer_group or '?'} after {d.attempts or '?'} attempt(s)"
    return (
        f"{d.partition}:{d.offset}  key={d.key or '-'}  {what}  {origin}  {by}\n"
        f"    error: {d.error or '(none recorded)'}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apl dlt",
        description="Read a dead-letter topic (<topic>.dlt) and publish records again.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "topic", help="a contract topic (apl.matches.v1) or its dead-letter twin (...dlt)"
        )
        sub.add_argument("--bootstrap", help="Kafka bootstrap servers (APL_KAFKA_BOOTSTRAP)")
        sub.add_argument(
            "--prefix", help="the topic prefix (APL_TOPIC_PREFIX; empty in production)"
        )

    listing = commands.add_parser("list", help="show the records of a dead-letter topic")
    common(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per record")
    again = commands.add_parser("replay", help="publish records again to their original topic")
    common(again)
    again.add_argument("--partition", type=int, help="the dead letter's partition")
    again.add_argument("--offset", type=int, help="the dead letter's offset")
    again.add_argument("--all", action="store_true", help="every record of the topic")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and args.all == (
        args.partition is not None or args.offset is not None
    ):
        parser.error("replay takes either --partition and --offset, or --all")
    if (
        args.command == "replay"
        and not args.all
        and (args.partition is None or args.offset is None)
    ):
        parser.error("replay of one record needs both --partition and --offset")
    given = {"kafka_bootstrap": args.bootstrap} if args.bootstrap else {}
    kafka = KafkaAdminSettings.load(**given).kafka
    prefix = ServiceSettings.load().topic_prefix if args.prefix is None else args.prefix
    topic = dlt_name(args.topic, prefix)
    try:
        letters = asyncio.run(read(kafka, topic))
        if args.command == "list":
            for letter in letters:
                print(json.dumps(letter.summary()) if args.json else _line(letter))
            if not args.json:
                print(f"{len(letters)} dead letter(s) in {topic}")
            return 0
        chosen = [
            d
            for d in letters
            if args.all or (d.partition == args.partition and d.offset == args.offset)
        ]
        if not chosen:
            print(
                f"apl dlt replay: no record {args.partition}:{args.offset} in {topic}",
                file=sys.stderr,
            )
            return 1
        for letter, target in asyncio.run(replay(kafka, chosen)):
            what = f"{letter.event_type or '?'} {letter.event_id or '?'}"
            print(f"replayed {letter.where} ({what}) to {target}")
    except (LookupError, ValueError, TimeoutError, KafkaError) as exc:
        print(f"apl dlt {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
