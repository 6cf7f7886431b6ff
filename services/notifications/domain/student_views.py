"""What a notice to a student says, built from the freshly fetched `StudentNoticeContext`. Pure.

`build_student_view` turns one student notice (its kind and `detail`, see
`notices.PlannedNotice`) and the placements service's student notice context into a
`StudentNoticeView`: the student's language, name and address (used for this message only),
the subject and the fields the `student_*` templates show — the placement proposed or confirmed,
how it was chosen, why the student is unplaced, and the vacancies that fit them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.contracts.internal import NoticeVacancy, StudentNoticeContext
from shared.contracts.vocabulary import Language

from . import teachers
from .notices import STUDENT_KINDS, NoticeKind, PermanentError

STUDENT_SUBJECTS: dict[Language, dict[NoticeKind, str]] = {
    "sv": {
        "student_proposed": "Du har fått ett förslag på APL-plats: {title}",
        "student_confirmed": "Din APL-plats är bekräftad: {title}",
        "student_unplaced": "Du har ingen APL-plats än – så går du vidare",
        "student_supplementary": "Kompletterande omgång: välj bland lediga APL-platser",
        "student_reminder": "Påminnelse: din APL börjar snart: {title}",
    },
    "fi": {
        "student_proposed": "Sinulle ehdotetaan työelämäjakson paikkaa: {title}",
        "student_confirmed": "Työelämäjaksosi paikka on vahvistettu: {title}",
        "student_unplaced": "Et saanut vielä työelämäjakson paikkaa – näin jatkat",
        "student_supplementary": "Täydentävä sijoittelukierros: valitse sopivista paikoista",
        "student_reminder": "Muistutus: työelämäjaksosi alkaa pian: {title}",
    },
    "en": {
        "student_proposed": "A placement is proposed for you: {title}",
        "student_confirmed": "Your placement is confirmed: {title}",
        "student_unplaced": "You have no placement yet: your next steps",
        "student_supplementary": "Supplementary round: rank the vacancies that fit you",
        "student_reminder": "Reminder: your placement starts soon: {title}",
    },
}

HOW: dict[Language, dict[str, str]] = {
    "sv": {
        "rank": "ditt val nummer {rank}",
        "filled": "en ledig plats som passar dig, fast du inte hade valt den",
        "override": "tilldelad av din samordnare",
    },
    "fi": {
        "rank": "toivelistasi {rank}. vaihtoehto",
        "filled": "vapaa paikka, joka sopii sinulle, vaikka et valinnut sitä",
        "override": "koordinaattorisi osoittama paikka",
    },
    "en": {
        "rank": "your choice no. {rank}",
        "filled": "a vacancy that fits you, though you did not rank it",
        "override": "assigned by your coordinator",
    },
}
"""How a proposed placement was chosen (`detail` of a student_proposed notice)."""

UNPLACED: dict[Language, dict[str, str]] = {
    "sv": {
        "no_eligible_choice": (
            "ingen av platserna du valde passade dig (kunskaper, program, period eller resväg)"
        ),
        "choices_full": "platserna du valde behövdes av andra elever",
        "no_eligible_vacancy": "varken dina val eller någon ledig plats i regionen passade dig",
    },
    "fi": {
        "no_eligible_choice": (
            "mikään valitsemistasi paikoista ei sopinut sinulle (osaaminen, koulutusala, "
            "ajankohta tai matka)"
        ),
        "choices_full": "valitsemasi paikat menivät muille opiskelijoille",
        "no_eligible_vacancy": (
            "sinulle ei sopinut mikään valitsemistasi paikoista eikä yksikään alueen vapaa paikka"
        ),
    },
    "en": {
        "no_eligible_choice": (
            "none of the placements you ranked fit you (skills, programme, period or travel)"
        ),
        "choices_full": "the placements you ranked were all needed by other students",
        "no_eligible_vacancy": "neither your choices nor any vacancy of your region fit you",
    },
}
"""Why the student is unplaced (`detail` of a student_unplaced notice: the outcome's reason)."""


@dataclass(frozen=True)
class VacancyView:
    """One vacancy as a notice lists it."""

    placement_id: str
    title: str
    free_slots: int
    starts_on: date | None
    ends_on: date | None
    distance_km: int | None
    """Whole km from the student's home; None without coordinates."""

    @classmethod
    def of(cls, vacancy: NoticeVacancy) -> VacancyView:
        distance = vacancy.distance_km
        return cls(
            placement_id=vacancy.placement_id,
            title=vacancy.title or vacancy.placement_id,
            free_slots=vacancy.free_slots,
            starts_on=vacancy.starts_on,
            ends_on=vacancy.ends_on,
            distance_km=None if distance is None else round(distance),
        )


@dataclass(frozen=True)
class StudentNoticeView:
    """Everything a `student_*` template needs for one message."""

    notification_id: uuid.UUID
    kind: NoticeKind
    language: Language
    student_name: str
    student_email: str
    title: str | None = None
    """The placement proposed or confirmed (its title, or its id without one)."""
    starts_on: date | None = None
    ends_on: date | None = None
    how: str | None = None
    reason: str | None = None
    vacancies: list[VacancyView] = field(default_factory=list)
    vacancies_total: int = 0
    page_url: str | None = None
    ranks_until: date | None = None
    participant: str = "student"
    """`teacher`: a teacher's notice about working-life periods (`teachers.py`)."""

    @property
    def channel(self) -> str:
        return "email"  # students have no webhook

    @property
    def subject(self) -> str:
        words = teachers.SUBJECTS if self.participant == "teacher" else STUDENT_SUBJECTS
        template = words[self.language].get(self.kind) or STUDENT_SUBJECTS[self.language][self.kind]
        return template.format(title=self.title or "")

    @property
    def more_vacancies(self) -> int:
        """Vacancies that fit but are not listed (the context lists the nearest only)."""
        return max(self.vacancies_total - len(self.vacancies), 0)

    def template_vars(self) -> dict[str, Any]:
        return {
            "notice": self,
            "subject": self.subject,
            "name": self.student_name,
            "title": self.title,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "how": self.how,
            "reason": self.reason,
            "vacancies": self.vacancies,
            "vacancies_total": self.vacancies_total,
            "more_vacancies": self.more_vacancies,
            "page_url": self.page_url,
            "ranks_until": self.ranks_until,
        }


def _how(language: Language, detail: str | None, participant: str = "student") -> str | None:
    if detail is None:
        return None
    words = HOW[language]
    if participant == "teacher":
        words = {**words, **teachers.HOW[language]}
    if detail.startswith("rank:"):
        return words["rank"].format(rank=detail.removeprefix("rank:"))
    return words.get(detail)


def _until(detail: str | None) -> date | None:
    if not detail:
        return None
    try:
        return date.fromisoformat(detail)
    except ValueError:
        return None


def build_student_view(
    notice_id: uuid.UUID,
    kind: NoticeKind,
    context: StudentNoticeContext,
    *,
    placement_id: str | None = None,
    detail: str | None = None,
) -> StudentNoticeView:
    """The view of one notice to a student. A proposal, confirmation or reminder (`placement_id`
    given) needs the context's placement; the other kinds list the context's vacancies.

    Raises `PermanentError` when the context cannot tell what the notice is about.
    """
    if kind not in STUDENT_KINDS:
        raise ValueError(f"kind: {kind!r} is not a student's notice")
    language = context.language
    who = context.participant
    if context.placement is not None and context.placement.kind == "teacher":
        who = "teacher"
    base: dict[str, Any] = {
        "notification_id": notice_id,
        "kind": kind,
        "language": language,
        "student_name": context.name,
        "student_email": context.email,
        "page_url": context.page_url,
        "participant": who,
    }
    unplaced = teachers.UNPLACED if who == "teacher" else UNPLACED
    if kind in ("student_proposed", "student_confirmed", "student_reminder"):
        placement = context.placement
        if placement is None or (
            placement_id is not None and placement.placement_id != placement_id
        ):
            raise PermanentError(
                f"student notice context of student {context.student_id} has no placement "
                f"{placement_id}"
            )
        return StudentNoticeView(
            **base,
            title=placement.title or placement.placement_id,
            starts_on=placement.starts_on,
            ends_on=placement.ends_on,
            how=_how(language, detail, who) if kind == "student_proposed" else None,
        )
    return StudentNoticeView(
        **base,
        reason=unplaced[language].get(detail or "") if kind == "student_unplaced" else None,
        vacancies=[VacancyView.of(v) for v in context.vacancies],
        vacancies_total=max(context.vacancies_total, len(context.vacancies)),
        ranks_until=_until(detail) if kind == "student_supplementary" else None,
    )
