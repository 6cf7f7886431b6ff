"""Languages of the web application: Swedish, Finnish and English from gettext catalogues.

The message ids are the English texts of the templates and page modules; `locale/<lang>/
LC_MESSAGES/messages.po` hold the Swedish and Finnish (`make messages` extracts the ids into
`locale/messages.pot` and merges them into the catalogues). The catalogues are read with Babel
when the app starts: nothing is compiled into the repository.

A request's language: `?lang=` (remembered in a cookie), else the cookie, else the browser's
`Accept-Language` among the three, else English. Dates and numbers are formatted in it (Babel).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Final, Literal, get_args

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations
from starlette.requests import Request

Lang = Literal["sv", "fi", "en"]
LANGS: Final[tuple[Lang, ...]] = get_args(Lang)
NAMES: Final[dict[Lang, str]] = {"sv": "Svenska", "fi": "Suomi", "en": "English"}
"""Each language in itself, for the switcher."""
COOKIE: Final = "apl_lang"
LOCALE_DIR: Final = Path(__file__).resolve().parents[2] / "locale"
DEFAULT: Final[Lang] = "en"


def N_(message: str) -> str:
    """Mark a literal for the catalogues without translating it here (a template translates the
    value later with `_(value)`)."""
    return message


@cache
def translations(lang: Lang) -> NullTranslations:
    """The catalogue of `lang` (English: the message ids themselves)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not path.is_file():
        return NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer)


def parse(value: str | None) -> Lang | None:
    if value is None:
        return None
    code = value.strip().lower()[:2]
    return code if code in LANGS else None


def negotiate(accept_language: str | None) -> Lang:
    """The browser's most wanted language among ours (`Accept-Language`, by its q-values; a
    regional tag counts as its language: `sv-FI` is Swedish)."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        weighted.append((-q, index, tag))
    for q, _, tag in sorted(weighted):
        lang = parse(tag)
        if lang is not None and q < 0:
            return lang
    return DEFAULT


def of_request(request: Request) -> Lang:
    return (
        parse(request.query_params.get("lang"))
        or parse(request.cookies.get(COOKIE))
        or negotiate(request.headers.get("accept-language"))
    )


@cache
def locale(lang: Lang) -> Locale:
    """Babel's locale of `lang`, parsed once (formatting with a code parses it every time)."""
    return Locale.parse(lang)


@lru_cache(maxsize=8192)
def _date(lang: Lang, value: date | datetime, form: str) -> str:
    """Babel's formatting is slow next to a page's other work, and pages show the same dates and
    figures again and again: formatted values are kept."""
    if isinstance(value, datetime):
        return format_datetime(value, form, locale=locale(lang))
    return format_date(value, form, locale=locale(lang))


@lru_cache(maxsize=8192)
def _number(lang: Lang, value: float | int, digits: int) -> str:
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=locale(lang))


@dataclass(frozen=True)
class Words:
    """What a template renders words, dates and numbers with, in one language."""

    lang: Lang

    @property
    def _t(self) -> NullTranslations:
        return translations(self.lang)

    def gettext(self, message: str) -> str:
        return self._t.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._t.ngettext(singular, plural, n)

    def date(self, value: date | datetime | None, form: str = "medium") -> str:
        return "" if value is None else _date(self.lang, value, form)

    def number(self, value: float | int | None, digits: int = 0) -> str:
        return "" if value is None else _number(self.lang, value, digits)

    def percent(self, value: float | None) -> str:
        return "" if value is None else format_percent(value, locale=locale(self.lang))
