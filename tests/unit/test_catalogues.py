"""The web application's Swedish and Finnish catalogues: `messages.pot` holds exactly the message
ids the sources mark (extracted here as `make messages` extracts them, by babel.cfg), every id has
a translation in sv and fi that is neither empty nor fuzzy and keeps the id's placeholders, and
pages rendered in sv or fi show none of the English ids."""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TextIO, cast

import httpx
import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from services.placements.bootstrap import build, create_app
from services.placements.domain.model import Contact, MatchRecord, Placement, Student
from services.placements.settings import PlacementsSettings
from tests.support.factories import placement, student
from tests.support.fakes.placements import InMemoryPlacementsUnitOfWork
from tests.support.tokens import TestIssuer
from tests.support.web import Browser, sign_in

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "services" / "placements" / "locale"
POT = LOCALES / "messages.pot"
LANGS = ("sv", "fi")
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
"""`make messages` extracts with Babel's default keywords and `-k N_`."""
STALE = "messages.pot is not what the sources mark: run make messages"

MsgId = str | tuple[str, ...]
_parse_mapping = cast(
    "Callable[[TextIO], tuple[list[tuple[str, str]], dict[str, dict[str, Any]]]]",
    parse_mapping_cfg,
)
"""babel.cfg's method map and options, as `pybabel extract -F` reads them (Babel leaves the
function untyped)."""


def _inside_sources(path: str) -> bool:
    """Walk only the placements service and `shared` (and the folders above them), as the
    method map names nothing elsewhere; skip hidden and private folders as Babel does."""
    relative = Path(path).relative_to(ROOT).as_posix()
    if relative.rsplit("/", 1)[-1].startswith((".", "_")):
        return False
    return any(
        root.startswith(relative) or relative.startswith(root + "/")
        for root in ("services/placements", "shared")
    )


@cache
def extracted() -> frozenset[MsgId]:
    """The message ids the sources mark, by babel.cfg's method map."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = _parse_mapping(cfg)
    found = extract_from_dir(
        os.fspath(ROOT),
        method_map,
        options_map,
        keywords=KEYWORDS,
        directory_filter=_inside_sources,
    )
    return frozenset(
        message if isinstance(message, str) else tuple(message)
        for _file, _line, message, _comments, _context in found
    )


def ids_of(catalog: Catalog) -> frozenset[MsgId]:
    return frozenset(m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id)


@cache
def catalogue(lang: str | None) -> Catalog:
    path = POT if lang is None else LOCALES / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        return read_po(po, locale=lang)


PLACEHOLDER = re.compile(r"%\((\w+)\)[sdifr]|%[sdif]|\{(\w*)\}")


def placeholders(text: str) -> Counter[str]:
    return Counter(m.group(0) for m in PLACEHOLDER.finditer(text))


def forms(message: Message) -> list[tuple[str, str]]:
    """(English, translation) of each form of `message` (a plural's first form against the
    singular, the others against the plural)."""
    ids = (message.id,) if isinstance(message.id, str) else tuple(message.id)
    string = message.string
    strings = (string,) if isinstance(string, str) else tuple(string or ())
    return [(ids[min(i, len(ids) - 1)], text or "") for i, text in enumerate(strings)]


# ------------------------------------------------------------------------------ catalogues


def test_messages_pot_is_what_the_sources_mark() -> None:
    marked = extracted()
    assert len(marked) > 400  # the extraction found the sources
    pot = ids_of(catalogue(None))
    assert not marked - pot, f"{STALE}; not in it: {sorted(map(str, marked - pot))}"
    assert not pot - marked, f"{STALE}; no longer marked: {sorted(map(str, pot - marked))}"


def test_the_action_page_is_on_the_catalogues() -> None:
    marked = extracted()
    assert "Confirm the proposal?" in marked  # entrypoints/actions.py (N_)
    assert "Student's programme" in marked  # templates/action.html.j2


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated_and_keeps_its_placeholders(lang: str) -> None:
    catalog = catalogue(lang)
    assert catalog.num_plurals == 2
    assert ids_of(catalog) == ids_of(catalogue(None)), f"the {lang} catalogue: run make messages"
    untranslated, fuzzy, mismatched = [], [], []
    for message in catalog:
        if not message.id:
            continue
        if message.fuzzy:
            fuzzy.append(message.id)
        texts = forms(message)
        if len(texts) != (2 if message.pluralizable else 1) or not all(t for _, t in texts):
            untranslated.append(message.id)
        for english, text in texts:
            if text and placeholders(text) != placeholders(english):
                mismatched.append((english, text))
    assert not untranslated, f"untranslated in {lang}: {untranslated}"
    assert not fuzzy, f"fuzzy in {lang}: {fuzzy}"
    assert not mismatched, f"placeholders differ in {lang}: {mismatched}"
    assert not catalog.fuzzy


def test_the_placeholder_check_can_fail() -> None:
    assert placeholders("%(n)s of %(max)s") != placeholders("%(n)s av %(total)s")
    assert placeholders("Moved to place {n}: {what}") != placeholders("Flyttad till {n}")
    assert placeholders("Choice {n}") == placeholders("Val {n}")


# --------------------------------------------------------------------------- rendered pages


class Texts(HTMLParser):
    """What a page says in its language: its text and the attributes people are read or shown,
    not styles or scripts, nor what is marked as another language (the language switcher)."""

    SAID = frozenset({"aria-label", "title", "alt", "placeholder", "data-confirm"})
    VOID = frozenset({"br", "hr", "img", "input", "link", "meta"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._open: list[tuple[str, bool]] = []
        """The open elements, and whether each is left out (with what it holds)."""

    @property
    def _skipping(self) -> bool:
        return any(skip for _, skip in self._open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        skip = tag in {"style", "script"} or (tag != "html" and "lang" in dict(attrs))
        if not self._skipping and not skip:
            self.chunks += [v for k, v in attrs if k in self.SAID and v]
        if tag not in self.VOID:
            self._open.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        while any(name == tag for name, _ in self._open):
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping and data.strip():
            self.chunks.append(data)


def english_left(html: str, lang: str) -> list[str]:
    """The English message ids (those translated otherwise, without placeholders) that the
    page says."""
    parser = Texts()
    parser.feed(html)
    text = " ".join(" ".join(c.split()) for c in parser.chunks)
    words = {" ".join(c.split()) for c in parser.chunks}
    found = []
    for message in catalogue(lang):
        for english, translated in forms(message):
            if not english or english == translated or placeholders(english):
                continue
            if (" " in english and english in text) or english in words:
                found.append(english)
    return found


MATCH = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
async def opened() -> AsyncIterator[Callable[..., Browser]]:
    """A browser on the app over a fake store with a placement, a student and a proposal."""
    fake = InMemoryPlacementsUnitOfWork()
    fake.placement_rows["p-1"] = Placement(placement("p-1"))
    fake.student_rows["s-1"] = Student(student("s-1"), Contact("Sara Nieminen", "s@example.se"))
    fake.match_rows[MATCH] = MatchRecord(
        match_id=MATCH,
        round_id=None,
        region="SE-AB",
        student_id="s-1",
        placement_id="p-1",
        company_id="c-1",
        rank=1,
        state="proposed",
        accepted_by_student=False,
        accepted_by_company=False,
        declined_by=None,
        reason=None,
        updated_at=datetime.now(UTC),
    )
    fake.match_order[MATCH] = next(fake.sequence)
    issuer = TestIssuer()
    settings = PlacementsSettings(environment="test", auth_issuer=issuer.url)
    app = create_app(build(settings, unit_of_work=lambda: fake, verifier=issuer.verifier()))
    clients: list[httpx.AsyncClient] = []

    def open_as(lang: str, role: str | None = None, **claims: object) -> Browser:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://placements",
            headers={"Accept-Language": f"{lang}, en;q=0.5"},
        )
        clients.append(client)
        return (
            Browser(client) if role is None else sign_in(client, settings, issuer, role, **claims)
        )

    yield open_as
    for client in clients:
        await client.aclose()


PAGES: list[tuple[str | None, dict[str, object], list[str]]] = [
    (None, {}, ["/", "/?signed_out=1", "/nowhere", "/v1/actions/not-a-token"]),
    ("student", {"student_id": "s-1"}, ["/students/s-1", "/students/s-1/choices"]),
    ("company", {"company_id": "c-1"}, ["/companies/c-1", "/placements/p-1"]),
    ("coordinator", {"regions": ["SE-AB"]}, ["/regions/SE-AB", "/regions/SE-AB/unplaced"]),
]
SAYS = {"sv": ("Logga in", "Länken är inte giltig"), "fi": ("Kirjaudu sisään", "Linkki ei ole")}


@pytest.mark.parametrize("lang", LANGS)
async def test_pages_in_swedish_and_finnish_say_no_english(
    opened: Callable[..., Browser], lang: str
) -> None:
    said: dict[str, str] = {}
    for role, claims, paths in PAGES:
        browser = opened(lang, role, **claims)
        for path in paths:
            response = await browser.get(path)
            assert response.status_code in {200, 400, 404}, (path, response.text[:500])
            assert f'<html lang="{lang}">' in response.text, path
            assert not english_left(response.text, lang), (path, english_left(response.text, lang))
            said[path] = response.text
    sign_in_words, link_words = SAYS[lang]
    assert sign_in_words in said["/"]
    assert link_words in said["/v1/actions/not-a-token"]


def test_the_english_check_can_fail() -> None:
    page = (
        '<html lang="sv"><body><h1>Logga in</h1><p>Sign in again</p>'
        '<button aria-label="Main">x</button><a lang="en">English</a></body></html>'
    )
    assert set(english_left(page, "sv")) == {"Main", "Sign in", "Sign in again"}
