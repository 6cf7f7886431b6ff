"""What a rendered notice says, built from freshly fetched notice contexts. Pure.

`build_view` turns one notice (or a digest of several) plus the placements service's
`NoticeContext`s into a `NoticeView`: language, subject and the fields the templates show. The
student's name and contact appear only when the context says the student shared them; a
proposal's students carry the signed confirm/decline links (`actions`) given with the contexts.
A supervisor whose training for the region's supervisor course is not valid (the context's
`readiness`) is offered the course and a link to record it (`ReadinessView`, the partial
`_readiness` of each language), in every notice but a cancellation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.contracts.internal import NoticeContext, NoticeReadiness, NoticeStudent
from shared.contracts.vocabulary import Channel, Language

from . import teachers
from .actions import TRAINING_KINDS, ActionUrls
from .notices import NoticeKind, PermanentError

SUBJECTS: dict[Language, dict[NoticeKind, str]] = {
    "sv": {
        "proposed": "En elev föreslås till er APL-plats: {title}",
        "confirmed": "APL-platsen är bekräftad: {title}",
        "cancelled": "Förslaget till er APL-plats är återkallat: {title}",
        "digest": "{count} elever föreslås till er APL-plats: {title}",
        "reminder": "Påminnelse: APL-perioden börjar snart: {title}",
    },
    "fi": {
        "proposed": "Opiskelijaa ehdotetaan työpaikallenne: {title}",
        "confirmed": "Työelämäjakso on vahvistettu: {title}",
        "cancelled": "Ehdotus työpaikallenne on peruttu: {title}",
        "digest": "{count} opiskelijaa ehdotetaan työpaikallenne: {title}",
        "reminder": "Muistutus: työelämäjakso alkaa pian: {title}",
    },
    "en": {
        "proposed": "A student is proposed for your placement: {title}",
        "confirmed": "Placement confirmed: {title}",
        "cancelled": "A proposal for your placement was cancelled: {title}",
        "digest": "{count} students are proposed for your placement: {title}",
        "reminder": "Reminder: the placement starts soon: {title}",
    },
}


REASONS: dict[Language, dict[str, str]] = {
    "sv": {
        "superseded": "ett nytt matchningsresultat ersatte förslaget",
        "declined": "eleven eller företaget tackade nej",
        "student_withdrawn": "eleven har dragit sig ur",
        "placement_withdrawn": "platsen har dragits tillbaka",
        "capacity_reduced": "antalet platser har minskats",
    },
    "fi": {
        "superseded": "uusi sijoittelu korvasi ehdotuksen",
        "declined": "opiskelija tai yritys kieltäytyi",
        "student_withdrawn": "opiskelija on vetäytynyt",
        "placement_withdrawn": "paikka on peruttu",
        "capacity_reduced": "paikkojen määrää on vähennetty",
    },
    "en": {
        "superseded": "a newer matching result replaced the proposal",
        "declined": "the student or the company declined",
        "student_withdrawn": "the student withdrew",
        "placement_withdrawn": "the placement was withdrawn",
        "capacity_reduced": "the number of places was reduced",
    },
}


@dataclass(frozen=True)
class StudentView:
    student_id: str
    programme: str | None
    available_from: date | None
    available_to: date | None
    contact_shared: bool
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    actions: ActionUrls | None = None
    """The supervisor's confirm and decline links for this student's match (proposals)."""
    participant: str = "student"
    """`teacher`: a teacher on a working-life period (subject, skills, weeks are theirs)."""
    subject: str | None = None
    skills: tuple[str, ...] = ()
    available_weeks: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, student: NoticeStudent, *, may_share: bool, actions: ActionUrls | None = None
    ) -> StudentView:
        """The student as a notice shows them: name and contact only when the student shared
        them and the notice `may_share` them (a confirmation)."""
        shared = student.contact_shared and may_share
        return cls(
            student_id=student.student_id,
            programme=student.programme,
            available_from=student.available_from,
            available_to=student.available_to,
            contact_shared=shared,
            name=student.name if shared else None,
            email=student.email if shared else None,
            phone=student.phone if shared else None,
            actions=actions,
            participant=student.participant,
            subject=student.subject,
            skills=student.skills,
            available_weeks=student.available_weeks,
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "student_id": self.student_id,
            "programme": self.programme,
            "available_from": self.available_from.isoformat() if self.available_from else None,
            "available_to": self.available_to.isoformat() if self.available_to else None,
            "contact_shared": self.contact_shared,
        }
        if self.contact_shared:
            out.update(name=self.name, email=self.email, phone=self.phone)
        if self.actions is not None:
            out["actions"] = {"confirm": self.actions.confirm, "decline": self.actions.decline}
        return out


@dataclass(frozen=True)
class ReadinessView:
    """The supervisor's training as a notice tells it: their status, the region's course, and
    the signed link on which they record the day they completed it."""

    status: str
    trained_on: date | None
    expires_on: date | None
    validity_years: int
    course_url: str | None
    required: bool
    record_url: str | None = None

    @property
    def ready(self) -> bool:
        return self.status == "valid"

    @classmethod
    def of(cls, readiness: NoticeReadiness, record_url: str | None) -> ReadinessView:
        return cls(
            status=readiness.status,
            trained_on=readiness.trained_on,
            expires_on=readiness.expires_on,
            validity_years=readiness.validity_years,
            course_url=readiness.course_url,
            required=readiness.required,
            record_url=None if readiness.ready else record_url,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "trained_on": self.trained_on.isoformat() if self.trained_on else None,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "validity_years": self.validity_years,
            "course_url": self.course_url,
            "required": self.required,
            "record_url": self.record_url,
        }


@dataclass(frozen=True)
class NoticeView:
    """Everything a template or webhook payload needs for one message."""

    notification_id: uuid.UUID
    kind: NoticeKind
    language: Language
    channel: Channel
    webhook_url: str | None
    supervisor_name: str | None
    supervisor_email: str | None
    placement: dict[str, Any]
    placement_title: str
    starts_on: date | None
    ends_on: date | None
    students: list[StudentView] = field(default_factory=list)
    reason: str | None = None
    readiness: ReadinessView | None = None
    """The supervisor's training and the region's course (None: not told in this notice)."""

    @property
    def participant(self) -> str:
        """`teacher` for a working-life period for teachers (its wording: `teachers.py`)."""
        return str(self.placement.get("kind") or "student")

    @property
    def subject(self) -> str:
        words = teachers.SUBJECTS if self.participant == "teacher" else SUBJECTS
        template = words[self.language].get(self.kind) or SUBJECTS[self.language][self.kind]
        return template.format(title=self.placement_title, count=len(self.students))

    @property
    def reason_text(self) -> str | None:
        if self.reason is None:
            return None
        if self.participant == "teacher" and self.reason in teachers.REASONS[self.language]:
            return teachers.REASONS[self.language][self.reason]
        return REASONS[self.language].get(self.reason, self.reason)

    @property
    def student(self) -> StudentView | None:
        return self.students[0] if len(self.students) == 1 else None

    def template_vars(self) -> dict[str, Any]:
        return {
            "notice": self,
            "student": self.student,
            "students": self.students,
            "placement": self.placement,
            "title": self.placement_title,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "supervisor_name": self.supervisor_name,
            "reason": self.reason_text,
            "subject": self.subject,
            "readiness": self.readiness,
        }

    def webhook_payload(self, occurred_at: datetime) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "notification_id": str(self.notification_id),
            "kind": self.kind,
            "placement": self.placement,
            "student": self.student.as_json() if self.student else None,
            "occurred_at": occurred_at.isoformat(),
        }
        if self.kind == "digest":
            payload["students"] = [s.as_json() for s in self.students]
        if self.reason is not None:
            payload["reason"] = self.reason
        if self.readiness is not None:
            payload["readiness"] = self.readiness.as_json()
        return payload


def build_view(
    notice_id: uuid.UUID,
    kind: NoticeKind,
    contexts: list[NoticeContext],
    *,
    reason: str | None = None,
    actions: Sequence[ActionUrls | None] = (),
    training: str | None = None,
) -> NoticeView:
    """The view of one notice (one context) or one digest (a context per proposed student);
    `actions[i]` are the links of the match of `contexts[i]` (none when left out); `training`
    the link on which a supervisor without valid training records their course.

    Raises `PermanentError` when there is nobody to tell.
    """
    if not contexts:
        raise PermanentError("no notice context: nothing to tell")
    first = contexts[0]
    channel = first.channel
    supervisor = first.supervisor
    if channel.kind == "email" and supervisor is None:
        raise PermanentError(
            f"placement {first.placement.placement_id} has no supervisor to e-mail"
        )
    if channel.kind == "webhook" and not channel.webhook_url:
        raise PermanentError(
            f"placement {first.placement.placement_id}: channel webhook without a webhook_url"
        )
    placement = first.placement
    # Name and contact go out with the confirmation (and the reminder of a confirmed match)
    # only. A proposal or cancellation is rendered at delivery time, which may come after the
    # student accepted (a retry, a restart); leaving the contact out of those keeps every
    # notice's content the same however late it is sent.
    may_share = kind in ("confirmed", "reminder")
    links = list(actions) + [None] * (len(contexts) - len(actions))
    students = [
        StudentView.of(c.student, may_share=may_share, actions=a)
        for c, a in zip(contexts, links, strict=True)
        if c.student is not None
    ]
    return NoticeView(
        notification_id=notice_id,
        kind=kind,
        language=supervisor.language if supervisor else "en",
        channel=channel.kind,
        webhook_url=channel.webhook_url,
        supervisor_name=supervisor.name if supervisor else None,
        supervisor_email=str(supervisor.email) if supervisor else None,
        placement=placement.model_dump(mode="json"),
        placement_title=placement.title or placement.placement_id,
        starts_on=placement.starts_on,
        ends_on=placement.ends_on,
        students=students,
        reason=reason if kind == "cancelled" else None,  # a reminder's detail is its first day
        readiness=(
            ReadinessView.of(first.readiness, training)
            if first.readiness is not None and kind in TRAINING_KINDS
            else None
        ),
    )
