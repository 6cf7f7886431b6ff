"""An outcome's explanation in words: one renderer for `apl match --explain` and the services.

`describe(outcome, texts)` turns a `StudentOutcome` (codes with parameters) into lines: a
headline and one line per better choice. The message ids are English; `texts` translates them
(the placements service passes its Swedish and Finnish catalogues, `make messages` extracts
this module), and `PLAIN` is English as it stands, which is what the offline CLI prints. Numbers
and dates are written the same way in every language (whole kilometres, ISO dates), so the
English online and offline texts are the same text.

Other students are never named: a full choice says how many of its slots went to students
already confirmed there, of higher priority, or who ranked it better.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Protocol

from shared.contracts.outcomes import ChoiceNote, HeldBy, RuleFailure, StudentOutcome


class Texts(Protocol):
    """gettext's two calls, in one language."""

    def gettext(self, message: str) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int) -> str: ...


class _English:
    def gettext(self, message: str) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


PLAIN: Final[Texts] = _English()


def _km(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}"


def _day(value: date | None) -> str:
    return "…" if value is None else value.isoformat()


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _weeks(weeks: tuple[str, ...]) -> str:
    """ISO weeks, runs of consecutive weeks written as their first and last: "2027-W10 to
    2027-W12, 2027-W15" becomes "2027-W10–2027-W12, 2027-W15"."""
    runs: list[list[str]] = []
    last: date | None = None
    for week in weeks:
        try:
            monday = date.fromisocalendar(int(week[:4]), int(week[6:]), 1)
        except ValueError:
            monday = None
        if runs and last is not None and monday is not None and (monday - last).days == 7:
            runs[-1].append(week)
        else:
            runs.append([week])
        last = monday
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs)


def headline(outcome: StudentOutcome, t: Texts = PLAIN) -> str:
    """What the outcome is, in one sentence."""
    if outcome.placement_id is not None:
        if outcome.pinned:
            return t.gettext("Kept at %(placement)s: already accepted, confirmed or assigned.") % {
                "placement": outcome.placement_id
            }
        if outcome.filled:
            return t.gettext(
                "Placed at %(placement)s: a vacancy that fits, not among the choices."
            ) % {"placement": outcome.placement_id}
        return t.gettext("Placed at %(placement)s, choice %(rank)s.") % {
            "placement": outcome.placement_id,
            "rank": outcome.rank,
        }
    if outcome.reason == "choices_full":
        return t.gettext("Not placed: every choice that fits was needed by others.")
    if outcome.reason == "no_eligible_vacancy":
        return t.gettext("Not placed: no choice and no vacancy of the region fits.")
    if outcome.explanation.choices == 0:
        return t.gettext("Not placed: no placement was ranked.")
    return t.gettext("Not placed: none of the choices fits.")


def rule_text(rule: RuleFailure, t: Texts = PLAIN) -> str:
    """One failed rule with its figures, e.g. "distance 42 km > 30 km"."""
    if rule.rule == "required_skills":
        return t.ngettext(
            "lacks the required skill %(skills)s",
            "lacks the required skills %(skills)s",
            len(rule.missing),
        ) % {"skills": _list(rule.missing)}
    if rule.rule == "programmes":
        if rule.programme is None:
            return t.gettext("no programme given; it accepts %(accepted)s") % {
                "accepted": _list(rule.accepted)
            }
        return t.gettext("programme %(programme)s not accepted; it accepts %(accepted)s") % {
            "programme": rule.programme,
            "accepted": _list(rule.accepted),
        }
    if rule.rule == "period":
        return t.gettext(
            "period %(starts)s to %(ends)s outside availability %(available_from)s to "
            "%(available_to)s"
        ) % {
            "starts": _day(rule.starts_on),
            "ends": _day(rule.ends_on),
            "available_from": _day(rule.available_from),
            "available_to": _day(rule.available_to),
        }
    if rule.rule == "available_weeks":
        return t.ngettext(
            "period %(starts)s to %(ends)s touches week %(weeks)s, not among the available weeks",
            "period %(starts)s to %(ends)s touches weeks %(weeks)s, not among the available weeks",
            len(rule.unavailable_weeks),
        ) % {
            "starts": _day(rule.starts_on),
            "ends": _day(rule.ends_on),
            "weeks": _weeks(rule.unavailable_weeks),
        }
    if rule.rule == "max_travel_km":
        return t.gettext("distance %(distance)s km > %(limit)s km") % {
            "distance": _km(rule.distance_km),
            "limit": _km(rule.limit_km),
        }
    return t.gettext("declined earlier")


def _held_by(held: HeldBy, t: Texts) -> str:
    parts: list[str] = []
    groups = (
        (
            held.pinned,
            t.ngettext(
                "%(n)s student already confirmed or accepted there",
                "%(n)s students already confirmed or accepted there",
                held.pinned,
            ),
        ),
        (
            held.higher_priority,
            t.ngettext(
                "%(n)s student of higher priority",
                "%(n)s students of higher priority",
                held.higher_priority,
            ),
        ),
        (
            held.better_rank,
            t.ngettext(
                "%(n)s student who ranked it higher",
                "%(n)s students who ranked it higher",
                held.better_rank,
            ),
        ),
        (
            held.same_rank,
            t.ngettext(
                "%(n)s student who ranked it the same",
                "%(n)s students who ranked it the same",
                held.same_rank,
            ),
        ),
        (
            held.worse_rank,
            t.ngettext(
                "%(n)s student who ranked it lower but had no other place in the best outcome",
                "%(n)s students who ranked it lower but had no other place in the best outcome",
                held.worse_rank,
            ),
        ),
        (
            held.lower_priority,
            t.ngettext(
                "%(n)s student of lower priority who had no other place in the best outcome",
                "%(n)s students of lower priority who had no other place in the best outcome",
                held.lower_priority,
            ),
        ),
        (
            held.unranked,
            t.ngettext(
                "%(n)s student assigned by hand",
                "%(n)s students assigned by hand",
                held.unranked,
            ),
        ),
    )
    for n, text in groups:
        if n:
            parts.append(text % {"n": n})
    if not parts:
        return t.gettext("full: it has no slots")
    return t.ngettext(
        "full: its %(slots)s slot went to %(who)s",
        "full: its %(slots)s slots went to %(who)s",
        held.slots,
    ) % {"slots": held.slots, "who": "; ".join(parts)}


def note_text(note: ChoiceNote, t: Texts = PLAIN) -> str:
    """Why one choice is not the placement: "Choice 2 (p-7): distance 42 km > 30 km"."""
    head = t.gettext("Choice %(rank)s (%(placement)s)") % {
        "rank": note.rank,
        "placement": note.placement_id,
    }
    if note.status == "unknown":
        what = t.gettext("not a known placement")
    elif note.status == "withdrawn":
        what = t.gettext("withdrawn by the company")
    elif note.status == "ineligible":
        what = "; ".join(rule_text(rule, t) for rule in note.rules)
    elif note.status == "free":
        what = t.gettext("had a free slot, but the placement held is kept")
    else:
        what = _held_by(note.held_by or HeldBy(slots=0), t)
    return f"{head}: {what}"


def describe(outcome: StudentOutcome, t: Texts = PLAIN) -> list[str]:
    """The headline, then one line for each choice better than the outcome."""
    lines = [headline(outcome, t)]
    lines += [note_text(note, t) for note in outcome.explanation.better_choices]
    if not outcome.explanation.better_choices and outcome.rank == 1 and not outcome.pinned:
        lines.append(t.gettext("This is the first choice."))
    return lines
