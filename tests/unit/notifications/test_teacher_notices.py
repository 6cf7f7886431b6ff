"""Notices about teachers' working-life periods: the supervisor's and the teacher's, in every
language, in a teacher's words (subject, skills to update, available weeks; "teacher", never
"student"): every kind of notice has a teacher's body."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.notifications.adapters.rendering import TEMPLATES, Renderer
from services.notifications.domain import teachers
from services.notifications.domain.notices import NoticeKind
from services.notifications.domain.student_views import build_student_view
from services.notifications.domain.views import build_view
from shared.contracts.internal import (
    NoticeChannel,
    NoticeContext,
    NoticePlacement,
    NoticeStudent,
    StudentNoticeContext,
)
from shared.contracts.profiles import Supervisor
from shared.contracts.vocabulary import Language

LANGUAGES: tuple[Language, ...] = ("sv", "fi", "en")
PERIOD = NoticePlacement(
    placement_id="w-1",
    company_id="c-1",
    region="FI-19",
    title="Battery cell production",
    starts_on=date(2027, 3, 8),
    ends_on=date(2027, 3, 26),
    kind="teacher",
)
TEACHER_WORD = {"sv": "lärare", "fi": "opettaj", "en": "teacher"}
STUDENT_WORD = {"sv": "elev", "fi": "opiskelija", "en": "student"}
SUBJECT_LINE = {
    "sv": "Ämne: Electrical installation",
    "fi": "Opetettava aine: Electrical installation",
    "en": "Subject: Electrical installation",
}
WEEKS_LINE = {
    "sv": "Tillgängliga veckor: 2027-W10, 2027-W11, 2027-W12",
    "fi": "Käytettävissä olevat viikot: 2027-W10, 2027-W11, 2027-W12",
    "en": "Available weeks: 2027-W10, 2027-W11, 2027-W12",
}


def supervisor_context(language: Language, *, shared: bool = False) -> NoticeContext:
    return NoticeContext(
        placement=PERIOD,
        supervisor=Supervisor.model_validate(
            {"name": "Anna Berg", "email": "anna@example.fi", "language": language}
        ),
        channel=NoticeChannel(),
        student=NoticeStudent(
            student_id="t-1",
            programme="EE",
            contact_shared=shared,
            name="Liisa Korhonen",
            email="liisa@school.example.fi",
            participant="teacher",
            subject="Electrical installation",
            skills=("battery-hv", "automation"),
            available_weeks=("2027-W10", "2027-W11", "2027-W12"),
        ),
    )


def teacher_context(language: Language, *, placed: bool) -> StudentNoticeContext:
    return StudentNoticeContext(
        student_id="t-1",
        region="FI-19",
        name="Liisa Korhonen",
        email="liisa@school.example.fi",
        language=language,
        participant="teacher",
        placement=PERIOD if placed else None,
        page_url="https://apl.example.fi/me",
    )


def test_every_teacher_template_has_both_formats_in_every_language() -> None:
    kinds: tuple[str, ...] = ("proposed", "confirmed", "cancelled", "digest", "reminder")
    kinds += ("student_proposed", "student_confirmed", "student_unplaced")
    kinds += ("student_reminder", "student_supplementary")
    for language in LANGUAGES:
        folder = TEMPLATES / language / teachers.TEMPLATE_FOLDER
        for kind in (*kinds, "_teacher"):
            for fmt in ("txt", "html"):
                assert (folder / f"{kind}.{fmt}.j2").is_file(), (language, kind, fmt)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["proposed", "confirmed", "cancelled", "reminder"])
def test_a_supervisor_is_told_of_a_teacher(language: Language, kind: NoticeKind) -> None:
    view = build_view(
        uuid.uuid4(),
        kind,
        [supervisor_context(language, shared=True)],
        reason="student_withdrawn" if kind == "cancelled" else None,
    )
    text, html = Renderer().render(view)
    assert view.subject == teachers.SUBJECTS[language][kind].format(
        title="Battery cell production", count=1
    )
    for body in (text, html):
        assert TEACHER_WORD[language] in body.lower()
        assert STUDENT_WORD[language] not in body.lower()
        assert SUBJECT_LINE[language] in body
        assert WEEKS_LINE[language] in body
    if kind == "cancelled":
        assert teachers.REASONS[language]["student_withdrawn"] in text
    # the contact only once confirmed (a reminder comes after the confirmation), as for a student
    assert ("Liisa Korhonen" in text) == (kind in ("confirmed", "reminder"))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["student_proposed", "student_confirmed", "student_unplaced"])
def test_a_teacher_is_told_in_a_teachers_words(language: Language, kind: NoticeKind) -> None:
    placed = kind != "student_unplaced"
    view = build_student_view(
        uuid.uuid4(),
        kind,
        teacher_context(language, placed=placed),
        placement_id="w-1" if placed else None,
        detail="filled" if kind == "student_proposed" else "choices_full" if not placed else None,
    )
    text, html = Renderer().render(view)
    assert view.subject == teachers.SUBJECTS[language][kind].format(title="Battery cell production")
    for body in (text, html):
        assert STUDENT_WORD[language] not in body.lower()
        assert "APL-plats" not in body
    if kind == "student_proposed":
        assert teachers.HOW[language]["filled"] in text
    if kind == "student_unplaced":
        assert teachers.UNPLACED[language]["choices_full"] in text
        assert TEACHER_WORD[language] in text.lower()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_supervisor_is_told_of_several_teachers_in_one_digest(language: Language) -> None:
    first = supervisor_context(language)
    assert first.student is not None
    second = first.model_copy(
        update={"student": first.student.model_copy(update={"student_id": "t-2"})}
    )
    view = build_view(uuid.uuid4(), "digest", [first, second])
    text, html = Renderer().render(view)
    assert view.subject == teachers.SUBJECTS[language]["digest"].format(
        title="Battery cell production", count=2
    )
    for body in (text, html):
        assert TEACHER_WORD[language] in body.lower()
        assert STUDENT_WORD[language] not in body.lower()
        assert body.count(SUBJECT_LINE[language]) == 2
    assert "Liisa Korhonen" not in text  # no contact before the teachers accepted


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["student_reminder", "student_supplementary"])
def test_a_teachers_reminder_and_supplementary_round_in_a_teachers_words(
    language: Language, kind: NoticeKind
) -> None:
    placed = kind == "student_reminder"
    view = build_student_view(
        uuid.uuid4(),
        kind,
        teacher_context(language, placed=placed),
        placement_id="w-1" if placed else None,
        detail="2027-02-01" if kind == "student_supplementary" else None,
    )
    text, html = Renderer().render(view)
    assert view.subject == teachers.SUBJECTS[language][kind].format(title="Battery cell production")
    for body in (text, html):
        assert STUDENT_WORD[language] not in body.lower()
        assert "APL-plats" not in body
    if placed:
        assert "Battery cell production" in text
    else:
        assert TEACHER_WORD[language] in text.lower()


def test_a_students_notice_is_unchanged() -> None:
    context = supervisor_context("en").model_copy(
        update={"placement": PERIOD.model_copy(update={"kind": "student"})}
    )
    view = build_view(uuid.uuid4(), "proposed", [context])
    text, _ = Renderer().render(view)
    assert text.startswith("Hello Anna Berg,\n\nA student is proposed for your placement")
