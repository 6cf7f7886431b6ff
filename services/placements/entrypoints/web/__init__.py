"""The web application: server-rendered pages (Jinja2, htmx) for every role, another entrypoint
over the same handlers and access rules as the API (`entrypoints/http.py`).

Every page route declares its rule as the API's routes do (`openapi_extra={"x-apl-access": ...}`)
and depends on `session.page_access`, which decides it with `entrypoints/auth.authorise` for the
session's user; forms depend on `session.require_csrf` too. Errors on a page route render an
error page in the request's language (`errors.py`), never problem JSON.

Modules: `session` (sign-in, tokens, CSRF), `i18n` (catalogues, language, formats), `render`
(templates), `errors`, `signin` (`/`, `/login`, `/auth/callback`, `/logout`), and one module of
pages per role: `student`, `company`, `coordinator` and `outcomes` (the coordinator's pages
after a round), `gap` (the competence gap), `teacher` (a teacher's profile; the rest of their
journey is the students' pages), `operations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from starlette.middleware.sessions import SessionMiddleware

from ..inputs import clean_form, clean_parameters
from . import (
    company,
    coordinator,
    errors,
    gap,
    operations,
    outcomes,
    readiness,
    signin,
    static,
    student,
    teacher,
)

if TYPE_CHECKING:
    from ...settings import PlacementsSettings

SESSION_COOKIE = "apl_session"


def install(app: FastAPI, settings: PlacementsSettings) -> None:
    """Add the pages, their static files, the session middleware and the error pages."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret.get_secret_value(),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.session_hours * 3600),
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    errors.install(app)
    app.include_router(static.router)
    # outcomes before coordinator: /rounds/compare is not a round id
    # a NUL character in the address or a form, or an over-long id: a page naming it, not a 500
    clean = [Depends(clean_parameters), Depends(clean_form)]
    for module in (signin, student, company, outcomes, coordinator, readiness, operations):
        app.include_router(module.router, dependencies=clean)
    app.include_router(gap.router, dependencies=clean)
    app.include_router(teacher.router, dependencies=clean)
