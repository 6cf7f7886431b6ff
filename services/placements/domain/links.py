"""A supervisor's signed action link, as the placements service answers it. Pure.

The token (`shared.contracts.links`) names one match and one action. Opening it (GET) shows the
match and asks once more; only the form's POST acts, as the company side of the match would
through the API (`answer_match` with `by="company"`), recorded with the actor role `supervisor`.
Every outcome is a page in the supervisor's language: this module says which page, with what
status and words; `entrypoints/actions.py` renders it (`templates/action.html.j2`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from shared.contracts.events import Actor
from shared.contracts.links import LINK_DAYS, ActionLink, LinkAction
from shared.contracts.vocabulary import Language as Language

from .commands import AnswerMatch
from .errors import Conflict
from .model import MatchRecord, Placement, Student, Withdrawn
from .rules import MatchStateName, accept, decline

LANGUAGES: tuple[Language, ...] = ("sv", "fi", "en")
DEFAULT_LANGUAGE: Language = "sv"
_BY_TAG: dict[str, Language] = {language: language for language in LANGUAGES}

SUPERVISOR_DECLINED = "supervisor_declined"
"""The reason a decline through a link gives (`MatchDeclined.data.reason`)."""

PageKind = Literal["ask", "done", "tampered", "expired", "used", "unknown", "closed"]
STATUS: dict[PageKind, int] = {
    "ask": 200,
    "done": 200,
    "tampered": 400,
    "expired": 410,
    "used": 410,
    "unknown": 404,
    "closed": 409,
}


def actor_of(link: ActionLink) -> Actor:
    """Who acts through a link: the link itself (no account, no name), as a supervisor."""
    return Actor(subject=f"action-link:{link.link_id}", role="supervisor", client=None)


def answer_of(link: ActionLink) -> AnswerMatch:
    """The company-side answer a link gives."""
    if link.action == "confirm":
        return AnswerMatch(match_id=link.match_id, by="company", answer="accept")
    return AnswerMatch(
        match_id=link.match_id, by="company", answer="decline", reason=SUPERVISOR_DECLINED
    )


def still_open(link: ActionLink, match: MatchRecord) -> bool:
    """Whether the company side may still give the link's answer (the state machine's rules)."""
    try:
        if link.action == "confirm":
            accept(match.machine(), "company")
        else:
            decline(match.machine(), "company", SUPERVISOR_DECLINED)
    except Conflict:
        return False
    return True


def language_of(accept_language: str | None) -> Language:
    """The first of sv, fi, en an `Accept-Language` header names (quality order), else sv."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, i, tag.strip().lower().split("-")[0]))
    for _, _, tag in sorted(ranked):
        found = _BY_TAG.get(tag)
        if found is not None:
            return found
    return DEFAULT_LANGUAGE


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

    @property
    def status(self) -> int:
        return STATUS[self.kind]

    def language(self, fallback: Language) -> Language:
        """The supervisor's language, else `fallback` (the browser's)."""
        if self.summary is not None and self.summary.language is not None:
            return self.summary.language
        return fallback

    def as_kind(self, kind: PageKind) -> ActionPage:
        return replace(self, kind=kind)

    def words(self, language: Language) -> dict[str, str]:
        """The page's title, text and button in `language`."""
        texts = TEXTS[language]
        key = f"{self.kind}_{self.action}" if self.kind in {"ask", "done"} else self.kind
        state = texts[f"state_{self.summary.state}"] if self.summary else ""
        return {
            "title": texts[f"title_{key}"],
            "text": texts[f"text_{key}"].format(state=state, days=LINK_DAYS),
            "button": texts[f"button_{self.action}"] if self.action else "",
        }


TEXTS: dict[Language, dict[str, str]] = {
    "sv": {
        "page": "APL Match",
        "title_ask_confirm": "Bekräfta förslaget?",
        "text_ask_confirm": (
            "Du är på väg att bekräfta förslaget nedan för ert företags räkning. När också "
            "eleven har tackat ja är APL-platsen bekräftad och du får elevens kontaktuppgifter."
        ),
        "title_ask_decline": "Avböja förslaget?",
        "text_ask_decline": (
            "Du är på väg att avböja förslaget nedan för ert företags räkning. Det går inte att "
            "ångra här."
        ),
        "button_confirm": "Bekräfta",
        "button_decline": "Avböj",
        "title_done_confirm": "Tack! Förslaget är bekräftat",
        "text_done_confirm": (
            "Ert svar är registrerat. När också eleven har tackat ja får du ett meddelande med "
            "elevens kontaktuppgifter."
        ),
        "title_done_decline": "Förslaget är avböjt",
        "text_done_decline": (
            "Ert svar är registrerat. Koordinatorn ser det, och eleven kan få ett nytt förslag."
        ),
        "title_tampered": "Länken är inte giltig",
        "text_tampered": (
            "Länken är ofullständig eller har ändrats. Öppna den direkt från e-postmeddelandet, "
            "eller kontakta er APL-koordinator."
        ),
        "title_expired": "Länken har gått ut",
        "text_expired": (
            "Länkarna i meddelandena gäller i {days} dagar. Kontakta er APL-koordinator om "
            "förslaget fortfarande är aktuellt."
        ),
        "title_used": "Länken är redan använd",
        "text_used": (
            "Varje länk fungerar en gång, och den här har redan använts. Läge just nu: {state}."
        ),
        "title_unknown": "Förslaget finns inte",
        "text_unknown": "Förslaget som länken gäller finns inte. Kontakta er APL-koordinator.",
        "title_closed": "Förslaget är inte längre öppet",
        "text_closed": (
            "Förslaget har redan besvarats för ert företag eller är inte längre öppet. "
            "Läge just nu: {state}."
        ),
        "state_proposed": "föreslaget",
        "state_accepted": "accepterat",
        "state_confirmed": "bekräftat",
        "state_declined": "avböjt",
        "state_cancelled": "återkallat",
        "label_placement": "APL-plats",
        "label_period": "Period",
        "label_programme": "Elevens program",
        "label_available": "Eleven kan",
        "label_student": "Elev",
        "label_state": "Läge",
    },
    "fi": {
        "page": "APL Match",
        "title_ask_confirm": "Vahvistetaanko ehdotus?",
        "text_ask_confirm": (
            "Olet vahvistamassa alla olevan ehdotuksen yrityksenne puolesta. Kun myös "
            "opiskelija on hyväksynyt sen, paikka on vahvistettu ja saat opiskelijan "
            "yhteystiedot."
        ),
        "title_ask_decline": "Hylätäänkö ehdotus?",
        "text_ask_decline": (
            "Olet hylkäämässä alla olevan ehdotuksen yrityksenne puolesta. Tätä ei voi perua "
            "täällä."
        ),
        "button_confirm": "Vahvista",
        "button_decline": "Hylkää",
        "title_done_confirm": "Kiitos! Ehdotus on vahvistettu",
        "text_done_confirm": (
            "Vastauksenne on kirjattu. Kun myös opiskelija on hyväksynyt ehdotuksen, saat "
            "viestin, jossa on opiskelijan yhteystiedot."
        ),
        "title_done_decline": "Ehdotus on hylätty",
        "text_done_decline": (
            "Vastauksenne on kirjattu. Koordinaattori näkee sen, ja opiskelija voi saada uuden "
            "ehdotuksen."
        ),
        "title_tampered": "Linkki ei ole kelvollinen",
        "text_tampered": (
            "Linkki on puutteellinen tai sitä on muutettu. Avaa se suoraan sähköpostiviestistä "
            "tai ota yhteyttä koordinaattoriin."
        ),
        "title_expired": "Linkki on vanhentunut",
        "text_expired": (
            "Viestien linkit ovat voimassa {days} päivää. Ota yhteyttä koordinaattoriin, jos "
            "ehdotus on yhä ajankohtainen."
        ),
        "title_used": "Linkki on jo käytetty",
        "text_used": "Kukin linkki toimii kerran, ja tämä on jo käytetty. Tila nyt: {state}.",
        "title_unknown": "Ehdotusta ei löydy",
        "text_unknown": "Linkin tarkoittamaa ehdotusta ei löydy. Ota yhteyttä koordinaattoriin.",
        "title_closed": "Ehdotus ei ole enää avoinna",
        "text_closed": (
            "Ehdotukseen on jo vastattu yrityksenne puolesta, tai se ei ole enää avoinna. "
            "Tila nyt: {state}."
        ),
        "state_proposed": "ehdotettu",
        "state_accepted": "hyväksytty",
        "state_confirmed": "vahvistettu",
        "state_declined": "hylätty",
        "state_cancelled": "peruttu",
        "label_placement": "Työpaikka",
        "label_period": "Ajanjakso",
        "label_programme": "Opiskelijan koulutus",
        "label_available": "Opiskelija käytettävissä",
        "label_student": "Opiskelija",
        "label_state": "Tila",
    },
    "en": {
        "page": "APL Match",
        "title_ask_confirm": "Confirm the proposal?",
        "text_ask_confirm": (
            "You are about to confirm the proposal below for your company. Once the student "
            "has accepted too, the placement is confirmed and you receive the student's contact "
            "details."
        ),
        "title_ask_decline": "Decline the proposal?",
        "text_ask_decline": (
            "You are about to decline the proposal below for your company. This cannot be "
            "undone here."
        ),
        "button_confirm": "Confirm",
        "button_decline": "Decline",
        "title_done_confirm": "Thank you! The proposal is confirmed",
        "text_done_confirm": (
            "Your answer is recorded. Once the student has accepted too, you receive a message "
            "with the student's contact details."
        ),
        "title_done_decline": "The proposal is declined",
        "text_done_decline": (
            "Your answer is recorded. The coordinator sees it, and the student may get a new "
            "proposal."
        ),
        "title_tampered": "This link is not valid",
        "text_tampered": (
            "The link is incomplete or was changed. Open it directly from the e-mail, or "
            "contact your placement coordinator."
        ),
        "title_expired": "This link has expired",
        "text_expired": (
            "The links in the notices are valid for {days} days. Contact your placement "
            "coordinator if the proposal still stands."
        ),
        "title_used": "This link was already used",
        "text_used": "Each link works once, and this one has been used. The match is {state}.",
        "title_unknown": "The proposal does not exist",
        "text_unknown": (
            "The proposal this link is about does not exist. Contact your placement coordinator."
        ),
        "title_closed": "The proposal is no longer open",
        "text_closed": (
            "The proposal was already answered for your company, or it is no longer open. "
            "The match is {state}."
        ),
        "state_proposed": "proposed",
        "state_accepted": "accepted",
        "state_confirmed": "confirmed",
        "state_declined": "declined",
        "state_cancelled": "cancelled",
        "label_placement": "Placement",
        "label_period": "Period",
        "label_programme": "Student's programme",
        "label_available": "Student available",
        "label_student": "Student",
        "label_state": "State",
    },
}


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
