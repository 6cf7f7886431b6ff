"""E-mail over SMTP with aiosmtplib; failures classified as transient (4xx, timeouts) or not."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class SmtpSender:
    host: str
    port: int
    starttls: bool
    username: str | None
    password: str | None
    timeout: float

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                start_tls=self.starttls,
                username=self.username,
                password=self.password,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            worst = max(codes) if codes else 550
            raise classify_code(worst, "; ".join(r.message for r in exc.recipients)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise classify_code(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientError(f"SMTP {type(exc).__name__}: {exc}") from exc


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
