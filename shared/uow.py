"""The unit of work: one transaction, with the inbox claim and the outbox publish in it.

Handlers take a unit of work and never see a connection (cosmicpython's `unit_of_work.py`):

    async with uow:
        if not await uow.claim(event):
            return                      # a duplicate: applied before
        await uow.placements.withdraw(...)
        await uow.publish([PlacementWithdrawn(...)])
    # leaving the block commits; an exception rolls everything back

`PostgresUnitOfWork` opens a pooled connection and a transaction on entry and gives each
service's repositories that connection (`bind`); `InMemoryUnitOfWork` keeps the inbox, the outbox
and the repositories' state in memory and restores the state on rollback, so the fast tier tests
the same handlers without PostgreSQL. A service subclasses both with its own repositories.

Both take the `actor` the work is done for (from the request's token; None when unknown) and
stamp it on every event they publish that names no actor itself.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import asyncpg

from shared.contracts.events import Actor, Event
from shared.db import Connection
from shared.metrics import claimed
from shared.outbox import claim_all, enqueue
from shared.serialised import Serialised, as_models


def system_actor(service: str) -> Actor:
    """The actor of a service's own decisions (a round's proposals, a notice's delivery): the
    events it publishes on no person's request name it."""
    return Actor(subject=f"service:{service}", role="system", client=f"apl-{service}")


def stamped(events: Iterable[Event | Serialised], actor: Actor | None) -> list[Event | Serialised]:
    """`events`, each with `actor` unless it names one already (a `Serialised` event is left
    as it is: its writer serialised it with its actor)."""
    return [e if isinstance(e, Serialised) else e.by(actor) for e in events]


class UnitOfWork(Protocol):
    """What every handler may do with a transaction, whatever stores it."""

    actor: Actor | None
    """Who the work is done for; stamped on the published events that name nobody."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def claim(self, event: Event) -> bool:
        """Record a consumed event in the inbox; False if it was applied before."""
        ...

    async def publish(self, events: Iterable[Event | Serialised]) -> None:
        """Write events (models, or `Serialised`: shared/serialised.py) to the outbox; they
        leave only if the transaction commits."""
        ...


class PostgresUnitOfWork:
    """A transaction on a pooled connection; subclasses build repositories in `bind`."""

    def __init__(self, pool: asyncpg.Pool, *, actor: Actor | None = None) -> None:
        self._pool = pool
        self.actor = actor
        self._conn: asyncpg.pool.PoolConnectionProxy[Any] | None = None
        self._tx: Any = None

    @property
    def conn(self) -> asyncpg.pool.PoolConnectionProxy[Any]:
        if self._conn is None:
            raise RuntimeError("the unit of work is used outside its `async with` block")
        return self._conn

    def bind(self, conn: Connection) -> None:
        """Give the repositories the transaction's connection (subclasses override)."""

    async def __aenter__(self) -> Self:
        conn = await self._pool.acquire()
        try:
            tx = conn.transaction()
            await tx.start()
        except BaseException:
            await self._pool.release(conn)
            raise
        self._conn, self._tx = conn, tx
        self.bind(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, tx = self.conn, self._tx
        self._conn = self._tx = None
        try:
            if exc_type is None:
                await tx.commit()
            else:
                await tx.rollback()
        finally:
            await self._pool.release(conn)

    async def claim(self, event: Event) -> bool:
        return (await self.claim_all([event]))[0]

    async def claim_all(self, events: Sequence[Event]) -> list[bool]:
        """`claim` for many events in one statement (a second copy of an id: a duplicate)."""
        claims = await claim_all(self.conn, events)
        for event, fresh in zip(events, claims, strict=True):
            claimed(event.topic, event.type, fresh=fresh)
        return claims

    async def publish(self, events: Iterable[Event | Serialised]) -> None:
        await enqueue(self.conn, stamped(events, self.actor))


@dataclass
class InMemoryUnitOfWork:
    """The fake: inbox and outbox as lists, repositories' state rolled back on error.

    Subclasses keep their repositories' state in fields named in `state_fields`; a snapshot of
    them is taken on entry and put back if the block raises. `published` is what committed
    blocks wrote to the outbox, in order (stamped with `actor`); `commits` counts them.
    """

    state_fields: ClassVar[tuple[str, ...]] = ()
    actor: Actor | None = None
    inbox: set[uuid.UUID] = field(default_factory=set)
    published: list[Event] = field(default_factory=list)
    commits: int = 0
    _pending: list[Event] = field(default_factory=list, init=False)
    _snapshot: dict[str, Any] | None = field(default=None, init=False)

    async def __aenter__(self) -> Self:
        if self._snapshot is not None:
            raise RuntimeError("the in-memory unit of work does not nest")
        names = ("inbox", *self.state_fields)
        self._snapshot = {name: copy.deepcopy(getattr(self, name)) for name in names}
        self._pending = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        snapshot, self._snapshot = self._snapshot, None
        if exc_type is None:
            self.published.extend(self._pending)
            self.commits += 1
        elif snapshot is not None:
            for name, value in snapshot.items():
                setattr(self, name, value)
        self._pending = []

    async def claim(self, event: Event) -> bool:
        return (await self.claim_all([event]))[0]

    async def claim_all(self, events: Sequence[Event]) -> list[bool]:
        claims: list[bool] = []
        for event in events:
            fresh = event.event_id not in self.inbox
            self.inbox.add(event.event_id)
            claimed(event.topic, event.type, fresh=fresh)
            claims.append(fresh)
        return claims

    async def publish(self, events: Iterable[Event | Serialised]) -> None:
        if self._snapshot is None:
            raise RuntimeError("publish must run inside the unit of work's block")
        # A serialised event is parsed back into its model, as a consumer would read it: the
        # fast tier checks that what a writer serialised is a valid event of the contract.
        self._pending.extend(as_models(stamped(events, self.actor)))

    def published_of(self, cls: type[Event]) -> list[Event]:
        """The committed events of one type (tests)."""
        return [e for e in self.published if isinstance(e, cls)]
