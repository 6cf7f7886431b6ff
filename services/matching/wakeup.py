"""Wake-ups for rounds waiting for their inputs (`handlers.wait_for_inputs`), instead of sleeps.

A round request may count input events that are still on their way (`inputs_published`). The
round looks at the count, and if it is short it waits for a wake-up: `InputSignals.applied(
producer, region)`, called by this replica's subscribers after each input event of that producer
and region was applied or dead-lettered, wakes every round of this replica waiting on that
(producer, region) at once. The inputs of a region may be applied by another replica (each topic's
partitions are spread over the group), so `applied` also queues a PostgreSQL `NOTIFY` on the
schema's channel, and `run()` (a background task of `running`) sends them — all pending ones in
one statement, gathered for `coalesce` seconds and while one is on its way — and listens on the
same connection: a notification from another replica wakes the waiting rounds here. A round
still looks again after `recheck` seconds without a wake-up (a notification lost while the
listener reconnects costs that much, never a round).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Key = tuple[str, str]  # (producer, region)
_SEPARATOR = "\t"


def channel(schema: str) -> str:
    """The NOTIFY channel of a schema's input wake-ups (one database holds many schemas)."""
    return f"apl.inputs.{schema}"


@dataclass
class InputSignals:
    """This replica's wake-ups of rounds waiting for inputs (see the module)."""

    recheck: float = 2.0
    """Seconds a waiting round waits for a wake-up before it looks at the count again."""
    coalesce: float = 0.005
    """Seconds the sender gathers notifications before it sends them (ingest applies hundreds
    of inputs a second; other replicas hear of them in one statement per pause)."""
    _tickets: dict[Key, asyncio.Event] = field(default_factory=dict, init=False)
    _outgoing: set[Key] = field(default_factory=set, init=False)
    _kick: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    listening: bool = field(default=False, init=False)
    """Whether the cross-replica listener is connected (tests wait for it)."""

    def ticket(self, producer: str, region: str) -> asyncio.Event:
        """What to wait on: set by the next `applied` of (producer, region) after this call.
        Take it *before* looking at the count, so no wake-up falls between the two."""
        key = (producer, region)
        ticket = self._tickets.get(key)
        if ticket is None:
            ticket = self._tickets[key] = asyncio.Event()
        return ticket

    def applied(self, producer: str, region: str) -> None:
        """An input event of (producer, region) was applied or dead-lettered here (after its
        transaction committed): wake the rounds waiting on it, here and on other replicas."""
        self._wake((producer, region))
        self._outgoing.add((producer, region))
        self._kick.set()

    def _wake(self, key: Key) -> None:
        ticket = self._tickets.pop(key, None)
        if ticket is not None:
            ticket.set()

    def wake_all(self) -> None:
        """Wake every waiting round (each looks at its count again)."""
        tickets, self._tickets = self._tickets, {}
        for ticket in tickets.values():
            ticket.set()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        producer, _, region = str(payload).partition(_SEPARATOR)
        self._wake((producer, region))

    async def run(self, dsn: str, schema: str) -> None:
        """Send the queued notifications and listen for other replicas', until cancelled;
        reconnects with backoff."""
        name = channel(schema)
        backoff = 0.5
        while True:
            try:
                conn: asyncpg.Connection = await asyncpg.connect(dsn)
            except (OSError, asyncpg.PostgresError):
                log.warning("input wake-ups: database unreachable; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                await conn.add_listener(name, self._heard)
                self.listening = True
                backoff = 0.5
                self.wake_all()  # whatever happened while not listening: look again
                while True:
                    await self._kick.wait()
                    await asyncio.sleep(self.coalesce)  # a burst of inputs: one statement
                    self._kick.clear()
                    keys, self._outgoing = self._outgoing, set()
                    await conn.execute(
                        "SELECT count(pg_notify($1, k)) FROM unnest($2::text[]) AS k",
                        name,
                        sorted(f"{p}{_SEPARATOR}{r}" for p, r in keys),
                    )
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("input wake-ups interrupted; reconnecting", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await conn.close()
