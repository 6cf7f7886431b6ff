"""What the soak (`bench/soak.py`) reads back at the end to prove nothing was lost: every record
of every topic of the run, the services' own tables, the SMTP sink's messages and the services'
memory.

Topic names come from the contract (`shared.contracts.topics`: `Topics.all_with_dlt`, and
`ACCESS` for who consumes what), never spelled here, so a change of the topic layout is followed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import TopicPartition

from devtools.demo.mailsink import Store
from devtools.demo.run import KafkaProbe
from services.notifications.domain.notices import plan_notices
from shared.contracts.topics import ACCESS, DLT_SUFFIX, Topics, subscriber_name
from shared.kafka_client import KafkaConnection

NOTICE_SOURCES = frozenset(
    {
        "MatchProposed",
        "MatchConfirmed",
        "MatchCancelled",
        "MatchingRoundOutcomes",
        "SupplementaryRoundOpened",
    }
)
"""Event types that may ask for notices (`plan_notices` says which and to whom)."""
STANDING_PLACEMENTS = ("proposed", "accepted", "confirmed")
"""A standing match in the placements service (holds a slot)."""
STANDING_MATCHING = ("proposed", "confirmed")
"""A standing match in the matching service's read model."""


# ------------------------------------------------------------------------------------ kafka


@dataclass
class TopicRead:
    """Every record of a run's topics, as counted."""

    messages: dict[str, int] = field(default_factory=dict)
    """Prefixed topic -> records in it (its end offsets)."""
    types: dict[str, Counter[str]] = field(default_factory=dict)
    """Prefixed topic -> event type -> records."""
    event_ids: Counter[str] = field(default_factory=Counter)
    """Event id -> records carrying it (above 1: published again)."""
    completed: Counter[str] = field(default_factory=Counter)
    """Round id -> MatchingRoundCompleted records."""
    confirmed: Counter[str] = field(default_factory=Counter)
    """Match id -> MatchConfirmed events (distinct event ids)."""
    planned: dict[uuid.UUID, str] = field(default_factory=dict)
    """Notification id -> its kind, for every notice the events ask for."""
    delivered: Counter[uuid.UUID] = field(default_factory=Counter)
    """Notification id -> NotificationDelivered events (distinct event ids)."""
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    """Notification id -> the error of its NotificationFailed."""
    dead_letters: list[dict[str, str]] = field(default_factory=list)
    """A sample of dead letters: topic, type, `x-error`."""

    @property
    def dlt_total(self) -> int:
        return sum(n for t, n in self.messages.items() if t.endswith(DLT_SUFFIX))


async def partitions(kafka: KafkaConnection, names: Iterable[str]) -> list[TopicPartition]:
    admin = kafka.admin()
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], int(p["partition"])) for d in described for p in d["partitions"]
    ]


async def end_offsets(kafka: KafkaConnection, names: Iterable[str]) -> dict[str, int]:
    """Records ever written to each topic."""
    parts = await partitions(kafka, names)
    consumer = kafka.consumer()
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    totals: Counter[str] = Counter()
    for tp, end in ends.items():
        totals[tp.topic] += int(end)
    return dict(totals)


async def read_topics(kafka: KafkaConnection, topics: Topics, wait: float = 600.0) -> TopicRead:
    """Read every record of the run's topics from the beginning (as the admin)."""
    from shared.contracts.events import parse_event

    names = topics.all_with_dlt()
    parts = await partitions(kafka, names)
    consumer = kafka.consumer(
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    found = TopicRead()
    seen_delivered: set[str] = set()
    seen_confirmed: set[str] = set()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = {tp: int(e) for tp, e in (await consumer.end_offsets(parts)).items()}
        for tp, end in ends.items():
            found.messages[tp.topic] = found.messages.get(tp.topic, 0) + end
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + wait
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not read within {wait:.0f} s")
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    _count(found, topics, record, seen_delivered, seen_confirmed, parse_event)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


def _count(
    found: TopicRead,
    topics: Topics,
    record: Any,
    seen_delivered: set[str],
    seen_confirmed: set[str],
    parse_event: Any,
) -> None:
    name = str(record.topic)
    raw = bytes(record.value or b"")
    if name.endswith(DLT_SUFFIX):
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        found.types.setdefault(name, Counter())[headers.get("event-type", "?")] += 1
        if len(found.dead_letters) < 20:
            found.dead_letters.append(
                {
                    "topic": name,
                    "offset": str(record.offset),
                    "error": headers.get("x-error", "")[:300],
                    "value": raw[:200].decode(errors="replace"),
                }
            )
        return
    body = json.loads(raw)
    kind = str(body.get("type", "?"))
    event_id = str(body.get("event_id"))
    found.types.setdefault(name, Counter())[kind] += 1
    found.event_ids[event_id] += 1
    data = body.get("data") or {}
    if kind == "MatchingRoundCompleted":
        found.completed[str(data.get("round_id"))] += 1
    elif kind == "MatchConfirmed" and event_id not in seen_confirmed:
        seen_confirmed.add(event_id)
        found.confirmed[str(data.get("match_id"))] += 1
    elif kind == "NotificationDelivered" and event_id not in seen_delivered:
        seen_delivered.add(event_id)
        found.delivered[uuid.UUID(str(data["notification_id"]))] += 1
    elif kind == "NotificationFailed":
        found.failed[uuid.UUID(str(data["notification_id"]))] = str(data.get("error", ""))
    if kind in NOTICE_SOURCES:
        event = parse_event(topics.contract_topic(name), raw)
        for notice in plan_notices(event):
            found.planned[notice.notification_id] = notice.kind


def consumed_by(service: str, topics: Topics) -> list[str]:
    """The (prefixed) topics `service` consumes, from the contract's `ACCESS`."""
    for access in ACCESS:
        if access.service == service:
            return [topics.name(t) for t in access.consumes]
    raise KeyError(service)


class Probe(KafkaProbe):
    """The demo's probe (one admin client and one consumer as the admin principal, kept open
    for the waits), with each topic's partitions described once, and what each service's
    consumer groups have committed."""

    def __init__(self, kafka: KafkaConnection, topics: Topics) -> None:
        super().__init__(kafka)
        self.topics = topics
        self._parts: dict[str, list[TopicPartition]] = {}

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        names = list(topics)
        missing = [n for n in names if n not in self._parts]
        if missing:
            for d in await self.admin.describe_topics(missing):
                self._parts[d["topic"]] = [
                    TopicPartition(d["topic"], int(p["partition"])) for p in d["partitions"]
                ]
        return [tp for n in names for tp in self._parts[n]]

    async def ends(self, names: list[str]) -> dict[TopicPartition, int]:
        found = await self.consumer.end_offsets(await self.partitions(names))
        return {tp: int(end) for tp, end in found.items()}

    async def committed(self, service: str) -> dict[TopicPartition, int]:
        """What the service's consumer groups (one per subscriber, named after its topic:
        `<prefix><service>.<subscriber>`) have committed, on every topic it consumes."""
        [access] = [a for a in ACCESS if a.service == service]
        done: dict[TopicPartition, int] = {}
        for topic in access.consumes:
            group = f"{self.topics.prefix}{service}.{subscriber_name(topic)}"
            found = await self.admin.list_consumer_group_offsets(group)
            done |= {tp: int(m.offset) for tp, m in found.items() if m.offset >= 0}
        return done

    async def behind(self, service: str, marks: dict[TopicPartition, int]) -> int:
        """Records before `marks` that `service`'s group has not committed yet."""
        done = await self.committed(service)
        return sum(max(0, end - done.get(tp, 0)) for tp, end in marks.items())

    async def lags(self) -> dict[str, int]:
        """Records each service's group has not committed yet on the topics it consumes
        (`ACCESS`); a group without a commit counts everything."""
        found: dict[str, int] = {}
        for access in ACCESS:
            ends = await self.ends(consumed_by(access.service, self.topics))
            found[access.service] = await self.behind(access.service, ends)
        return found


# ------------------------------------------------------------------------------- database


async def unsent(conn: asyncpg.Connection, schemas: Iterable[str]) -> dict[str, int]:
    """Outbox rows not published yet, per service schema."""
    found = {}
    for schema in schemas:
        found[schema] = int(
            await conn.fetchval(
                f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL"  # noqa: S608
            )
        )
    return found


async def deliveries(conn: asyncpg.Connection) -> dict[str, int]:
    """The notifications service's delivery log by status."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM notifications.deliveries GROUP BY 1")
    return {str(r["status"]): int(r["n"]) for r in rows}


async def ids(conn: asyncpg.Connection, query: str) -> set[str]:
    return {str(r[0]) for r in await conn.fetch(query)}


async def over_capacity(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Placements holding more standing matches than their capacity, in each service."""
    placements = await conn.fetch(
        "SELECT m.placement_id, count(*) AS n, (p.offer->>'capacity')::int AS capacity "
        "FROM placements.matches m JOIN placements.placements p USING (placement_id) "
        "WHERE m.state = ANY($1::text[]) GROUP BY m.placement_id, p.offer "
        "HAVING count(*) > (p.offer->>'capacity')::int",
        list(STANDING_PLACEMENTS),
    )
    matching = await conn.fetch(
        "SELECT m.placement_id, count(*) AS n, p.capacity "
        "FROM matching.matches m JOIN matching.placements p USING (placement_id) "
        "WHERE m.status = ANY($1::text[]) GROUP BY m.placement_id, p.capacity "
        "HAVING count(*) > p.capacity",
        list(STANDING_MATCHING),
    )
    return {
        "placements": [f"{r['placement_id']} {r['n']}/{r['capacity']}" for r in placements],
        "matching": [f"{r['placement_id']} {r['n']}/{r['capacity']}" for r in matching],
    }


async def two_standing(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Students with more than one standing match, in each service."""
    placements = await ids(
        conn,
        "SELECT student_id FROM placements.matches WHERE state IN "
        "('proposed', 'accepted', 'confirmed') GROUP BY 1 HAVING count(*) > 1",
    )
    matching = await ids(
        conn,
        "SELECT student_id FROM matching.matches WHERE status IN ('proposed', 'confirmed') "
        "GROUP BY 1 HAVING count(*) > 1",
    )
    return {"placements": sorted(placements), "matching": sorted(matching)}


_AGREE = {
    "proposed": {"proposed", "accepted"},
    "confirmed": {"confirmed"},
    "declined": {"declined", "cancelled"},
    "cancelled": {"cancelled"},
}
"""The matching service's status of a match -> the placements service's states that agree (a
decline is `declined` there until matching's MatchCancelled, reason `declined`, makes it
`cancelled`; `declined_by` stays)."""


async def diverged(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Matches the two services see differently: missing on one side, another state, or other
    acceptances."""
    rows = await conn.fetch(
        "SELECT coalesce(a.match_id, b.match_id) AS match_id, a.status, a.student_accepted, "
        "a.company_accepted, b.state, b.accepted_by_student, b.accepted_by_company "
        "FROM matching.matches a FULL JOIN placements.matches b USING (match_id)"
    )
    missing_here: list[str] = []
    missing_there: list[str] = []
    other: list[str] = []
    for r in rows:
        if r["state"] is None:
            missing_here.append(str(r["match_id"]))
        elif r["status"] is None:
            missing_there.append(str(r["match_id"]))
        elif r["state"] not in _AGREE[str(r["status"])] or (
            r["status"] in ("proposed", "confirmed")
            and (
                r["student_accepted"] != r["accepted_by_student"]
                or r["company_accepted"] != r["accepted_by_company"]
            )
        ):
            other.append(
                f"{r['match_id']}: matching {r['status']} (student {r['student_accepted']}, "
                f"company {r['company_accepted']}), placements {r['state']} (student "
                f"{r['accepted_by_student']}, company {r['accepted_by_company']})"
            )
    return {
        "not_in_placements": missing_here,
        "not_in_matching": missing_there,
        "different": other,
    }


async def matches_by_id(
    conn: asyncpg.Connection, match_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Both services' rows of these matches, by id (`p_*`: placements, `m_*`: matching)."""
    rows = await conn.fetch(
        "SELECT b.match_id, b.student_id, b.placement_id, b.state AS p_state, "
        "b.accepted_by_student AS p_student, b.accepted_by_company AS p_company, "
        "b.declined_by AS p_declined_by, a.status AS m_status, a.student_accepted AS m_student, "
        "a.company_accepted AS m_company, "
        "EXISTS (SELECT 1 FROM matching.exclusions e WHERE e.student_id = b.student_id "
        "AND e.placement_id = b.placement_id) AS excluded "
        "FROM placements.matches b LEFT JOIN matching.matches a USING (match_id) "
        "WHERE b.match_id = ANY($1::uuid[])",
        list(match_ids),
    )
    return {r["match_id"]: dict(r) for r in rows}


async def repaired_pairs(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Declined (student, placement) pairs that were proposed again afterwards (an exclusion
    that did not hold), in either service."""
    students = [s for s, _ in pairs]
    places = [p for _, p in pairs]
    rows = await conn.fetch(
        "SELECT d.student_id, d.placement_id FROM unnest($1::text[], $2::text[]) "
        "AS d(student_id, placement_id) WHERE "
        "(SELECT count(*) FROM placements.matches m WHERE m.student_id = d.student_id "
        "AND m.placement_id = d.placement_id) > 1 OR "
        "(SELECT count(*) FROM matching.matches m WHERE m.student_id = d.student_id "
        "AND m.placement_id = d.placement_id) > 1",
        students,
        places,
    )
    return [f"{r['student_id']} at {r['placement_id']}" for r in rows]


async def preferences(
    conn: asyncpg.Connection, student_ids: Iterable[str]
) -> dict[str, tuple[list[str], list[str]]]:
    """Each student's preferences (placements' record, matching's read model)."""
    rows = await conn.fetch(
        "SELECT b.student_id, b.profile->'preferences' AS p, a.profile->'preferences' AS m "
        "FROM placements.students b LEFT JOIN matching.students a USING (student_id) "
        "WHERE b.student_id = ANY($1::text[])",
        list(student_ids),
    )
    return {
        str(r["student_id"]): (json.loads(r["p"] or "[]"), json.loads(r["m"] or "[]")) for r in rows
    }


# ---------------------------------------------------------------------------------- sink

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)
_ID_DOMAIN = "@apl-match"


@dataclass
class SinkRead:
    messages: int
    by_id: Counter[str]
    """Message-ID (the notice id) -> messages carrying it."""
    without_id: int
    first_ns: int
    last_ns: int

    @property
    def span_seconds(self) -> float:
        return max((self.last_ns - self.first_ns) / 1e9, 0.0)


def read_sink(folder: Path) -> SinkRead:
    """Every message the sink kept (`devtools/demo/mailsink.py:Store`, each named by the time it
    was accepted), counted by Message-ID."""
    by_id: Counter[str] = Counter()
    without = 0
    stamps: list[int] = []
    files = Store(folder).messages()
    for name, raw in files:
        stamps.append(int(name.split("-", 1)[0]))
        head = raw[:8192].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        found = _MESSAGE_ID.search(head)
        if found is None:
            without += 1
            continue
        by_id[found.group(1).decode().removesuffix(_ID_DOMAIN)] += 1
    return SinkRead(
        messages=len(files),
        by_id=by_id,
        without_id=without,
        first_ns=min(stamps, default=0),
        last_ns=max(stamps, default=0),
    )


# -------------------------------------------------------------------------------- memory


def memory(pid: int) -> dict[str, int]:
    """A process's peak and current resident memory in kB (VmHWM, VmRSS of /proc), and its
    children's current (a service may run helpers); empty when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (its own; /proc)."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def by_topic(read: TopicRead, topics: Topics) -> Mapping[str, int]:
    """Records per contract topic name (prefix taken off)."""
    return {topics.contract_topic(t): n for t, n in sorted(read.messages.items())}
