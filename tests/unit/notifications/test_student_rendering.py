"""Students' notices: every kind in every language, how a proposal came about, the vacancies
that fit (nearest first, the count of all), the coordinator when none fit, escaping."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.notifications.adapters.rendering import TEMPLATES, Renderer
from services.notifications.domain.notices import STUDENT_KINDS, NoticeKind, PermanentError
from services.notifications.domain.student_views import (
    STUDENT_SUBJECTS,
    StudentNoticeView,
    build_student_view,
)
from shared.contracts.internal import NoticePlacement, StudentNoticeContext
from shared.contracts.vocabulary import Language
from tests.support.fakes.notifications import student_context

LANGUAGES: tuple[Language, ...] = ("sv", "fi", "en")
GREETING = {"sv": "Hej Kim Lindqvist,", "fi": "Hei Kim Lindqvist,", "en": "Hello Kim Lindqvist,"}
PAGE = "https://apl.example.se/student"
PLACEMENT = NoticePlacement(
    placement_id="p-1",
    company_id="c-1",
    region="SE-AB",
    title="Elektrikerlärling",
    starts_on=date(2027, 1, 18),
    ends_on=date(2027, 3, 12),
)
COORDINATOR = {"sv": "samordnare", "fi": "koordinaattori", "en": "coordinator"}
NONE_FIT = {
    "sv": "Just nu finns ingen ledig plats som passar dig. Kontakta din samordnare",
    "fi": "Tällä hetkellä sinulle ei sovi yksikään vapaa paikka. Ota yhteyttä koordinaattoriisi",
    "en": "At the moment no vacancy fits you. Please contact your coordinator",
}
FIT = {
    "sv": "14 lediga platser passar dig, närmast först:",
    "fi": "Sinulle sopii 14 vapaata paikkaa, lähin ensin:",
    "en": "14 vacancies fit you, nearest first:",
}
MORE = {
    "sv": "… och 4 till när du loggar in.",
    "fi": "… ja 4 muuta, kun kirjaudut sisään.",
    "en": "… and 4 more when you sign in.",
}


def render(
    kind: NoticeKind,
    context: StudentNoticeContext,
    *,
    detail: str | None = None,
) -> tuple[StudentNoticeView, str, str]:
    placement_id = "p-1" if kind in ("student_proposed", "student_confirmed") else None
    view = build_student_view(uuid.uuid4(), kind, context, placement_id=placement_id, detail=detail)
    text, html = Renderer().render(view)
    return view, text, html


def test_every_student_template_exists() -> None:
    for language in LANGUAGES:
        for kind in sorted(STUDENT_KINDS):
            for fmt in ("txt", "html"):
                assert (TEMPLATES / language / f"{kind}.{fmt}.j2").is_file()
        for fmt in ("txt", "html"):
            assert (TEMPLATES / language / f"_vacancies.{fmt}.j2").is_file()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(STUDENT_KINDS))
def test_each_kind_renders_in_the_students_language(language: Language, kind: NoticeKind) -> None:
    placed = kind in ("student_proposed", "student_confirmed", "student_reminder")
    context = student_context(
        "s-1", language=language, fitting=0 if placed else 3, placement=PLACEMENT
    )
    view, text, html = render(kind, context, detail="rank:2" if placed else None)
    assert view.language == language
    assert view.subject == STUDENT_SUBJECTS[language][kind].format(title="Elektrikerlärling")
    assert view.student_email == "s-1@student.example"
    for body in (text, html):
        assert GREETING[language] in body
        assert PAGE in body
        if placed:
            assert "Elektrikerlärling" in body
            assert "2027-01-18" in body
        else:
            assert "Vakans 1" in body
    assert f'<html lang="{language}">' in html
    assert f'<a href="{PAGE}">' in html
    assert "\n" + PAGE + "\n" in text  # on a line of its own: nothing glued to the link


@pytest.mark.parametrize(
    ("language", "detail", "phrase"),
    [
        ("sv", "rank:2", "– ditt val nummer 2."),
        ("sv", "filled", "– en ledig plats som passar dig, fast du inte hade valt den."),
        ("sv", "override", "– tilldelad av din samordnare."),
        ("fi", "rank:1", "– toivelistasi 1. vaihtoehto."),
        ("fi", "filled", "– vapaa paikka, joka sopii sinulle, vaikka et valinnut sitä."),
        ("fi", "override", "– koordinaattorisi osoittama paikka."),
        ("en", "rank:3", "– your choice no. 3."),
        ("en", "filled", "– a vacancy that fits you, though you did not rank it."),
        ("en", "override", "– assigned by your coordinator."),
    ],
)
def test_a_proposal_says_how_it_came_about_and_asks_for_an_answer(
    language: Language, detail: str, phrase: str
) -> None:
    context = student_context("s-1", language=language, placement=PLACEMENT)
    _, text, html = render("student_proposed", context, detail=detail)
    assert phrase in text
    assert phrase in html
    answer = {
        "sv": "Logga in och tacka ja eller nej till förslaget",
        "fi": "Kirjaudu sisään ja hyväksy tai hylkää ehdotus",
        "en": "Please sign in to accept or decline the proposal",
    }[language]
    assert answer in text


def test_a_proposal_without_a_known_origin_leaves_it_out() -> None:
    _, text, _ = render("student_proposed", student_context("s-1", placement=PLACEMENT))
    assert 'APL-platsen "Elektrikerlärling" (2027-01-18 – 2027-03-12).' in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_confirmation_says_when_and_where(language: Language) -> None:
    context = student_context("s-1", language=language, placement=PLACEMENT)
    _, text, _ = render("student_confirmed", context)
    where = {"sv": "Plats", "fi": "Paikka", "en": "Placement"}[language]
    when = {"sv": "Period", "fi": "Ajankohta", "en": "Period"}[language]
    assert f"{where}: Elektrikerlärling\n" in text
    assert f"{when}: 2027-01-18 – 2027-03-12\n" in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_unplaced_lists_the_nearest_vacancies_and_the_count_of_all(language: Language) -> None:
    context = student_context("s-1", language=language, fitting=10, total=14)
    view, text, html = render("student_unplaced", context, detail="choices_full")
    assert view.more_vacancies == 4
    assert FIT[language] in text
    assert MORE[language] in text
    assert MORE[language] in html
    listed = [line for line in text.splitlines() if line.startswith("- Vakans")]
    assert [line.split(" (")[0] for line in listed] == [f"- Vakans {i}" for i in range(1, 11)]
    assert ", 2 km, " in listed[0]  # 2.4 km, in whole km
    assert html.count("<li>") == 10
    assert COORDINATOR[language] in text.lower()  # a supplementary round may follow
    assert NONE_FIT[language] not in text
    reason = {
        "sv": "platserna du valde behövdes av andra elever",
        "fi": "valitsemasi paikat menivät muille opiskelijoille",
        "en": "the placements you ranked were all needed by other students",
    }[language]
    assert reason in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["student_unplaced", "student_supplementary"])
def test_where_no_vacancy_fits_the_student_is_sent_to_the_coordinator(
    language: Language, kind: NoticeKind
) -> None:
    context = student_context("s-1", language=language, fitting=0)
    _, text, html = render(kind, context, detail="no_eligible_vacancy")
    assert NONE_FIT[language] in text
    assert NONE_FIT[language] in html
    assert "Vakans" not in text
    assert "<ul>" not in html


def test_one_vacancy_reads_in_the_singular() -> None:
    for language, phrase, slots in [
        ("sv", "En ledig plats passar dig:", "1 ledig plats"),
        ("fi", "Sinulle sopii yksi vapaa paikka:", "1 vapaa paikka"),
        ("en", "One vacancy fits you:", "1 free place"),
    ]:
        context = student_context("s-1", language=language, fitting=1)  # type: ignore[arg-type]
        _, text, _ = render("student_supplementary", context, detail="2027-02-01")
        assert phrase in text
        assert text.rstrip().count(slots) == 1


@pytest.mark.parametrize(
    ("language", "phrase"),
    [
        ("sv", "Rangordna de platser du vill ha senast 2027-02-01:"),
        ("fi", "Aseta haluamasi paikat toivejärjestykseen viimeistään 2027-02-01:"),
        ("en", "Rank the placements you want by 2027-02-01:"),
    ],
)
def test_a_supplementary_round_says_until_when_to_rank(language: Language, phrase: str) -> None:
    context = student_context("s-1", language=language, fitting=3)
    view, text, _ = render("student_supplementary", context, detail="2027-02-01")
    assert view.ranks_until == date(2027, 2, 1)
    assert phrase in text
    assert f"{phrase}\n{PAGE}\n" in text
    _, undated, _ = render("student_supplementary", context, detail=None)
    assert "2027-02-01" not in undated


def test_names_and_titles_are_escaped_in_html_and_verbatim_in_text() -> None:
    placement = PLACEMENT.model_copy(update={"title": "<b>Weld & Co</b>"})
    context = student_context("s-1", language="en", name="Kim <i>L</i> & Son", placement=placement)
    _, text, html = render("student_confirmed", context)
    assert "Hello Kim <i>L</i> & Son," in text
    assert "<b>Weld & Co</b>" in text
    assert "Hello Kim &lt;i&gt;L&lt;/i&gt; &amp; Son," in html
    assert "&lt;b&gt;Weld &amp; Co&lt;/b&gt;" in html
    assert "<b>Weld" not in html
    assert "&amp;lt;" not in html


def test_a_proposal_or_confirmation_needs_its_placement_in_the_context() -> None:
    for kind in ("student_proposed", "student_confirmed"):
        with pytest.raises(PermanentError, match="has no placement p-1"):
            build_student_view(uuid.uuid4(), kind, student_context("s-1"), placement_id="p-1")
        other = PLACEMENT.model_copy(update={"placement_id": "p-2"})
        with pytest.raises(PermanentError, match="has no placement p-1"):
            build_student_view(
                uuid.uuid4(), kind, student_context("s-1", placement=other), placement_id="p-1"
            )


def test_a_supervisors_kind_is_not_a_students_notice() -> None:
    with pytest.raises(ValueError, match="not a student's notice"):
        build_student_view(uuid.uuid4(), "proposed", student_context("s-1"))
