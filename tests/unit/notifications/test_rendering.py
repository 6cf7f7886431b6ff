"""Templates and views: every kind in every language, contact only once shared, escaping."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.notifications.adapters.rendering import TEMPLATES, Renderer
from services.notifications.adapters.smtp import compose_email
from services.notifications.domain.notices import NoticeKind, PermanentError
from services.notifications.domain.views import SUBJECTS, build_view
from shared.contracts.internal import NoticeChannel, NoticeContext, NoticePlacement, NoticeStudent
from shared.contracts.profiles import Supervisor
from tests.support.fakes.notifications import parsed

GREETING = {"sv": "Hej Anna", "fi": "Hei Anna", "en": "Hello Anna"}
PROGRAMME = {"sv": "Program: EE", "fi": "Koulutusala: EE", "en": "Programme: EE"}
NAME = {"sv": "Namn: Kim Lind", "fi": "Nimi: Kim Lind", "en": "Name: Kim Lind"}


def ctx(
    language: str = "sv",
    *,
    shared: bool = False,
    title: str = "Elektriker",
    webhook: str | None = None,
    supervisor: bool = True,
    supervisor_name: str = "Anna Berg",
    student_name: str = "Kim Lind",
) -> NoticeContext:
    return NoticeContext(
        placement=NoticePlacement(
            placement_id="p-1",
            company_id="c-1",
            region="SE-AB",
            title=title,
            starts_on=date(2027, 1, 18),
            ends_on=date(2027, 3, 12),
        ),
        supervisor=Supervisor.model_validate(
            {"name": supervisor_name, "email": "anna@example.se", "language": language}
        )
        if supervisor
        else None,
        channel=NoticeChannel(kind="webhook", webhook_url=webhook) if webhook else NoticeChannel(),
        student=NoticeStudent(
            student_id="s-1",
            programme="EE",
            available_from=date(2027, 1, 11),
            available_to=date(2027, 3, 19),
            contact_shared=shared,
            name=student_name,
            email="kim@example.se",
            phone="070-1",
        ),
    )


def test_every_template_exists() -> None:
    for language in ("sv", "fi", "en"):
        for kind in ("proposed", "confirmed", "cancelled", "digest"):
            for fmt in ("txt", "html"):
                assert (TEMPLATES / language / f"{kind}.{fmt}.j2").is_file()


@pytest.mark.parametrize("language", ["sv", "fi", "en"])
@pytest.mark.parametrize("kind", ["proposed", "confirmed", "cancelled", "digest"])
def test_each_kind_renders_in_the_supervisors_language(language: str, kind: NoticeKind) -> None:
    shared = kind == "confirmed"
    contexts = [ctx(language, shared=shared)] * (3 if kind == "digest" else 1)
    view = build_view(
        uuid.uuid4(),
        kind,
        contexts,
        reason="declined" if kind == "cancelled" else None,
    )
    text, html = Renderer().render(view)
    assert view.language == language
    assert view.subject == SUBJECTS[language][kind].format(title="Elektriker", count=3)
    for body in (text, html):
        assert GREETING[language] in body
        assert PROGRAMME[language] in body
        assert "2027-01-18" in body
        assert (NAME[language] in body) is shared  # contact only once the student shared it
    assert f'<html lang="{language}">' in html
    if kind == "digest":
        assert text.count(PROGRAMME[language]) == 3


def test_swedish_and_finnish_wording() -> None:
    sv = build_view(uuid.uuid4(), "proposed", [ctx("sv")])
    fi = build_view(uuid.uuid4(), "proposed", [ctx("fi")])
    assert sv.subject.startswith("En elev föreslås till er APL-plats")
    assert fi.subject.startswith("Opiskelijaa ehdotetaan työpaikallenne")
    cancel = build_view(uuid.uuid4(), "cancelled", [ctx("sv")], reason="placement_withdrawn")
    assert "platsen har dragits tillbaka" in Renderer().render(cancel)[0]


def test_html_is_escaped_and_text_is_not() -> None:
    view = build_view(uuid.uuid4(), "proposed", [ctx("en", title="<b>Weld & Co</b>")])
    text, html = Renderer().render(view)
    assert "<b>Weld & Co</b>" in text
    assert "&lt;b&gt;Weld &amp; Co&lt;/b&gt;" in html
    assert "<b>Weld" not in html


@pytest.mark.parametrize("kind", ["proposed", "confirmed", "cancelled", "digest"])
def test_names_are_escaped_in_html_and_verbatim_in_text(kind: NoticeKind) -> None:
    supervisor, student = "Anna <b>Berg</b> & Co", "Kim <b>Lind</b> & Son"
    context = ctx("en", shared=True, supervisor_name=supervisor, student_name=student)
    view = build_view(
        uuid.uuid4(),
        kind,
        [context] * (2 if kind == "digest" else 1),
        reason="declined" if kind == "cancelled" else None,
    )
    text, html = Renderer().render(view)
    assert "Hello Anna <b>Berg</b> & Co" in text
    assert "Hello Anna &lt;b&gt;Berg&lt;/b&gt; &amp; Co" in html
    if kind == "confirmed":  # the only notice that carries the shared contact
        assert "Name: Kim <b>Lind</b> & Son" in text
        assert "Name: Kim &lt;b&gt;Lind&lt;/b&gt; &amp; Son" in html
    assert "<b>" not in html
    assert "&amp;lt;" not in html  # escaped once, not twice


def test_contact_never_leaks_before_it_is_shared() -> None:
    view = build_view(uuid.uuid4(), "proposed", [ctx("en", shared=False)])
    payload = view.webhook_payload(view_time())
    assert "Kim Lind" not in str(payload)
    assert "kim@example.se" not in str(payload)
    assert payload["student"]["programme"] == "EE"


def view_time() -> datetime:
    return datetime(2027, 1, 11, 8, tzinfo=UTC)


def test_nobody_to_tell_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="no supervisor"):
        build_view(uuid.uuid4(), "proposed", [ctx(supervisor=False)])
    # a webhook needs no supervisor
    view = build_view(uuid.uuid4(), "proposed", [ctx(supervisor=False, webhook="https://h/x")])
    assert view.channel == "webhook"


def test_email_has_both_parts_and_stable_headers() -> None:
    view = build_view(uuid.UUID(int=5), "confirmed", [ctx("fi", shared=True)])
    text, html = Renderer().render(view)
    mail = compose_email(
        mail_from="APL <noreply@apl.example>",
        to_name="Anna Berg",
        to_address="anna@example.se",
        subject=view.subject,
        text=text,
        html=html,
        message_id="<x@apl-match>",
        language="fi",
    )
    message = parsed(mail)  # as the receiver reads the bytes
    assert message["Subject"] == view.subject
    assert message["Message-ID"] == "<x@apl-match>"
    assert message["Content-Language"] == "fi"
    assert message.get_body(("plain",)) is not None
    assert message.get_body(("html",)) is not None
