"""Client of the placements service's internal notice-context routes: the supervisor's
(`NOTICE_CONTEXT_PATH`) and the student's (`STUDENT_NOTICE_CONTEXT_PATH`), and of its due
reminders (`REMINDERS_DUE_PATH`).

Each call carries `Authorization: Bearer <token>`, a client-credentials token of this service's
account (`adapters/tokens.py`, cached). A 401 means the token is no longer good (expired early,
keys rotated): it is dropped and the call made once more with a fresh one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from datetime import date
from typing import TypeVar

import httpx
import structlog
from pydantic import ValidationError

from services.notifications.adapters.tokens import TokenSource
from services.notifications.domain.contexts import (
    ContextBatch,
    ContextNotFound,
    StudentKey,
    SupervisorKey,
    no_context,
    no_student_context,
)
from services.notifications.domain.notices import (
    DeliveryError,
    PermanentError,
    TransientError,
    UpstreamUnavailable,
)
from shared.contracts.internal import (
    MAX_NOTICE_CONTEXTS,
    NOTICE_CONTEXT_PATH,
    NOTICE_CONTEXTS_PATH,
    REMINDERS_DUE_PATH,
    STUDENT_NOTICE_CONTEXT_PATH,
    DueReminders,
    NoticeContext,
    NoticeContextKey,
    NoticeContexts,
    NoticeContextsQuery,
    StudentNoticeContext,
    StudentNoticeContextKey,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")


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
        self.reminders_url = base_url.rstrip("/") + REMINDERS_DUE_PATH
        self.batch_url = base_url.rstrip("/") + NOTICE_CONTEXTS_PATH
        self.tokens = tokens

    async def _get(
        self, url: str, params: dict[str, str], body: bytes | None = None
    ) -> tuple[httpx.Response, str | None]:
        """GET `url` with `params`, or POST the JSON `body` to it."""
        token = await self.tokens.token()
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            if body is None:
                response = await self.client.get(
                    url, params=params, headers=headers, timeout=self.timeout
                )
            else:
                headers["Content-Type"] = "application/json"
                response = await self.client.post(
                    url, content=body, headers=headers, timeout=self.timeout
                )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"placements service unreachable: {type(exc).__name__}"
            ) from exc
        return response, token

    async def _answer(
        self, url: str, params: dict[str, str], body: bytes | None = None
    ) -> httpx.Response:
        """The route's answer (a 401 renewed once); raises for everything but 200 and 404."""
        response, token = await self._get(url, params, body)
        if response.status_code == 401 and token is not None:
            self.tokens.invalidate(token)  # refreshed once; a second 401 is reported below
            response, token = await self._get(url, params, body)
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
            raise no_context(placement_id, student_id)
        try:
            return NoticeContext.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(
                f"placements service answered a bad notice context: {exc}"
            ) from exc

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None, round_id: uuid.UUID | None = None
    ) -> StudentNoticeContext:
        """The student's notice context; with `placement_id` (a proposal or confirmation) it
        gives that placement, without it the vacancies that fit (after `round_id`: an answer
        not yet `settled` is a transient error, asked again later). A 404 (the student withdrew
        and was erased) is permanent: the notice fails at once."""
        params = {"student_id": student_id}
        if placement_id is not None:
            params["placement_id"] = placement_id
        if round_id is not None:
            params["round_id"] = str(round_id)
        response = await self._answer(self.student_url, params)
        if response.status_code == 404:
            raise no_student_context(student_id)
        try:
            found = StudentNoticeContext.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(
                f"placements service answered a bad student notice context: {exc}"
            ) from exc
        return _settled(found, round_id)

    async def due_reminders(
        self, starts_from: date, starts_until: date, *, after: uuid.UUID | None = None
    ) -> DueReminders:
        """A page of the confirmed matches whose placement starts between the two days (the
        reminders before a placement starts); raises a classified delivery error otherwise."""
        params = {"starts_from": starts_from.isoformat(), "starts_until": starts_until.isoformat()}
        if after is not None:
            params["after"] = str(after)
        response = await self._answer(self.reminders_url, params)
        if response.status_code == 404:
            raise PermanentError("placements service has no due reminders route (404)")
        try:
            return DueReminders.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(f"placements service answered bad due reminders: {exc}") from exc

    async def fetch_many(
        self, supervisors: Sequence[SupervisorKey], students: Sequence[StudentKey]
    ) -> ContextBatch:
        """The notice contexts and student notice contexts of a delivery batch, in calls of at
        most `MAX_NOTICE_CONTEXTS` of each (`POST NOTICE_CONTEXTS_PATH`). A call that fails
        (unreachable, 5xx, a refused token, a bad answer) fails every key it asked for with
        that error; a key answered None is a 404, permanent for its notice."""
        found_s: dict[SupervisorKey, NoticeContext | DeliveryError] = {}
        found_t: dict[StudentKey, StudentNoticeContext | DeliveryError] = {}
        step = MAX_NOTICE_CONTEXTS
        for start in range(0, max(len(supervisors), len(students)), step):
            keys_s, keys_t = supervisors[start : start + step], students[start : start + step]
            query = NoticeContextsQuery(
                supervisors=tuple(
                    NoticeContextKey(placement_id=p, student_id=s) for p, s in keys_s
                ),
                students=tuple(
                    StudentNoticeContextKey(student_id=s, placement_id=p, round_id=r)
                    for s, p, r in keys_t
                ),
            )
            try:
                answer = await self._contexts(query)
            except _NoBatchRoute:  # an older placements service: one call a key
                answer = await self._one_by_one(query)
            except DeliveryError as exc:
                found_s.update(dict.fromkeys(keys_s, exc))
                found_t.update(dict.fromkeys(keys_t, exc))
                continue
            for key, context in zip(keys_s, answer.supervisors, strict=True):
                found_s[key] = context if context is not None else no_context(*key)
            for skey, scontext in zip(keys_t, answer.students, strict=True):
                if scontext is None:
                    found_t[skey] = no_student_context(skey[0])
                    continue
                try:
                    found_t[skey] = _settled(scontext, skey[2])
                except UpstreamUnavailable as exc:
                    found_t[skey] = exc
        return ContextBatch(found_s, found_t)

    async def _contexts(self, query: NoticeContextsQuery) -> NoticeContexts:
        response = await self._answer(self.batch_url, {}, query.model_dump_json().encode())
        if response.status_code == 404:
            raise _NoBatchRoute()
        try:
            answer = NoticeContexts.model_validate_json(response.content)
        except ValidationError as exc:
            raise TransientError(f"placements service answered bad notice contexts: {exc}") from exc
        if len(answer.supervisors) != len(query.supervisors) or len(answer.students) != len(
            query.students
        ):
            raise TransientError("placements service answered another number of notice contexts")
        return answer

    async def _one_by_one(self, query: NoticeContextsQuery) -> NoticeContexts:
        """The batch's answer from the single routes (a placements service without the batch
        route answers it 404); the first error fails the whole batch, as the batch call would."""
        supervisors = [
            await self._maybe(self.fetch(k.placement_id, k.student_id)) for k in query.supervisors
        ]
        students = [
            await self._maybe(self.fetch_student(k.student_id, k.placement_id, k.round_id))
            for k in query.students
        ]
        return NoticeContexts.model_construct(
            supervisors=tuple(supervisors), students=tuple(students)
        )

    @staticmethod
    async def _maybe(call: Awaitable[T]) -> T | None:
        """The answer of a single route, None for its 404."""
        try:
            return await call
        except ContextNotFound:
            return None


class _NoBatchRoute(Exception):
    """The placements service answered the batch route 404: it has none yet."""


def _settled(context: StudentNoticeContext, round_id: uuid.UUID | None) -> StudentNoticeContext:
    """`context`, unless it gives the vacancies after a round the placements service has not
    applied in full yet: then our own service is not ready for the notice (`UpstreamUnavailable`:
    asked again shortly without using up an attempt, so it never offers a slot the same round
    gave to another student, and never fails for waiting)."""
    if not context.settled:
        raise UpstreamUnavailable(f"placements service has not yet applied round {round_id}")
    return context
