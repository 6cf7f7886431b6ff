"""What a trial must leave behind, checked from the databases, the topics and the SMTP sink.

Topic names come from the contract (`ALL_TOPICS`, `ACCESS`) and the outbox rows (each row
names the topic its event goes to), never written out here: the topic layout may change.

`settle` waits until nothing more can happen (outboxes drained, every group caught up, no
notice pending); `check` then returns the trial's `Findings`: each problem in words, and the
counts of lost and duplicated things.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from services.notifications.domain.notices import message_id
from shared.contracts.topics import ACCESS, dlt, subscriber_name
from shared.kafka_client import KafkaConnection
from tests.chaos.stack import SERVICES, Mail, Stack
from tests.chaos.story import Story

STANDING = ("proposed", "accepted", "confirmed")
"""Match states that hold a slot (the placements service's; matching has no `accepted`)."""


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    type: str
    data: dict[str, Any]


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    notice_duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    """What is worth telling but no problem (a notice sent twice: its bound is asserted by
    `test_notices_are_repeated_at_most_once_per_kill`)."""
    republished: int = 0
    """Outbox rows on their topic more than once: a relay killed between the broker's ack and
    its mark publishes them again (at-least-once, by design: every consumer's inbox drops the
    repeat). Counted, not a problem."""

    def lose(self, what: str, n: int = 1) -> None:
        self.lost += n
        self.problems.append(f"lost: {what}")

    def duplicate(self, what: str, n: int = 1) -> None:
        self.duplicated += n
        self.problems.append(f"duplicated: {what}")

    def wrong(self, what: str) -> None:
        self.problems.append(what)


@dataclass(frozen=True)
class Outcome:
    """What an undisturbed run ended with, to compare a trial against."""

    final: dict[str, tuple[str, str] | None]
    notices: Counter[tuple[str, str]]
    """(recipient, subject) of each distinct Message-ID, without the trial's tag."""


# --------------------------------------------------------------------------- reading topics


async def partitions_of(kafka: KafkaConnection, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`, as the cluster describes them."""
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def read_topics(kafka: KafkaConnection, topics: Iterable[str]) -> list[Record]:
    """Every record of `topics` from the beginning to the end offsets of now, without a
    consumer group."""
    partitions = await partitions_of(kafka, topics)
    consumer = kafka.consumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in partitions if ends[tp] > starts[tp]}
        got: Counter[TopicPartition] = Counter()
        records: list[Record] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, items in batch.items():
                got[tp] += sum(r.offset < ends[tp] for r in items)
                records += [_record(r) for r in items if r.offset < ends[tp]]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        short = {
            str(tp): (got[tp], ends[tp] - starts[tp])
            for tp in partitions
            if got[tp] != ends[tp] - starts[tp]
        }
        if pending or short:
            raise AssertionError(f"could not read every record: {short or pending}")
        return records
    finally:
        await consumer.stop()


def _record(raw: Any) -> Record:
    try:
        envelope = json.loads(raw.value)
    except (TypeError, ValueError):
        envelope = {}
    return Record(
        raw.topic,
        raw.partition,
        raw.offset,
        (raw.key or b"").decode("utf-8", "replace"),
        str(envelope.get("event_id", "")),
        str(envelope.get("type", "")),
        envelope.get("data") or {},
    )


async def lags(kafka: KafkaConnection, groups: dict[str, list[str]]) -> dict[str, int]:
    """For each consumer group, how many records of its topics it has not committed yet (a
    partition it never committed counts from its beginning)."""
    every = await partitions_of(kafka, {t for topics in groups.values() for t in topics})
    admin = kafka.admin()
    consumer = kafka.consumer(group_id=None)
    await admin.start()
    await consumer.start()
    try:
        ends = await consumer.end_offsets(every)
        starts = await consumer.beginning_offsets(every)
        found: dict[str, int] = {}
        for group, topics in groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            lag = 0
            for tp in every:
                if tp.topic not in topics:
                    continue
                meta = committed.get(tp)
                position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                lag += ends[tp] - position
            found[group] = lag
        return found
    finally:
        await consumer.stop()
        await admin.close()


def consumed_by(stack: Stack, service: str | None = None) -> dict[str, list[str]]:
    """Each consumer group (of every service, or of one) and the (prefixed) topic it consumes
    (`ACCESS`): a subscriber's group is `<prefix><service>.<subscriber>`, its subscriber
    named after its topic (`subscriber_name`)."""
    return {
        f"{stack.topics.prefix}{a.service}.{subscriber_name(t)}": [stack.topics.name(t)]
        for a in ACCESS
        if service in (None, a.service)
        for t in a.consumes
    }


# ---------------------------------------------------------------------------- settling


async def unsent(stack: Stack, service: str | None = None) -> int:
    """Outbox rows not yet published, of one service's schema or of all three."""
    async with stack.connect() as conn:
        total = 0
        for schema in [service] if service else SERVICES:
            total += int(
                await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")  # noqa: S608
            )
        return total


async def open_notices(stack: Stack, region: str | None = None, *, due: bool = False) -> int:
    """Notices pending or grouped (of `region`; `due`: only those due now)."""
    async with stack.connect() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notifications.deliveries "
                "WHERE status IN ('pending', 'grouped') AND ($1::text IS NULL OR region = $1) "
                "AND (NOT $2 OR next_attempt_at <= now())",
                region,
                due,
            )
        )


async def settle(stack: Stack, region: str, wait: float = 150.0) -> str:
    """Wait until nothing more can happen: every outbox drained, every group caught up, no
    notice of `region` open; twice in a row. Returns "" or what was still going on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    quiet = 0
    state = ""
    while loop.time() < deadline:
        try:
            backlog = await unsent(stack)
            behind = {
                g: n
                for g, n in (await lags(stack.infra.kafka.admin, consumed_by(stack))).items()
                if n
            }
            notices = await open_notices(stack, region)
        except Exception as error:  # a store or broker still coming back
            state = f"not readable: {error!r}"
            quiet = 0
            await asyncio.sleep(1.0)
            continue
        state = f"outbox backlog {backlog}, lag {behind or 0}, open notices {notices}"
        quiet = quiet + 1 if not (backlog or behind or notices) else 0
        if quiet >= 2:
            return ""
        await asyncio.sleep(0.5)
    return state


# ------------------------------------------------------------------------------ checking


def of_region(records: list[Record], region: str) -> list[Record]:
    return [r for r in records if r.key == region]


def notices_of(story: Story, mails: list[Mail]) -> Counter[tuple[str, str]]:
    """The story's notices: (recipient, subject) of each distinct Message-ID, untagged."""
    first: dict[str, Mail] = {}
    for mail in mails:
        if story.tag in mail.to:
            first.setdefault(mail.message_id, mail)
    return Counter((story.normalise(m.to), story.normalise(m.subject)) for m in first.values())


async def check(
    stack: Stack, story: Story, mails: list[Mail], reference: Outcome | None
) -> Findings:
    """Every check of a trial (see the module's description)."""
    found = Findings()
    records = await read_topics(stack.infra.kafka.admin, stack.topic_names())
    mine = of_region(records, story.region)
    async with stack.connect() as conn:
        await _rounds(conn, story, mine, found)
        await _capacity(conn, story, found)
        await _writes(conn, stack, story, mine, found)
        await _relayed(conn, stack, story, mine, found)
        await _notices(conn, story, mails, found)
    dead = of_region(
        await read_topics(stack.infra.kafka.admin, [dlt(t) for t in stack.topic_names()]),
        story.region,
    )
    for record in dead:
        found.wrong(f"dead-lettered: {record.type} {record.event_id} from {record.topic}")
    if reference is not None:
        if story.final != reference.final:
            differ = sorted(k for k in reference.final if reference.final[k] != story.final.get(k))
            found.wrong(
                "final assignments differ from the undisturbed run's: "
                + "; ".join(f"{k}: {story.final.get(k)} != {reference.final[k]}" for k in differ)
            )
        notices = notices_of(story, mails)
        for notice, n in (reference.notices - notices).items():
            found.lose(f"notice {notice} (the undisturbed run sent it)", n)
        for notice, n in (notices - reference.notices).items():
            found.wrong(f"notice {notice} {n}x more than the undisturbed run sent")
    return found


async def _rounds(conn: Any, story: Story, records: list[Record], found: Findings) -> None:
    """Every requested round completed once: one completion event (by event id) on the
    topics, one round in matching's read model, completed in the placements service's."""
    completions: dict[str, set[str]] = {}
    for r in records:
        if r.type == "MatchingRoundCompleted":
            completions.setdefault(str(r.data.get("round_id")), set()).add(r.event_id)
    for round_id in story.rounds:
        events = len(completions.get(round_id, ()))
        if events == 0:
            found.lose(f"round {round_id}: no MatchingRoundCompleted")
        elif events > 1:
            found.duplicate(f"round {round_id}: completed {events} times", events - 1)
        ran = await conn.fetchval(
            "SELECT count(*) FROM matching.rounds WHERE round_id = $1", uuid.UUID(round_id)
        )
        if ran != 1:
            found.wrong(f"round {round_id}: {ran} rows in matching.rounds")
        status = await conn.fetchval(
            "SELECT status FROM placements.rounds WHERE round_id = $1", uuid.UUID(round_id)
        )
        if status != "completed":
            found.wrong(f"round {round_id}: {status!r} in the placements service")


async def _capacity(conn: Any, story: Story, found: Findings) -> None:
    """No placement over capacity, no student with two live matches, in either read model."""
    capacity = {p["placement_id"]: p["capacity"] for p in story.placements()}
    for schema, column, states in (
        ("placements", "state", STANDING),
        ("matching", "status", ("proposed", "confirmed")),
    ):
        rows = await conn.fetch(
            f"SELECT student_id, placement_id FROM {schema}.matches "  # noqa: S608
            f"WHERE region = $1 AND {column} = ANY($2::text[])",
            story.region,
            list(states),
        )
        per_placement = Counter(r["placement_id"] for r in rows)
        for placement, n in per_placement.items():
            if n > capacity.get(placement, 0):
                found.wrong(f"{schema}: {placement} holds {n} > capacity {capacity[placement]}")
        for student, n in Counter(r["student_id"] for r in rows).items():
            if n > 1:
                found.wrong(f"{schema}: {student} has {n} live matches")


_EVENTS = {
    "placement": ("PlacementPosted", "placement_id"),
    "student": ("StudentRegistered", "student_id"),
    "round": ("MatchingRoundRequested", "round_id"),
    "accept": ("MatchAccepted", "match_id"),
    "decline": ("MatchDeclined", "match_id"),
}


async def _writes(
    conn: Any, stack: Stack, story: Story, records: list[Record], found: Findings
) -> None:
    """Every write the API accepted: its event in the placements service's outbox, on the
    topic that row names, and applied in matching's read model."""
    rows = await conn.fetch(
        "SELECT event_id::text, topic, event_type, payload FROM placements.outbox WHERE key = $1",
        story.region,
    )
    outbox: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for row in rows:
        data = json.loads(bytes(row["payload"])).get("data") or {}
        for attribute in ("placement_id", "student_id", "round_id", "match_id"):
            if attribute in data:
                key = (row["event_type"], attribute, str(data[attribute]))
                outbox.setdefault(key, []).append((row["event_id"], row["topic"]))
    on_topics = {(r.topic, r.event_id) for r in records}
    writable = {
        stack.topics.name(t) for a in ACCESS if a.service == "placements" for t in a.produces
    }
    for write in story.accepted:
        event_type, attribute = _EVENTS[write.kind]
        written = outbox.get((event_type, attribute, write.key), [])
        if not written:
            found.lose(f"{write.kind} {write.key}: accepted, but no {event_type} in the outbox")
            continue
        for event_id, topic in written:
            name = stack.topics.name(topic)
            if name not in writable:
                found.wrong(f"{event_type} {event_id} goes to {name}, not a placements topic")
            if (name, event_id) not in on_topics:
                found.lose(f"{write.kind} {write.key}: {event_type} {event_id} not on {name}")
    await _read_model(conn, story, found)


async def _read_model(conn: Any, story: Story, found: Findings) -> None:
    placements = {
        r["placement_id"]: r["capacity"]
        for r in await conn.fetch(
            "SELECT placement_id, capacity FROM matching.placements WHERE region = $1",
            story.region,
        )
    }
    for p in story.placements():
        if placements.get(p["placement_id"]) != p["capacity"]:
            found.lose(f"placement {p['placement_id']}: not in matching's read model as posted")
    students = {
        r["student_id"]
        for r in await conn.fetch(
            "SELECT student_id FROM matching.students WHERE region = $1 AND NOT withdrawn",
            story.region,
        )
    }
    for s in story.students():
        if s["student_id"] not in students:
            found.lose(f"student {s['student_id']}: not in matching's read model")
    matches = {
        str(r["match_id"]): r
        for r in await conn.fetch(
            "SELECT match_id, status, student_accepted, company_accepted FROM matching.matches "
            "WHERE region = $1",
            story.region,
        )
    }
    for write in story.accepted:
        if write.kind not in ("accept", "decline"):
            continue
        row = matches.get(write.key)
        if row is None:
            found.lose(f"{write.kind} {write.key}: no such match in matching's read model")
        elif write.kind == "decline" and row["status"] != "declined":
            found.lose(f"decline {write.key}: the match is {row['status']} in matching")
        elif write.kind == "accept" and not (
            row["status"] == "confirmed" or row[f"{write.by}_accepted"]
        ):
            found.lose(f"accept by {write.by} {write.key}: not applied by matching")


async def _relayed(
    conn: Any, stack: Stack, story: Story, records: list[Record], found: Findings
) -> None:
    """Every outbox row of the region, in each schema: marked sent and on its topic; a row
    published twice (a relay killed between ack and mark) is counted as republished."""
    seen = Counter((r.topic, r.event_id) for r in records)
    for schema in SERVICES:
        rows = await conn.fetch(
            f"SELECT event_id::text, topic, event_type, sent_at FROM {schema}.outbox "  # noqa: S608
            "WHERE key = $1",
            story.region,
        )
        for row in rows:
            name = stack.topics.name(row["topic"])
            copies = seen[(name, row["event_id"])]
            if row["sent_at"] is None:
                found.lose(f"{schema} outbox: {row['event_type']} {row['event_id']} never sent")
            elif copies == 0:
                found.lose(f"{schema} outbox: {row['event_type']} {row['event_id']} not on {name}")
            elif copies > 1:
                found.republished += copies - 1


async def _notices(conn: Any, story: Story, mails: list[Mail], found: Findings) -> None:
    """Every notice recorded for the region delivered, and exactly once: a second SMTP send
    of one Message-ID is a duplicate."""
    rows = await conn.fetch(
        "SELECT notification_id, kind, status, channel FROM notifications.deliveries "
        "WHERE region = $1",
        story.region,
    )
    sent = Counter(m.message_id for m in mails)
    known = set()
    for row in rows:
        mid = message_id(row["notification_id"])
        known.add(mid)
        if row["status"] != "delivered":
            found.wrong(f"notice {row['kind']} {row['notification_id']}: {row['status']}")
        if row["status"] in ("pending", "grouped") or row["channel"] not in (None, "email"):
            continue
        copies = sent[mid]
        if copies == 0 and row["status"] == "delivered":
            found.lose(f"notice {row['kind']} {mid}: delivered, but the sink has none")
        elif copies > 1:  # at-least-once by design; its bound is test_chaos's to check
            found.duplicated += copies - 1
            found.notice_duplicates += copies - 1
            found.notes.append(f"notice {row['kind']} {mid}: sent {copies} times")
    for mail in mails:
        if story.tag in mail.to and mail.message_id not in known:
            found.wrong(f"mail {mail.message_id} to {mail.to}: no notice of the region has it")
