"""Signed webhooks over HTTP with httpx, only to the addresses the SSRF guard allows.

The client the composition root gives is built on the guard's transport (`shared.netguard`):
every connection, the first and each redirect's, goes to an address the guard checked. Here each
hop's URL is checked too (https only in production), and only 307 and 308 redirects are followed
(they keep the method and the signed body), at most `MAX_REDIRECTS` of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urljoin

import httpx

from services.notifications.domain.notices import PermanentError, TransientError
from services.notifications.domain.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from shared.netguard import Refused, WebhookGuard

MAX_REDIRECTS = 5
FOLLOWED = (307, 308)
REDIRECTS = (301, 302, 303, 307, 308)


class WebhookSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        guard: WebhookGuard | None = None,
    ) -> None:
        self.client = client
        self.secret = secret
        self.clock = clock
        self.guard = guard or WebhookGuard()

    async def send(self, url: str, body: bytes, idempotency_key: str) -> None:
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key,
            "User-Agent": "apl-match-notifications/1",
        }
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._post(target, body, headers)
            status = response.status_code
            location = response.headers.get("location")
            if status in FOLLOWED and location:
                target = urljoin(str(response.url), location)
                continue
            if 200 <= status < 300:
                return
            if status in REDIRECTS:
                raise PermanentError(f"webhook answered {status}; only 307 and 308 are followed")
            if status >= 500 or status in (408, 425, 429):
                raise TransientError(f"webhook answered {status}")
            raise PermanentError(f"webhook answered {status}")
        raise PermanentError(f"webhook redirected more than {MAX_REDIRECTS} times")

    async def _post(self, target: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            self.guard.check_form(target)
            return await self.client.post(target, content=body, headers=headers)
        except Refused as exc:
            raise PermanentError(f"webhook target refused: it {exc}") from None
        except httpx.HTTPError as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from exc
