"""E-mail over SMTP with aiosmtplib: messages composed as ready bytes (`compose_email`), sent over
a small pool of kept-open connections (`SmtpSender`); failures classified as transient (4xx,
timeouts) or not."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import re
from dataclasses import dataclass, field
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib
import structlog

from services.notifications.domain.notices import (
    DeliveryError,
    PermanentError,
    TransientError,
)
from services.notifications.handover import HandOver

log = structlog.get_logger(__name__)

# Authentication problems are configuration errors: say so loudly and retry (a redeploy fixes it).
_CONFIG_CODES = {530, 534, 535, 538}


def classify_code(code: int, message: str) -> DeliveryError:
    text = f"SMTP {code} {message}".strip()
    if code in _CONFIG_CODES:
        log.error("SMTP server refused our credentials; check APL_NOTIFICATIONS_SMTP_*", code=code)
        return TransientError(text)
    if 400 <= code < 500 or code < 0:
        return TransientError(text)
    return PermanentError(text)


# Failures that mean the connection is gone rather than the message refused: on a reused connection
# (the server may have dropped it while idle) the send is tried once more on a new connection.
_STALE = (aiosmtplib.SMTPServerDisconnected, ConnectionError)


@dataclass
class SmtpSender:
    """Sends over a small pool of kept-open SMTP connections: at most `connections` sends run at
    once (the others wait for a connection), each on an idle connection or a new one (with EHLO
    and the optional STARTTLS/login), given back afterwards, so consecutive messages skip the
    connect/EHLO/QUIT round trips. A connection that broke is dropped; a send that finds a
    reused connection gone is retried once at once on a fresh one (a message whose 250 reply
    was lost may thus arrive twice, with the same Message-ID — as with any retry)."""

    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    timeout: float
    connections: int = 4
    """Connections in the pool: sends that run at once, and idle connections kept open."""
    hand_over: HandOver | None = None
    """The gate DATA waits for (`services/notifications/handover.py`): one message at a time
    between the server's acceptance and its durable mark. None: no gate."""
    opened: int = field(default=0, init=False)
    _idle: list[aiosmtplib.SMTP] = field(default_factory=list, init=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False)

    async def send(self, message: OutgoingMail) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.connections)
        async with self._slots:
            await self._send(message)

    async def _send(self, message: OutgoingMail) -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            client = self._take_idle()
            if client is not None:
                try:
                    await _transmit(client, message, self.hand_over)
                except _STALE:
                    log.info("SMTP connection was closed by the server; reconnecting")
                    _abandon(client)
                    client = None
                except aiosmtplib.SMTPResponseException as exc:
                    if exc.code != 421:  # 421: the server is closing this connection
                        raise
                    _abandon(client)
                    client = None
                else:
                    self._give_back(client)
                    return
            client = await self._connect()
            await _transmit(client, message, self.hand_over)
            self._give_back(client)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._give_back(client)  # the envelope was reset; the connection is still good
            codes = [r.code for r in exc.recipients]
            worst = max(codes) if codes else 550
            raise classify_code(worst, "; ".join(r.message for r in exc.recipients)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            self._give_back(client)
            raise classify_code(exc.code, exc.message) from exc
        except aiosmtplib.SMTPNotSupported as exc:  # an address beyond ASCII, no SMTPUTF8
            self._give_back(client)
            raise PermanentError(f"SMTP server cannot take this address: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            _abandon(client)
            raise TransientError(f"SMTP {type(exc).__name__}: {exc}") from exc
        except BaseException:
            _abandon(client)  # cancelled mid-conversation: the connection's state is unknown
            raise

    async def close(self) -> None:
        """QUIT every idle connection (on shutdown)."""
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=min(self.timeout, 2.0))
            except Exception:
                _abandon(client)

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            _abandon(client)
        return None

    def _give_back(self, client: aiosmtplib.SMTP | None) -> None:
        if client is None:
            return
        if client.is_connected and len(self._idle) < self.connections:
            self._idle.append(client)
        else:
            _abandon(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            start_tls=self.starttls,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        )
        try:
            await client.connect()
        except BaseException:
            _abandon(client)
            raise
        self.opened += 1
        return client


async def _transmit(
    client: aiosmtplib.SMTP, message: OutgoingMail, hand_over: HandOver | None = None
) -> None:
    """MAIL FROM, RCPT TO and DATA with the ready bytes (SMTPUTF8 when an address needs it);
    DATA under `hand_over`'s gate, given back once the hand-over is marked.

    The envelope's addresses were checked when the message was composed, so the commands are
    written as they are: aiosmtplib's `sendmail` parses each address four times over
    (`email.utils.parseaddr`), a third of the cost of sending. A refusal resets the envelope
    (RSET) and raises as `sendmail` would."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    utf8 = message.utf8
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    encoding = "utf-8" if utf8 else "ascii"
    try:
        response = await client.execute_command(
            b"MAIL",
            b"FROM:<" + message.sender.encode(encoding) + b">",
            *((b"SMTPUTF8",) if utf8 else ()),
        )
        if response.code != 250:
            raise aiosmtplib.SMTPSenderRefused(response.code, response.message, message.sender)
        response = await client.execute_command(
            b"RCPT", b"TO:<" + message.recipient.encode(encoding) + b">"
        )
        if response.code not in (250, 251):
            refused = aiosmtplib.SMTPRecipientRefused(
                response.code, response.message, message.recipient
            )
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        if hand_over is None:
            await client.data(message.data)
        else:
            await _hand_over(client, message, hand_over)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()  # a clean envelope for the connection's next message
        raise


_LEADING_PERIOD = re.compile(rb"(?m)^\.")


async def _hand_over(client: aiosmtplib.SMTP, message: OutgoingMail, hand_over: HandOver) -> None:
    """DATA in two steps, so that only the hand-over itself waits for the gate: the command,
    its 354 and the message (dot-stuffed, as `SMTP.data` does) go out side by side with the
    other connections'; the final dot that makes the server accept it, its 250 and the
    hand-over's mark in turn (`services/notifications/handover.py`)."""
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    start = await client.execute_command(b"DATA")
    if start.code != 354:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    body = _LEADING_PERIOD.sub(b"..", message.data)
    protocol.write(body if body.endswith(b"\r\n") else body + b"\r\n")
    await hand_over.enter()
    try:
        protocol.write(b".\r\n")
        response = await protocol.read_response(timeout=client.timeout)
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
    except BaseException:
        hand_over.leave()
        raise
    await hand_over.handed()


def _abandon(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        client.close()


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for the wire: the envelope and the RFC 5322 bytes (CRLF line ends)."""

    sender: str
    """The envelope's MAIL FROM address."""
    recipient: str
    """The envelope's RCPT TO address."""
    message_id: str
    data: bytes
    utf8: bool = False
    """An address is not ASCII: the server must offer SMTPUTF8 (RFC 6531)."""


_BOUNDARY_PREFIX = "=_apl_"
"""Quoted-printable writes `=` as `=3D`, so no encoded line can start a boundary line."""

_WORD_BYTES = 39
"""UTF-8 bytes per encoded word: 52 base64 characters, 64 with `=?utf-8?b?` and `?=`, so that
`Subject: ` and one word stay within 76 characters (RFC 2047)."""


def _one_line(value: str) -> str:
    """A header value on one logical line: no CR, LF or other control characters (no header
    can be injected through a name or a title); runs of whitespace become one space."""
    return " ".join(value.split())


def encode_header_text(value: str) -> str:
    """An unstructured header's value (RFC 5322 / RFC 2047): ASCII as it is, folded at spaces
    to lines of at most 78 characters where it can be; anything else as UTF-8 `B` encoded
    words of whole characters, one per folded line."""
    value = _one_line(value)
    if value.isascii():
        lines: list[str] = []
        line = ""
        for word in value.split(" "):
            if line and len(line) + 1 + len(word) > 68:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
        return "\r\n ".join(lines)
    return "\r\n ".join(_encoded_words(value))


def _encoded_words(value: str) -> list[str]:
    """`value` as UTF-8 `B` encoded words (RFC 2047) of whole characters, each within 64."""
    words: list[str] = []
    chunk = bytearray()
    for char in value:
        encoded = char.encode()
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(base64.b64encode(chunk).decode())
            chunk = bytearray()
        chunk += encoded
    words.append(base64.b64encode(chunk).decode())
    return [f"=?utf-8?b?{w}?=" for w in words]


@functools.lru_cache(maxsize=16)
def _from_header(mail_from: str) -> tuple[str, str]:
    """(the From header's value, the envelope's sender) of the configured `mail_from`."""
    name, address = parseaddr(mail_from)
    return format_address(name, address or mail_from), address or mail_from


def _envelope_address(address: str) -> str:
    """An address as it goes in MAIL FROM / RCPT TO: refused if it could break the command."""
    if not address or any(c in address for c in "<>\r\n\0 ") or "@" not in address:
        raise PermanentError(f"not an address to send to: {address!r}")
    return address


def format_address(name: str | None, address: str) -> str:
    """`Name <address>` for a header: an ASCII name quoted as needed, another one as encoded
    words (RFC 2047), folded so that no line passes 78 characters; the address as given (UTF-8
    when it is not ASCII: RFC 6532)."""
    name = _one_line(name or "")
    if not name:
        return address
    if name.isascii():
        phrase = formataddr((name, "x@x")).removesuffix(" <x@x>")  # quoted if it must be
        folded = f"{phrase} <{address}>"
        return folded if len(folded) <= 70 else f"{phrase}\r\n <{address}>"
    return "\r\n ".join([*_encoded_words(name), f"<{address}>"])


def _qp(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends (soft breaks at 76 characters)."""
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    return binascii.b2a_qp(body.encode(), istext=True).replace(b"\n", b"\r\n")


def compose_email(
    *,
    mail_from: str,
    to_name: str | None,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    language: str,
    date: str | None = None,
) -> OutgoingMail:
    """A multipart/alternative message (plain text + HTML, UTF-8 quoted-printable) with a
    stable Message-ID (receivers drop repeats), composed as bytes from a fixed layout: what
    `email.message.EmailMessage` would write, at a small part of its cost. `date` (RFC 5322)
    defaults to now."""
    from_header, sender = _from_header(mail_from)
    to_address = _envelope_address(to_address)
    boundary = _BOUNDARY_PREFIX + message_id.strip("<>").replace("@", ".")
    head = (
        f"From: {from_header}\r\n"
        f"To: {format_address(to_name, to_address)}\r\n"
        f"Subject: {encode_header_text(subject)}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Date: {date or formatdate(usegmt=True)}\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
        f"Content-Language: {language}\r\n"
        "\r\n"
    )
    part = (
        'Content-Type: text/{}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    data = b"".join(
        (
            head.encode(),
            f"--{boundary}\r\n".encode(),
            part.format("plain").encode(),
            _qp(text),
            # the CRLF before a boundary belongs to the boundary (RFC 2046), not to the part
            f"\r\n--{boundary}\r\n".encode(),
            part.format("html").encode(),
            _qp(html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )
    utf8 = not (sender.isascii() and to_address.isascii())
    return OutgoingMail(sender, to_address, message_id, data, utf8)
