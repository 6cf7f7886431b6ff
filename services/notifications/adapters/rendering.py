"""Jinja2 templates: `templates/{sv,fi,en}/{kind}.{txt,html}.j2`.

The HTML templates (`.html.j2`) are autoescaped; the plain-text parts of the e-mails (`.txt.j2`)
are not, so a name with `&` or `<` reads as written there. Any other template is escaped.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notifications.domain.views import NoticeView

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _date(value: object) -> str:
    if value is None:
        return ""
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


class Renderer:
    def __init__(self, folder: Path = TEMPLATES) -> None:
        self.env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(
                enabled_extensions=("html.j2",),
                disabled_extensions=("txt.j2",),
                default_for_string=True,
                default=True,
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["d"] = _date

    def render(self, view: NoticeView) -> tuple[str, str]:
        """(plain text, HTML) in the supervisor's language."""
        variables = view.template_vars()
        text = self.env.get_template(f"{view.language}/{view.kind}.txt.j2").render(variables)
        html = self.env.get_template(f"{view.language}/{view.kind}.html.j2").render(variables)
        return text, html
