"""Client of the placements service's internal notice-context routes: the supervisor's
(`NOTICE_CONTEXT_PATH`) and the student's (`STUDENT_NOTICE_CONTEXT_PATH`).

Each call carries `Authorization: Bearer <token>`, a client-credentials token of this service's
account (`adapters/tokens.py`, cached). A 401 means the token is no longer good (expired early,
keys rotated): it is dropped and the call made once more with a fresh one.
"""

from __future__ import annotations

import httpx
import structlog
from pydantic import ValidationError

from services.notifications.adapters.tokens import TokenSource
from services.notifications.domain.notices import (
    PermanentError,
    TransientError,
    UpstreamUnavailable,
)
from shared.contracts.internal import (
    NOTICE_CONTEXT_PATH,
    STUDENT_NOTICE_CONTEXT_PATH,
    NoticeContext,
    StudentNoticeContext,
)

log = structlog.get_logger(__name__)


class PlacementsClient:
    """`fetch` returns a fresh `NoticeContext`, `fetch_student` a fresh `StudentNoticeContext`,
    or they raise a classified delivery error."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSource,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.url = base_url.rstrip("/") + NOTICE_CONTEXT_PATH
        self.student_url = base_url.rstrip("/") + STUDENT_NOTICE_CONTEXT_PATH
        self.tokens = tokens

    async def _get(self, url: str, params: dict[str, str]) -> tuple[httpx.Response, str | None]:
        token = await self.tokens.token()
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            response = await self.client.get(
                url, params=params, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"placements service unreachable: {type(exc).__name__}"
            ) from exc
        return response, token

    async def _answer(self, url: str, params: dict[str, str]) -> httpx.Response:
        """The route's answer (a 401 renewed once); raises for everything but 200 and 404."""
        response, token = await self._get(url, params)
        if response.status_code == 401 and token is not None:
            self.tokens.invalidate(token)  # refreshed once; a second 401 is reported below
            response, token = await self._get(url, params)
        status = response.status_code
        if status in (200, 404):
            return response
        if status in (401, 403):
            log.error(
                "placements service refused our token: check APL_AUTH_ISSUER, "
                "APL_NOTIFICATIONS_CLIENT_ID/SECRET and the client's notices:read scope",
                status=status,
                token_sent=token is not None,
            )
            raise TransientError(f"placements service refused the token ({status})")
        if status >= 500 or status in (408, 429):
            raise UpstreamUnavailable(f"placements service answered {status}")
        raise PermanentError(f"placements service answered {status}: {response.text[:200]}")

    async def fetch(self, placement_id: str, student_id: str | None) -> NoticeContext:
        params = {"placement_id": placement_id}
        if student_id is not None:
            params["student_id"] = student_id
        response = await self._answer(self.url, params)
        if response.status_code == 404:
            raise PermanentError(
                f"placements service has no notice context for placement {placement_id} "
                f"and student {student_id} (404)"
            )
        try:
            return NoticeContext.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(
                f"placements service answered a bad notice context: {exc}"
            ) from exc

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None
    ) -> StudentNoticeContext:
        """The student's notice context; with `placement_id` (a proposal or confirmation) it
        gives that placement, without it the vacancies that fit. A 404 (the student withdrew
        and was erased) is permanent: the notice fails at once."""
        params = {"student_id": student_id}
        if placement_id is not None:
            params["placement_id"] = placement_id
        response = await self._answer(self.student_url, params)
        if response.status_code == 404:
            raise PermanentError(
                f"placements service has no student notice context for student {student_id} "
                "(404: withdrawn or erased)"
            )
        try:
            return StudentNoticeContext.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(
                f"placements service answered a bad student notice context: {exc}"
            ) from exc
