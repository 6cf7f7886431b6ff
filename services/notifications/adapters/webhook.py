"""Signed webhooks over HTTP with httpx."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from services.notifications.domain.notices import PermanentError, TransientError
from services.notifications.domain.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)


class WebhookSender:
    def __init__(
        self, client: httpx.AsyncClient, secret: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.secret = secret
        self.clock = clock

    async def send(self, url: str, body: bytes, idempotency_key: str) -> None:
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            IDEMPOTENCY_HEADER: idempotency_key,
            "User-Agent": "apl-match-notifications/1",
        }
        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientError(f"webhook unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in (408, 425, 429):
            raise TransientError(f"webhook answered {status}")
        raise PermanentError(f"webhook answered {status}")
