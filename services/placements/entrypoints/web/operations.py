"""The operator's page: how the services stand, without any personal data."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..auth import rule
from .render import page
from .session import Page

router = APIRouter(tags=["web"], include_in_schema=False)


@router.get("/operations", openapi_extra=rule("operations"))
async def operations(request: Request, access: Page) -> HTMLResponse:
    """Links to the services' health and documents (figures: the operability issue)."""
    return page(request, "web/operations.html.j2", who=access.principal)
