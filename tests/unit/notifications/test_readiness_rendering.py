"""Supervisor readiness in the notices: a supervisor without valid training is offered the
region's course and a link to record it, in their language, in every notice but a cancellation;
a ready supervisor is not; the reminders before a placement starts (the supervisor's with the
student's contact, the student's) in every language; the reminders' stable ids."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.notifications.adapters.rendering import TEMPLATES, Renderer
from services.notifications.domain.actions import LinkSigner
from services.notifications.domain.notices import (
    NoticeKind,
    plan_reminders,
    reminder_source,
)
from services.notifications.domain.student_views import STUDENT_SUBJECTS, build_student_view
from services.notifications.domain.views import SUBJECTS, build_view
from shared.contracts import links
from shared.contracts.internal import DueReminder, NoticeContext, NoticeReadiness
from shared.contracts.vocabulary import Language
from tests.support.fakes.notifications import student_context
from tests.unit.notifications.test_rendering import ctx

COURSE = "https://kurs.example.se/handledare"
RECORD = "https://apl.example.se/v1/actions/token"
GUIDANCE: dict[Language, tuple[str, str, str]] = {
    "sv": (
        "Handledarutbildning",
        "Vi har ingen handledarutbildning registrerad för dig än.",
        "Registrera dagen du gick den här",
    ),
    "fi": (
        "Työpaikkaohjaajakoulutus",
        "Sinulle ei ole vielä kirjattu työpaikkaohjaajakoulutusta.",
        "Kirjaa suorituspäivä tästä",
    ),
    "en": (
        "Supervisor training",
        "No supervisor training is recorded for you yet.",
        "Record the day you completed it here",
    ),
}
REQUIRED: dict[Language, str] = {
    "sv": "Regionen bekräftar en APL-plats först när handledarens utbildning är giltig.",
    "fi": "Alue vahvistaa työelämäjakson vasta, kun sen ohjaajan koulutus on voimassa.",
    "en": "The region confirms a placement only once its supervisor's training is valid.",
}
EXPIRED: dict[Language, str] = {
    "sv": "Din handledarutbildning från 2022-05-04 gick ut 2025-05-04.",
    "fi": "Työpaikkaohjaajakoulutuksesi (2022-05-04) vanheni 2025-05-04.",
    "en": "Your supervisor training of 2022-05-04 expired on 2025-05-04.",
}


def readiness(
    status: str = "not_started", *, required: bool = False, course: str | None = COURSE
) -> NoticeReadiness:
    expired = status == "expired"
    return NoticeReadiness.model_validate(
        {
            "status": status,
            "trained_on": date(2022, 5, 4) if expired else None,
            "expires_on": date(2025, 5, 4) if expired else None,
            "validity_years": 3,
            "course_url": course,
            "required": required,
        }
    )


def with_readiness(context: NoticeContext, given: NoticeReadiness | None) -> NoticeContext:
    return context.model_copy(update={"readiness": given})


def test_the_new_templates_exist_in_every_language() -> None:
    for language in ("sv", "fi", "en"):
        for kind in ("reminder", "student_reminder", "_readiness"):
            for fmt in ("txt", "html"):
                assert (TEMPLATES / language / f"{kind}.{fmt}.j2").is_file()


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
@pytest.mark.parametrize("kind", ["proposed", "confirmed", "digest", "reminder"])
def test_a_supervisor_without_training_is_offered_the_course_in_their_language(
    language: Language, kind: NoticeKind
) -> None:
    shared = kind in ("confirmed", "reminder")
    context = with_readiness(ctx(language, shared=shared), readiness(required=True))
    contexts = [context] * (2 if kind == "digest" else 1)
    view = build_view(uuid.uuid4(), kind, contexts, training=RECORD)
    text, html = Renderer().render(view)
    head, none, record = GUIDANCE[language]
    for body in (text, html):
        assert head in body
        assert none in body
        assert COURSE in body
        assert RECORD in body
        assert REQUIRED[language] in body.replace("&#39;", "'")
    assert f'<a href="{COURSE}">' in html
    assert record in text
    # the plain text keeps the link on a line of its own, and ends as before
    assert f"\n{RECORD}\n" in text
    assert text.rstrip().endswith("APL Match")


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
def test_an_expired_training_says_when_it_expired(language: Language) -> None:
    context = with_readiness(ctx(language), readiness("expired"))
    text, html = Renderer().render(build_view(uuid.uuid4(), "proposed", [context]))
    assert EXPIRED[language] in text
    assert EXPIRED[language] in html
    assert REQUIRED[language] not in text  # the region does not require it here


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
def test_a_ready_supervisor_or_a_cancellation_is_not_offered_the_course(
    language: Language,
) -> None:
    head = GUIDANCE[language][0]
    ready = with_readiness(ctx(language), readiness("valid"))
    for kind in ("proposed", "confirmed", "reminder"):
        text, html = Renderer().render(build_view(uuid.uuid4(), kind, [ready], training=RECORD))
        assert head not in text
        assert head not in html
        assert RECORD not in text
    unready = with_readiness(ctx(language), readiness())
    cancelled = build_view(uuid.uuid4(), "cancelled", [unready], reason="declined")
    assert cancelled.readiness is None
    text, _ = Renderer().render(cancelled)
    assert head not in text
    nothing = build_view(uuid.uuid4(), "proposed", [ctx(language)])  # an older context
    assert GUIDANCE[language][0] not in Renderer().render(nothing)[0]


def test_without_a_course_address_the_coordinator_is_named() -> None:
    context = with_readiness(ctx("en"), readiness(course=None))
    text, _ = Renderer().render(build_view(uuid.uuid4(), "proposed", [context]))
    assert "Your placement coordinator tells you how to take the course." in text


def test_a_webhook_carries_the_readiness_and_the_link_to_record_it() -> None:
    context = with_readiness(
        ctx("sv", webhook="https://hr.example.se/hook"), readiness(required=True)
    )
    view = build_view(uuid.uuid4(), "proposed", [context], training=RECORD)
    payload = view.webhook_payload(datetime(2027, 1, 11, tzinfo=UTC))
    assert payload["readiness"] == {
        "status": "not_started",
        "trained_on": None,
        "expires_on": None,
        "validity_years": 3,
        "course_url": COURSE,
        "required": True,
        "record_url": RECORD,
    }
    ready = with_readiness(ctx("sv", webhook="https://hr.example.se/hook"), readiness("valid"))
    payload = build_view(uuid.uuid4(), "proposed", [ready], training=RECORD).webhook_payload(
        datetime(2027, 1, 11, tzinfo=UTC)
    )
    assert payload["readiness"]["record_url"] is None
    assert "reason" not in payload


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
def test_the_supervisors_reminder_names_the_start_and_the_student(language: Language) -> None:
    view = build_view(uuid.uuid4(), "reminder", [ctx(language, shared=True)], reason="2027-01-18")
    text, html = Renderer().render(view)
    assert view.subject == SUBJECTS[language]["reminder"].format(title="Elektriker")
    assert "2027-01-18" in text
    assert "Kim Lind" in text  # confirmed: the contact goes with the reminder
    assert "kim@example.se" in html
    assert view.reason is None  # its detail is its first day, not a reason
    assert "/v1/actions/" not in text  # nothing to answer


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
def test_the_students_reminder(language: Language) -> None:
    placement = ctx(language).placement
    context = student_context("s-1", language=language, placement=placement)
    view = build_student_view(
        uuid.uuid4(), "student_reminder", context, placement_id="p-1", detail="2027-01-18"
    )
    text, html = Renderer().render(view)
    assert view.subject == STUDENT_SUBJECTS[language]["student_reminder"].format(title="Elektriker")
    assert "Elektriker" in text
    assert "2027-01-18 – 2027-03-12" in text
    assert "https://apl.example.se/student" in html


def test_a_matchs_reminders_have_stable_ids_one_per_recipient() -> None:
    due = DueReminder(
        match_id=uuid.uuid4(),
        region="SE-AB",
        placement_id="p-1",
        student_id="s-1",
        starts_on=date(2027, 1, 18),
    )
    first, again = plan_reminders([due]), plan_reminders([due])
    assert first == again
    assert [(n.kind, n.recipient) for n in first] == [
        ("reminder", "placement:p-1"),
        ("student_reminder", "student:s-1"),
    ]
    assert {n.source_event_id for n in first} == {reminder_source(due.match_id)}
    assert {n.detail for n in first} == {"2027-01-18"}
    assert len({n.notification_id for n in first}) == 2
    other = due.model_copy(update={"match_id": uuid.uuid4()})
    assert not {n.notification_id for n in plan_reminders([other])} & {
        n.notification_id for n in first
    }


def test_the_training_link_names_the_match_and_its_action() -> None:
    signer = LinkSigner(b"secret", "https://apl.example.se")
    notice, match = uuid.uuid4(), uuid.uuid4()
    now = datetime(2027, 1, 11, tzinfo=UTC)
    url = signer.training_url(notice, match, now=now)
    token = url.removeprefix("https://apl.example.se/v1/actions/")
    link = links.verify(b"secret", token, now=now)
    assert (link.match_id, link.action) == (match, "training")
    assert link.link_id == links.link_id(notice, match, "training")
