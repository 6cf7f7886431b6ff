"""The hand-over gate: at most one e-mail at a time between its acceptance by the mail server and
a durable mark of it, so a process killed at any moment sends at most one message again.

A message is delivered the moment the SMTP server answers 250 to the end of its DATA; the
service knows it once that is committed. Messages go out side by side over several connections
and their outcomes are recorded in batches (`handlers._Recorder`), so without a gate every
connection could be in that window at a kill. With it:

- each notice is told under its own `Ticket` (`telling(mark)`, one per telling task, in a
  context variable, so the mail sender needs no argument for it), whose `mark` commits that the
  message was handed over (`deliveries.handed_over_at`, one row, its own short transaction);
- the mail sender calls `HandOver.enter()` before DATA (it waits for the gate) and, once the
  server answered 250, `HandOver.handed()`: the ticket's mark is committed, then the gate goes
  to the next message; a DATA that fails gives it back at once (`leave()`).

A notice whose claim ran out with its hand-over marked (the process died before its outcome was
recorded) is recorded as delivered without being sent again (`handlers.deliver_due`). MAIL
FROM, RCPT TO, rendering, the notice contexts and the outcomes' records still run side by side:
only DATA's round trip and the mark are in series. Webhooks are not gated: a repeated POST
carries its `Idempotency-Key`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

Mark = Callable[[], Awaitable[None]]
"""Commits that the ticket's message was handed over to the mail server."""


@dataclass(eq=False)
class Ticket:
    """One notice's telling: its mark, and the gate while it holds it."""

    mark: Mark
    marked: bool = False
    _held: asyncio.Lock | None = None

    @property
    def holding(self) -> bool:
        return self._held is not None

    def release(self) -> None:
        """Give the gate back (nothing when not holding it); idempotent."""
        held, self._held = self._held, None
        if held is not None:
            held.release()


_TICKET: ContextVar[Ticket | None] = ContextVar("apl_notice_ticket", default=None)


@contextmanager
def telling(mark: Mark | None) -> Iterator[Ticket | None]:
    """Tell one notice under a fresh ticket (in the current task's context) whose hand-over
    `mark` commits; None: no gate for this telling. However it ends, the gate is given back."""
    if mark is None:
        yield None
        return
    ticket = Ticket(mark)
    token = _TICKET.set(ticket)
    try:
        yield ticket
    finally:
        ticket.release()
        _TICKET.reset(token)


@dataclass
class HandOver:
    """The gate, one per process (the mail sender's)."""

    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def enter(self) -> None:
        """Before DATA: wait for the gate (outside a ticket there is no gate)."""
        ticket = _TICKET.get()
        if ticket is None or ticket.holding:
            return
        await self._lock.acquire()
        ticket._held = self._lock

    async def handed(self) -> None:
        """The server accepted the message: commit the ticket's mark, then give the gate back.
        A mark that fails (the database away) is logged: the outcome's record comes after."""
        ticket = _TICKET.get()
        if ticket is None:
            return
        try:
            await ticket.mark()
            ticket.marked = True
        except Exception as error:
            log.warning("hand-over of a sent notice not marked", error=str(error))
        finally:
            ticket.release()

    def leave(self) -> None:
        """DATA failed: the message was not handed over, give the gate back at once."""
        ticket = _TICKET.get()
        if ticket is not None:
            ticket.release()

    @property
    def busy(self) -> bool:
        return self._lock.locked()
