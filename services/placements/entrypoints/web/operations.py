"""The operator's page: how the services stand, without any personal data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ..auth import Access
from .render import page
from .session import page_access

router = APIRouter(tags=["web"], include_in_schema=False)
Page = Annotated[Access, Depends(page_access)]


@router.get("/operations", openapi_extra={"x-apl-access": "operations"})
async def operations(request: Request, access: Page) -> HTMLResponse:
    """Links to the services' health and documents (figures: the operability issue)."""
    return page(request, "web/operations.html.j2", who=access.principal)
