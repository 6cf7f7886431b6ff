"""The notice contexts of one delivery batch, fetched together. Pure.

The delivery worker asks the placements service once per batch for every (placement, student)
notice context and every student notice context its notices need (`ContextSource.fetch_many`),
and tells each notice from the answer: a `ContextBatch` serves `fetch` and `fetch_student` like
the single routes would, each key's answer or its delivery error (a 404 is permanent; a key the
whole call could not fetch carries the call's error, e.g. the service unavailable).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.notifications.domain.notices import DeliveryError, PermanentError
from shared.contracts.internal import NoticeContext, StudentNoticeContext

SupervisorKey = tuple[str, str]
"""(placement id, student id) of a notice context."""
StudentKey = tuple[str, str | None, uuid.UUID | None]
"""(student id, placement id or None, round id or None) of a student notice context: without a
placement, the vacancies that fit (after that round)."""


class ContextNotFound(PermanentError):
    """The placements service has no such context (the single routes' 404): the notice fails."""


def no_context(placement_id: str, student_id: str | None) -> ContextNotFound:
    return ContextNotFound(
        f"placements service has no notice context for placement {placement_id} "
        f"and student {student_id} (404)"
    )


def no_student_context(student_id: str) -> ContextNotFound:
    return ContextNotFound(
        f"placements service has no student notice context for student {student_id} "
        "(404: withdrawn or erased)"
    )


@dataclass(frozen=True)
class ContextBatch:
    """Answers by key; a key not in the batch raises `missing` (the call's error) when set,
    else a 404 as the single route would answer."""

    supervisors: Mapping[SupervisorKey, NoticeContext | DeliveryError] = field(default_factory=dict)
    students: Mapping[StudentKey, StudentNoticeContext | DeliveryError] = field(
        default_factory=dict
    )
    missing: DeliveryError | None = None

    async def fetch(self, placement_id: str, student_id: str | None) -> NoticeContext:
        found = self.supervisors.get((placement_id, student_id or ""))
        if found is None:
            raise self.missing or no_context(placement_id, student_id)
        if isinstance(found, DeliveryError):
            raise found
        return found

    async def fetch_student(
        self, student_id: str, placement_id: str | None = None, round_id: uuid.UUID | None = None
    ) -> StudentNoticeContext:
        found = self.students.get((student_id, placement_id, round_id))
        if found is None:
            raise self.missing or no_student_context(student_id)
        if isinstance(found, DeliveryError):
            raise found
        return found

    async def fetch_many(
        self, supervisors: Sequence[SupervisorKey], students: Sequence[StudentKey]
    ) -> ContextBatch:
        """Itself: it already answers the batch's keys."""
        return self

    @classmethod
    def failed(cls, error: DeliveryError) -> ContextBatch:
        """Every key raises `error` (the batch call as a whole failed)."""
        return cls(missing=error)
