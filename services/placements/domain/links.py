"""A supervisor's signed action link, as the placements service answers it. Pure.

The token (`shared.contracts.links`) names one match and one action. Opening it (GET) shows the
match and asks once more; only the form's POST acts, as the company side of the match would
through the API (`answer_match` with `by="company"`), recorded with the actor role `supervisor`.
Every outcome is a page in the supervisor's language: this module says which page and with what
status; `entrypoints/actions.py` renders it (`templates/action.html.j2`) with the words of the
web application's catalogues.

A `training` link records the day the supervisor of the match's placement completed the
region's supervisor course (`domain/supervisors.py`); a confirm link of a region that requires a
ready supervisor asks for that day too when the supervisor is not ready, and records it in the
same transaction as the confirmation (a confirmation the region refuses is the `not_ready` page).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from shared.contracts.events import Actor
from shared.contracts.internal import NoticeReadiness
from shared.contracts.links import ActionLink, LinkAction
from shared.contracts.vocabulary import Language as Language

from .commands import AnswerMatch
from .errors import Conflict
from .model import MatchRecord, Placement, Student, Withdrawn
from .rules import MatchStateName, accept, decline

SUPERVISOR_DECLINED = "supervisor_declined"
"""The reason a decline through a link gives (`MatchDeclined.data.reason`)."""

PageKind = Literal["ask", "done", "tampered", "expired", "used", "unknown", "closed", "not_ready"]
STATUS: dict[PageKind, int] = {
    "ask": 200,
    "done": 200,
    "tampered": 400,
    "expired": 410,
    "used": 410,
    "unknown": 404,
    "closed": 409,
    "not_ready": 409,
}


def actor_of(link: ActionLink) -> Actor:
    """Who acts through a link: the link itself (no account, no name), as a supervisor."""
    return Actor(subject=f"action-link:{link.link_id}", role="supervisor", client=None)


def answer_of(link: ActionLink) -> AnswerMatch:
    """The company-side answer a confirm or decline link gives."""
    if link.action == "training":
        raise ValueError("a training link answers no match")
    if link.action == "confirm":
        return AnswerMatch(match_id=link.match_id, by="company", answer="accept")
    return AnswerMatch(
        match_id=link.match_id, by="company", answer="decline", reason=SUPERVISOR_DECLINED
    )


def still_open(link: ActionLink, match: MatchRecord) -> bool:
    """Whether the company side may still give the link's answer (the state machine's rules);
    a training link stays open whatever became of its match."""
    if link.action == "training":
        return True
    try:
        if link.action == "confirm":
            accept(match.machine(), "company")
        else:
            decline(match.machine(), "company", SUPERVISOR_DECLINED)
    except Conflict:
        return False
    return True


@dataclass(frozen=True)
class MatchSummary:
    """What a link's page shows of its match: nothing personal but the student's name once the
    match is confirmed."""

    state: MatchStateName
    placement_title: str
    starts_on: date | None
    ends_on: date | None
    programme: str | None
    available_from: date | None
    available_to: date | None
    student_name: str | None
    language: Language | None
    """The supervisor's language (None when the placement names no supervisor)."""


def summary_of(
    match: MatchRecord, placement: Placement | None, student: Student | Withdrawn | None
) -> MatchSummary:
    offer = placement.offer if placement else None
    profile = student.profile if isinstance(student, Student) else None
    confirmed = match.state == "confirmed"
    return MatchSummary(
        state=match.state,
        placement_title=(offer.title if offer else None) or match.placement_id,
        starts_on=offer.starts_on if offer else None,
        ends_on=offer.ends_on if offer else None,
        programme=(
            profile.programme
            if profile
            else student.programme
            if isinstance(student, Withdrawn)
            else None
        ),
        available_from=profile.available_from if profile else None,
        available_to=profile.available_to if profile else None,
        student_name=(student.contact.name if confirmed and isinstance(student, Student) else None),
        language=offer.supervisor.language if offer and offer.supervisor else None,
    )


@dataclass(frozen=True)
class ActionPage:
    """Which page a link gets: its kind, the link's action, and the match when known."""

    kind: PageKind
    action: LinkAction | None = None
    summary: MatchSummary | None = None
    readiness: NoticeReadiness | None = None
    """The supervisor's training and the region's course (None: no supervisor named, or a
    page that does not say)."""
    error: str | None = None
    """What is wrong with the day given (the page asks again, 422)."""
    trained_on: str = ""
    """The day as the supervisor typed it (shown again with an error)."""

    @property
    def status(self) -> int:
        return 422 if self.error is not None else STATUS[self.kind]

    @property
    def asks_training(self) -> bool:
        """The page asks for the day the supervisor completed the course: a training link, or
        a confirmation the region refuses until the supervisor is ready."""
        if self.kind not in {"ask", "not_ready"}:
            return False
        if self.action == "training":
            return True
        r = self.readiness
        return self.action == "confirm" and r is not None and r.required and not r.ready

    def language(self, fallback: Language) -> Language:
        """The supervisor's language, else `fallback` (the browser's)."""
        if self.summary is not None and self.summary.language is not None:
            return self.summary.language
        return fallback

    def as_kind(self, kind: PageKind) -> ActionPage:
        return replace(self, kind=kind)

    @property
    def key(self) -> str:
        """Which words the page says: its kind, and for a question or its answer the action
        (`ask_confirm`, `done_decline`, `expired`, ...); a training recorded that is already
        too old for the region is `done_training_expired`."""
        if self.kind in {"ask", "done"} and self.action is not None:
            if (
                self.kind == "done"
                and self.action == "training"
                and self.readiness is not None
                and not self.readiness.ready
            ):
                return "done_training_expired"
            return f"{self.kind}_{self.action}"
        return self.kind


@dataclass(frozen=True)
class MatchAtPlacement:
    """A match as the staff of the placement's company see it: what a supervisor's link shows
    (`summary_of`: pseudonymous, the student's name once the match is confirmed), the student's
    skills, and their e-mail and phone on the same condition as the name."""

    match: MatchRecord
    summary: MatchSummary
    skills: tuple[str, ...]
    email: str | None
    phone: str | None

    @property
    def company_may_accept(self) -> bool:
        """Whether the company side may still accept (the state machine's rules)."""
        try:
            accept(self.match.machine(), "company")
        except Conflict:
            return False
        return True

    @property
    def company_may_decline(self) -> bool:
        try:
            decline(self.match.machine(), "company", None)
        except Conflict:
            return False
        return True


def at_placement(
    match: MatchRecord, placement: Placement | None, student: Student | Withdrawn | None
) -> MatchAtPlacement:
    summary = summary_of(match, placement, student)
    profile = student.profile if isinstance(student, Student) else None
    contact = student.contact if isinstance(student, Student) and summary.student_name else None
    return MatchAtPlacement(
        match=match,
        summary=summary,
        skills=profile.skills if profile else (),
        email=contact.email if contact else None,
        phone=contact.phone if contact else None,
    )
