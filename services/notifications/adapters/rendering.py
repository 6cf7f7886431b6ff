"""Jinja2 templates: `templates/{sv,fi,en}/{kind}.{txt,html}.j2` (the supervisors' kinds and
the students' `student_*`).

The HTML templates (`.html.j2`) are autoescaped; the plain-text parts of the e-mails (`.txt.j2`)
are not, so a name with `&` or `<` reads as written there. Any other template is escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notifications.domain.notices import NoticeKind
from services.notifications.domain.teachers import TEMPLATE_FOLDER as TEACHER_FOLDER
from shared.contracts.vocabulary import Language

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _date(value: object) -> str:
    if value is None:
        return ""
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


class Renderable(Protocol):
    """A notice view: a supervisor's (`views.NoticeView`) or a student's
    (`student_views.StudentNoticeView`)."""

    @property
    def kind(self) -> NoticeKind: ...

    @property
    def language(self) -> Language: ...

    def template_vars(self) -> dict[str, Any]: ...


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
            auto_reload=False,  # templates change with a deployment: no stat() per notice
        )
        self.env.filters["d"] = _date
        self._names = frozenset(self.env.list_templates())

    def render(self, view: Renderable) -> tuple[str, str]:
        """(plain text, HTML) in the recipient's language; a teacher's notice (a view whose
        `participant` is `teacher`) in the teacher's words where the kind has them
        (`{lang}/teacher/{kind}`)."""
        variables = view.template_vars()
        name = f"{view.language}/{view.kind}"
        if getattr(view, "participant", "student") == "teacher":
            teacher = f"{view.language}/{TEACHER_FOLDER}/{view.kind}"
            if f"{teacher}.txt.j2" in self._names:
                name = teacher
        text = self.env.get_template(f"{name}.txt.j2").render(variables)
        html = self.env.get_template(f"{name}.html.j2").render(variables)
        return text, html
