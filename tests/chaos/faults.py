"""The faults a trial injects, and how long what was killed takes to resume its work.

Kinds: `placements`, `matching`, `notifications` (SIGKILL the service, start it again),
`notifications` is killed half the time mid-send: by the SMTP sink itself, once it has kept one
of the service's messages and before it answers 250 (the service cannot know that message went
out; nothing of its batch is recorded).
`relay` (SIGKILL a service the moment its outbox holds committed rows its relay has not
marked sent: the test listens on the outbox's NOTIFY channel, which every commit that enqueues
wakes), `broker` (SIGKILL one of the three Kafka nodes, start it again) and `postgres` (SIGKILL
the postmaster and every backend, start the server again: crash recovery).

Recovery, measured for the three services:
- `ready`: from the restart (the new process spawned; for `postgres`, the server accepting
  connections again) until `/readyz` answers 200;
- `resumed`: until the service handled its first record (its `/metrics` show an event applied
  or recognised as a duplicate, an outbox row published, or a notice sent), when work was
  waiting for it at that moment (its consumer group's lag, its outbox backlog, its due notices);
  nothing waiting: the readiness alone.
A broker's recovery (back as a registered broker, then back in every partition's ISR) is
measured too, for the record: the 5 s bound is the services'.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import httpx

from shared.outbox import NOTIFY_CHANNEL
from tests.chaos.checks import consumed_by, lags, open_notices, unsent
from tests.chaos.stack import SERVICES, Stack
from tests.support.processes import ServiceProcess

KINDS = ("placements", "matching", "notifications", "relay", "broker", "postgres")
BOUND = 5.0
"""Seconds within which a killed service must resume its work after its restart."""
_HANDLED = (
    "apl_events_applied_total",
    "apl_events_duplicated_total",
    "apl_outbox_published_total",
    "apl_notices_sent_total",
)


@dataclass
class Recovery:
    what: str
    """The service (or `broker N`) that recovered."""
    ready: float
    resumed: float | None = None
    waiting: str = ""
    """What work waited for it at the restart ('' : none)."""
    bounded: bool = True
    """Whether the 5 s bound applies (the services; not a broker's own restart)."""

    @property
    def seconds(self) -> float:
        return max(self.ready, self.resumed or 0.0)

    def __str__(self) -> str:
        resumed = f", first record {self.resumed:.1f} s" if self.resumed is not None else ""
        waiting = f" ({self.waiting} waiting)" if self.waiting else " (nothing waiting)"
        return f"{self.what}: ready {self.ready:.1f} s{resumed}{waiting}"


@dataclass
class Fault:
    kind: str
    at: float = 0.0
    """Seconds into the story when it was injected."""
    target: str = ""
    detail: str = ""
    down: float = 0.0
    """Seconds between the kill and the restart."""
    kills: list[str] = field(default_factory=list)
    """What was SIGKILLed, in order (a `relay` fault may need a second try)."""
    recoveries: list[Recovery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unsent: int = 0
    """`relay`: the outbox rows left unsent by the kill (0: the relay was quicker every time,
    or no commit came before the story ended; the trial then tested a plain kill, or none)."""


def plan(rng: random.Random, trials: int) -> list[str]:
    """The kinds of `trials` trials: every kind once in each run of len(KINDS), shuffled."""
    kinds: list[str] = []
    while len(kinds) < trials:
        batch = list(KINDS)
        rng.shuffle(batch)
        kinds += batch
    return kinds[:trials]


# ------------------------------------------------------------------------------ measuring


async def handled(process: ServiceProcess) -> float | None:
    """The records the process has handled so far, from its `/metrics` (None: no answer)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"{process.url}/metrics")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    total = 0.0
    for line in response.text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in _HANDLED:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def ready(process: ServiceProcess) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"{process.url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def waiting_for(stack: Stack, service: str) -> str:
    """The work waiting for `service` now: its group's lag, its outbox backlog, due notices."""
    parts = []
    try:
        lag = sum((await lags(stack.infra.kafka.admin, consumed_by(stack, service))).values())
        if lag:
            parts.append(f"lag {lag}")
        backlog = await unsent(stack, service)
        if backlog:
            parts.append(f"outbox {backlog}")
        if service == "notifications":
            due = await open_notices(stack, due=True)
            if due:
                parts.append(f"{due} due notices")
    except Exception as error:
        parts.append(f"unknown ({type(error).__name__})")
    return ", ".join(parts)


async def _resumed(
    process: ServiceProcess, start: float, baseline: float, wait: float = 90.0
) -> float | None:
    """Seconds from `start` until the process handled more than `baseline` records."""
    while time.monotonic() - start < wait:
        now = await handled(process)
        if now is not None and now > baseline:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    return None


async def restart(stack: Stack, service: str, fault: Fault) -> Recovery:
    """Start the killed service again and measure its recovery."""
    process = stack.processes[service]
    waiting = await waiting_for(stack, service)
    start = time.monotonic()
    await asyncio.to_thread(process.start, 120)
    recovery = Recovery(service, time.monotonic() - start, waiting=waiting)
    if waiting:
        recovery.resumed = await _resumed(process, start, 0.0)
        if recovery.resumed is None:
            fault.problems.append(f"{service}: handled nothing for 90 s after its restart")
    return recovery


# ------------------------------------------------------------------------------- injecting


async def inject(
    stack: Stack,
    kind: str,
    rng: random.Random,
    story_started: float,
    story_done: Callable[[], bool] = lambda: False,
) -> Fault:
    """Inject one fault of `kind` now and bring back what it killed. A `relay` fault waits for
    the next commit that enqueues outbox rows, but not past the end of the story."""
    fault = Fault(kind, at=time.monotonic() - story_started)
    if kind in SERVICES:
        fault.target = kind
        if kind == "notifications" and rng.random() < 0.5:
            await _kill_mid_send(stack, fault, story_done)
            fault.at = time.monotonic() - story_started
        else:
            await _kill_service(stack, kind, fault)
        fault.down = rng.uniform(0.0, 1.5)
        await asyncio.sleep(fault.down)
        fault.recoveries.append(await restart(stack, kind, fault))
    elif kind == "relay":
        fault.target = rng.choice(SERVICES)
        await _kill_relay(stack, fault, rng, story_done)
    elif kind == "broker":
        await _kill_broker(stack, fault, rng)
    elif kind == "postgres":
        await _kill_postgres(stack, fault, rng)
    else:
        raise ValueError(kind)
    return fault


async def _kill_service(stack: Stack, service: str, fault: Fault) -> None:
    code = await asyncio.to_thread(stack.processes[service].kill)
    fault.kills.append(service)
    if code != -9:
        fault.problems.append(f"{service}: ended with {code} when killed, not by SIGKILL")


async def _kill_mid_send(stack: Stack, fault: Fault, story_done: Callable[[], bool]) -> None:
    """SIGKILL the notifications service from inside the SMTP sink, once it has kept one of
    the service's messages and before it answers 250: the service dies not knowing the message
    went out (its batch is sent again, with the same Message-IDs, when the lease ends). No
    message before the story ends: a plain kill."""
    process = stack.processes["notifications"]
    fired = stack.infra.sink.arm(process.kill)
    while not fired.done() and not story_done():  # noqa: ASYNC110  # a thread sets it
        await asyncio.sleep(0.01)
    if not fired.done():
        stack.infra.sink.disarm()
        # The hook may be running right now. Waited for in a thread: a timed-out wait_for on
        # wrap_future(fired) would cancel `fired` itself, and it would look fired.
        await asyncio.to_thread(concurrent.futures.wait, [fired], 1.0)
        if not fired.done():
            fault.detail = "no message was sent before the story ended: a plain kill"
            await _kill_service(stack, "notifications", fault)
            return
    fault.kills.append("notifications")
    fault.detail = "mid-send: from the sink, after it kept a message, before its 250"
    code = fired.result()
    if code != -9:
        fault.problems.append(f"notifications: ended with {code} when killed, not by SIGKILL")


async def _kill_relay(
    stack: Stack,
    fault: Fault,
    rng: random.Random,
    story_done: Callable[[], bool],
    tries: int = 3,
) -> None:
    """SIGKILL `fault.target` right after a commit enqueued outbox rows, before its relay
    marked them sent; a try that finds the rows already marked restarts it and tries again."""
    service = fault.target
    schema_query = f"SELECT count(*) FROM {service}.outbox WHERE sent_at IS NULL"  # noqa: S608
    conn: asyncpg.Connection = await asyncpg.connect(stack.database_url)
    woken = asyncio.Event()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *_: woken.set())
    try:
        for attempt in range(tries):
            if not await _next_commit(conn, woken, schema_query, story_done):
                fault.detail = "no outbox rows were enqueued before the story ended"
                break
            await _kill_service(stack, service, fault)
            left = int(await conn.fetchval(schema_query))
            fault.unsent = left
            fault.detail = f"{left} unsent outbox rows at the kill (try {attempt + 1})"
            fault.down = rng.uniform(0.0, 1.5)
            await asyncio.sleep(fault.down)
            fault.recoveries.append(await restart(stack, service, fault))
            if left:
                return
        fault.detail += f"; the relay of {service} was never killed with unsent rows"
    finally:
        await conn.close()


async def _next_commit(
    conn: asyncpg.Connection,
    woken: asyncio.Event,
    query: str,
    story_done: Callable[[], bool],
    wait: float = 120.0,
) -> bool:
    """Until a commit's NOTIFY arrives while the schema has unsent rows (False: the story
    ended, or `wait` passed, first)."""
    deadline = time.monotonic() + wait
    woken.clear()
    while time.monotonic() < deadline and not story_done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), timeout=0.5)
        if woken.is_set():
            woken.clear()
            if await conn.fetchval(query):
                return True
    return False


async def _kill_broker(stack: Stack, fault: Fault, rng: random.Random) -> None:
    cluster = stack.infra.kafka
    node = rng.choice([n.node_id for n in cluster.nodes])
    fault.target = f"broker {node}"
    await asyncio.to_thread(cluster.kill_node, node)
    fault.kills.append(fault.target)
    fault.down = rng.uniform(1.0, 4.0)
    await asyncio.sleep(fault.down)
    start = time.monotonic()
    await asyncio.to_thread(cluster.start_node, node)
    recovery = Recovery(fault.target, time.monotonic() - start, bounded=False)
    in_sync = await _in_sync(stack, node)
    recovery.resumed = None if in_sync is None else time.monotonic() - start
    recovery.waiting = "its replicas" if in_sync is not None else "its replicas (not in sync)"
    fault.detail = (
        f"back in every ISR {recovery.resumed:.1f} s after its restart"
        if recovery.resumed is not None
        else "not back in every ISR after 120 s"
    )
    fault.recoveries.append(recovery)


async def _in_sync(stack: Stack, node: int, wait: float = 120.0) -> bool | None:
    """Until `node` is in the ISR of every partition of the stack's topics."""
    admin = stack.infra.kafka.admin.admin()
    await admin.start()
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            described = await admin.describe_topics(stack.topic_names())
            if all(node in p["isr"] for topic in described for p in topic["partitions"]):
                return True
            await asyncio.sleep(0.3)
        return None
    finally:
        await admin.close()


async def _kill_postgres(stack: Stack, fault: Fault, rng: random.Random) -> None:
    pg = stack.infra.pg
    fault.target = "postgres"
    victims = await asyncio.to_thread(pg.kill)
    fault.kills.append("postgres")
    fault.detail = f"{len(victims)} server processes killed"
    fault.down = rng.uniform(0.5, 2.0)
    await asyncio.sleep(fault.down)
    await asyncio.to_thread(pg.start)
    back = time.monotonic()  # accepting connections again
    # the counts first: work found waiting and handled at once still moves them
    baselines = await asyncio.gather(*(handled(stack.processes[s]) for s in SERVICES))
    waits = await asyncio.gather(*(waiting_for(stack, s) for s in SERVICES))

    async def one(service: str, waiting: str, baseline: float | None) -> Recovery:
        process = stack.processes[service]
        while not await ready(process):
            if process.proc is not None and process.proc.poll() is not None:
                fault.problems.append(
                    f"{service} exited ({process.proc.returncode}) while postgres was away"
                )
                return await restart(stack, service, fault)
            if time.monotonic() - back > 90:
                fault.problems.append(f"{service}: not ready 90 s after postgres came back")
                break
            await asyncio.sleep(0.1)
        recovery = Recovery(f"{service} after postgres", time.monotonic() - back, waiting=waiting)
        if waiting:
            recovery.resumed = await _resumed(process, back, baseline or 0.0)
            if recovery.resumed is None:
                fault.problems.append(f"{service}: handled nothing for 90 s after postgres")
        return recovery

    fault.recoveries += await asyncio.gather(
        *(one(s, w, b) for s, w, b in zip(SERVICES, waits, baselines, strict=True))
    )
