"""The SMTP sender keeps its connection open across messages, reconnects when the server has
dropped it, keeps a connection whose message was refused, shares a small pool of connections
among concurrent sends, and sends to an address beyond ASCII only where the server takes it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notifications.adapters.smtp import OutgoingMail, compose_email
from services.notifications.domain.notices import PermanentError, TransientError
from tests.integration.notifications.peers import SmtpInbox, sender_to
from tests.support.processes import free_port


def _message(n: int, to: str = "anna@company.example") -> OutgoingMail:
    return compose_email(
        mail_from="apl@example.org",
        to_name="Anna Berg",
        to_address=to,
        subject=f"Meddelande {n}",
        text="Hej",
        html="<p>Hej</p>",
        message_id=f"<m-{n}@apl-match>",
        language="sv",
    )


async def test_one_connection_carries_consecutive_messages_and_survives_a_server_restart() -> None:
    inbox, port = SmtpInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    sender = sender_to(port)
    try:
        for n in range(3):
            await sender.send(_message(n))
        assert len(inbox.messages) == 3
        assert sender.opened == 1

        controller.stop()  # drops the kept-open connection
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        await sender.send(_message(3))  # the stale connection is replaced, not a failure
        await sender.send(_message(4))
        assert [m["Message-ID"] for m in inbox.messages[3:]] == [
            "<m-3@apl-match>",
            "<m-4@apl-match>",
        ]
        assert sender.opened == 2
    finally:
        await sender.close()
        controller.stop()


async def test_a_refused_message_keeps_the_connection_and_a_dead_server_is_transient() -> None:
    inbox, port = SmtpInbox(), free_port()
    inbox.always["gone@company.example"] = "550 no such mailbox"
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    sender = sender_to(port)
    try:
        await sender.send(_message(0))
        with pytest.raises(PermanentError, match="550"):
            await sender.send(_message(1, to="gone@company.example"))
        await sender.send(_message(2))
        assert sender.opened == 1
        assert len(inbox.messages) == 2
    finally:
        controller.stop()
    with pytest.raises(TransientError):  # nobody listens any more: reconnecting fails too
        await sender.send(_message(3))
    await sender.close()


@dataclass
class SlowInbox(SmtpInbox):
    """Takes `delay` seconds per message and notes how many it was taking at once."""

    delay: float = 0.05
    busy: int = 0
    most: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.busy += 1
        self.most = max(self.most, self.busy)
        try:
            await asyncio.sleep(self.delay)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.busy -= 1


async def test_concurrent_sends_share_a_small_pool_of_connections() -> None:
    inbox, port = SlowInbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    sender = sender_to(port, connections=2)
    try:
        await asyncio.gather(*(sender.send(_message(n)) for n in range(12)))
        assert len(inbox.messages) == 12
        assert sorted(m["Message-ID"] for m in inbox.messages) == sorted(
            f"<m-{n}@apl-match>" for n in range(12)
        )
        assert sender.opened == 2  # the pool's two, each carrying six messages
        assert inbox.most == 2  # two on the wire at once, never more
    finally:
        await sender.close()
        controller.stop()


async def test_an_address_beyond_ascii_needs_a_server_with_smtputf8() -> None:
    for utf8, port in ((False, free_port()), (True, free_port())):
        inbox = SmtpInbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, enable_SMTPUTF8=utf8)
        controller.start()
        sender = sender_to(port)
        try:
            if not utf8:
                with pytest.raises(PermanentError, match="cannot take this address"):
                    await sender.send(_message(0, to="åsa@företag.example"))
                assert inbox.messages == []
            else:
                await sender.send(_message(0, to="åsa@företag.example"))
                [got] = inbox.messages
                assert got["To"] == "Anna Berg <åsa@företag.example>"
        finally:
            await sender.close()
            controller.stop()
