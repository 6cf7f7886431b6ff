"""The placements service's business rules, as pure functions over plain values.

No I/O here: the handlers load what a rule needs, call it, and write what it decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal, cast

from shared.contracts.events import DECLINE_REASONS, DeclineReason
from shared.contracts.profiles import MAX_PREFERENCES, iso_week_monday
from shared.contracts.vocabulary import Channel as ChannelKind
from shared.contracts.vocabulary import Party as Party

from .errors import Conflict, FieldError

MatchStateName = Literal["proposed", "accepted", "confirmed", "declined", "cancelled"]

OPEN_STATES: frozenset[str] = frozenset({"proposed", "accepted"})


# ------------------------------------------------------------------------------ profiles


def check_preferences(
    preferences: Sequence[str], active_placements: Iterable[str]
) -> list[FieldError]:
    """At most 10, no repeats, and every one a known placement that is not withdrawn."""
    errors: list[FieldError] = []
    if len(preferences) > MAX_PREFERENCES:
        errors.append(
            FieldError(
                "preferences",
                f"at most {MAX_PREFERENCES} preferences are allowed, got {len(preferences)}",
            )
        )
    known = set(active_placements)
    seen: dict[str, int] = {}
    for i, pid in enumerate(preferences):
        if pid in seen:
            errors.append(
                FieldError(
                    f"preferences[{i}]", f"{pid!r} is already listed at preferences[{seen[pid]}]"
                )
            )
            continue
        seen[pid] = i
        if pid not in known:
            errors.append(
                FieldError(f"preferences[{i}]", f"{pid!r} is not a known, open placement")
            )
    return errors


KIND_NAMES: Mapping[str, str] = {
    "student": "a placement for students",
    "teacher": "a working-life period for teachers",
}


def check_kinds(
    preferences: Sequence[str], kinds: Mapping[str, str], participant: str
) -> list[FieldError]:
    """A student ranks placements for students, a teacher working-life periods for teachers
    (`kinds`: the kind of each open placement ranked; unknown ones are `check_preferences`')."""
    want = "a student ranks placements for students"
    if participant == "teacher":
        want = "a teacher ranks working-life periods for teachers"
    return [
        FieldError(
            f"preferences[{i}]", f"{pid!r} is {KIND_NAMES.get(kinds[pid], kinds[pid])}; {want}"
        )
        for i, pid in enumerate(preferences)
        if pid in kinds and kinds[pid] != participant
    ]


def check_participant(
    participant: str, subject: str | None, weeks: Sequence[str]
) -> list[FieldError]:
    """A teacher registers with their subject (and may give available weeks, each a week of the
    calendar, once); a student has neither."""
    if participant != "teacher":
        errors = [FieldError("subject", "only a teacher has a subject")] if subject else []
        if weeks:
            errors.append(FieldError("available_weeks", "only a teacher gives available weeks"))
        return errors
    errors = []
    if not (subject or "").strip():
        errors.append(FieldError("subject", "required for a teacher: the subject they teach"))
    seen: dict[str, int] = {}
    for i, week in enumerate(weeks):
        if week in seen:
            errors.append(
                FieldError(f"available_weeks[{i}]", f"{week} is already listed at [{seen[week]}]")
            )
        elif iso_week_monday(week) is None:
            errors.append(
                FieldError(f"available_weeks[{i}]", f"{week} is not a week of the calendar")
            )
        seen.setdefault(week, i)
    return errors


def check_period(
    first: date | None, last: date | None, first_name: str, last_name: str
) -> list[FieldError]:
    """`last` must not be before `first` when both are given."""
    if first is not None and last is not None and last < first:
        return [FieldError(last_name, f"{last.isoformat()} is before {first_name} {first}")]
    return []


def check_ranking(ranking: Sequence[str] | None) -> list[FieldError]:
    """A company's ranking names each student at most once."""
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for i, sid in enumerate(ranking or ()):
        if sid in seen:
            errors.append(
                FieldError(f"ranking[{i}]", f"{sid!r} is already listed at ranking[{seen[sid]}]")
            )
        else:
            seen[sid] = i
    return errors


def offer_errors(offer: Mapping[str, Any]) -> list[FieldError]:
    """The cross-field rules of an offer (its fields as a mapping): the period, the ranking; a
    working-life period for teachers gives both its first and last day (a teacher's available
    weeks are checked against them)."""
    errors = check_period(offer.get("starts_on"), offer.get("ends_on"), "starts_on", "ends_on")
    if offer.get("kind") == "teacher":
        errors += [
            FieldError(name, "required for a working-life period for teachers")
            for name in ("starts_on", "ends_on")
            if offer.get(name) is None
        ]
    return errors + check_ranking(offer.get("ranking"))


def check_capacity(capacity: int, confirmed: int) -> list[FieldError]:
    """Capacity may not drop below the matches already confirmed at the placement."""
    if capacity < confirmed:
        return [
            FieldError(
                "capacity",
                f"{capacity} is below the {confirmed} match(es) already confirmed here",
            )
        ]
    return []


def check_notification(
    channel: ChannelKind, webhook_url: str | None, prefix: str
) -> list[FieldError]:
    """A webhook channel needs an http(s) URL; the e-mail channel takes none."""
    name = f"{prefix}webhook_url"
    if channel == "webhook":
        if not webhook_url:
            return [FieldError(name, "required when channel is 'webhook'")]
        if not webhook_url.startswith(("https://", "http://")):
            return [FieldError(name, "must be an http:// or https:// URL")]
    elif webhook_url is not None:
        return [FieldError(name, "only allowed when channel is 'webhook'")]
    return []


def in_item(index: int, errors: Iterable[FieldError]) -> list[FieldError]:
    """The errors of one item of a batch, named from the body's root (`items[3].ends_on`)."""
    return [FieldError(f"items[{index}].{e.field}", e.message) for e in errors]


def check_unique(ids: Sequence[str], field: str) -> list[FieldError]:
    """Each id at most once in a batch: a repeat is named with the item it repeats."""
    first: dict[str, int] = {}
    errors = []
    for i, value in enumerate(ids):
        if value in first:
            errors.append(FieldError(f"items[{i}].{field}", f"repeats items[{first[value]}]"))
        first.setdefault(value, i)
    return errors


@dataclass(frozen=True)
class Channel:
    kind: ChannelKind = "email"
    webhook_url: str | None = None


def resolve_channel(placement: Channel | None, company: Channel | None) -> Channel:
    """The placement's own setting wins, else the company's default, else e-mail."""
    return placement or company or Channel()


# ------------------------------------------------------------------------------- matches


@dataclass(frozen=True)
class Match:
    """What this service knows of one proposal and the answers to it."""

    match_id: str
    state: MatchStateName = "proposed"
    accepted_by_student: bool = False
    accepted_by_company: bool = False
    declined_by: Party | None = None
    reason: str | None = None


def decline_code(code: DeclineReason | None, reason: str | None) -> DeclineReason | None:
    """The code a decline travels with: the one given, else `reason` when it is a code, else
    `other` for words (they stay in this service and are erased with the student), else none."""
    if code is not None:
        return code
    if reason is None or not reason.strip():
        return None
    return cast(DeclineReason, reason) if reason in DECLINE_REASONS else "other"


def accept(match: Match, by: Party) -> Match:
    """`by` accepts the proposal; refused unless it is open and `by` has not accepted yet."""
    if match.state not in OPEN_STATES:
        raise Conflict(f"match {match.match_id} is {match.state}; it can no longer be accepted")
    already = match.accepted_by_student if by == "student" else match.accepted_by_company
    if already:
        raise Conflict(f"match {match.match_id} was already accepted by the {by}")
    return _accepted(match, by)


def decline(match: Match, by: Party, reason: str | None) -> Match:
    """`by` declines the proposal; refused unless it is still open (not confirmed or closed)."""
    if match.state not in OPEN_STATES:
        raise Conflict(f"match {match.match_id} is {match.state}; it can no longer be declined")
    return _declined(match, by, reason)


def _accepted(match: Match, by: Party) -> Match:
    if by == "student":
        return replace(match, state="accepted", accepted_by_student=True)
    return replace(match, state="accepted", accepted_by_company=True)


def _declined(match: Match, by: Party, reason: str | None) -> Match:
    return replace(match, state="declined", declined_by=by, reason=reason)


def apply_match_event(match: Match, event_type: str, *, reason: str | None = None) -> Match:
    """The state after a match event of the matching service (it decides confirmations and
    cancellations; a proposal changes nothing once stored). A late confirmation never reopens a
    declined or cancelled match. The answers are this service's own (`accept`, `decline`)."""
    if event_type == "MatchProposed":
        return match
    if event_type == "MatchConfirmed":
        if match.state in {"declined", "cancelled"}:
            return match
        return replace(match, state="confirmed")
    if event_type == "MatchCancelled":
        return replace(match, state="cancelled", reason=reason)
    raise ValueError(f"not an event of the matching service: {event_type}")


def contact_shared(matches: Iterable[Match]) -> bool:
    """The student's contact details go to the supervisor once the student accepted (or it is
    confirmed) a match at that placement."""
    return any(m.accepted_by_student or m.state == "confirmed" for m in matches)
