"""What can go wrong with a request, in domain terms; HTTP maps these to problem details."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts import events as ev


@dataclass(frozen=True)
class FieldError:
    """One bad field, named from the body's root (`preferences[3]`, `notification.webhook_url`)."""

    field: str
    message: str


class DomainError(Exception):
    """Base of the errors a request can run into."""

    title = "Request failed"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        """The fields the error is about (a 409 names them too: `placement_id`)."""


class Invalid(DomainError):
    """The request breaks a rule; `errors` names every bad field (HTTP 422)."""

    title = "Invalid request"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


class NotFound(DomainError):
    """The named resource does not exist (HTTP 404)."""

    title = "Not found"


class Conflict(DomainError):
    """The resource exists but is not in a state that allows this (HTTP 409); `errors` may
    name the fields concerned."""

    title = "Conflict"

    @classmethod
    def on(cls, field: str, message: str) -> Conflict:
        """A conflict about one field: the detail is `field: message`."""
        return cls(f"{field}: {message}", [FieldError(field, message)])


def second_standing_match(proposal: ev.MatchProposedData) -> Conflict:
    """A proposal for a student who already holds a standing match here: refused, as the
    matching service's read model refuses it (one standing match per student)."""
    return Conflict.on(
        "student_id",
        f"student {proposal.student_id} already has a standing match; proposal "
        f"{proposal.match_id} at {proposal.placement_id} is refused",
    )
