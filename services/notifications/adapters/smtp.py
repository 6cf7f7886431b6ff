"""E-mail over SMTP with aiosmtplib; failures classified as transient (4xx, timeouts) or not."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib
import structlog

from services.notifications.domain.notices import (
    DeliveryError,
    PermanentError,
    TransientError,
)

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
    """Sends over kept-open SMTP connections: each send takes an idle connection (or opens one,
    with EHLO and the optional STARTTLS/login), and gives it back afterwards, so consecutive
    messages skip the connect/EHLO/QUIT round trips. A connection that broke is dropped; a send
    that finds a reused connection gone is retried once at once on a fresh one (a message whose
    250 reply was lost may thus arrive twice, with the same Message-ID — as with any retry)."""

    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    timeout: float
    max_idle: int = 16
    """Idle connections kept open; more concurrent sends open more, closed when given back."""
    opened: int = field(default=0, init=False)
    _idle: list[aiosmtplib.SMTP] = field(default_factory=list, init=False)

    async def send(self, message: EmailMessage) -> None:
        client: aiosmtplib.SMTP | None = None
        try:
            client = self._take_idle()
            if client is not None:
                try:
                    await client.send_message(message)
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
            await client.send_message(message)
            self._give_back(client)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._give_back(client)  # the envelope was reset; the connection is still good
            codes = [r.code for r in exc.recipients]
            worst = max(codes) if codes else 550
            raise classify_code(worst, "; ".join(r.message for r in exc.recipients)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            self._give_back(client)
            raise classify_code(exc.code, exc.message) from exc
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
        if client.is_connected and len(self._idle) < self.max_idle:
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


def _abandon(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        client.close()


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
) -> EmailMessage:
    """A multipart/alternative message with a stable Message-ID (receivers drop repeats)."""
    from email.utils import formataddr, formatdate

    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = formataddr((to_name or "", to_address))
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # after add_alternative, which moves Content-* headers into the first part
    message["Content-Language"] = language
    return message
