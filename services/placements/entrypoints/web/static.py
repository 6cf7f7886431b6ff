"""The application's own style sheet and script (`services/placements/static`), under
`/assets/app/<name>`; the front-end packages are `shared/assets.py`'s `/assets/vendor/`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from shared.assets import MEDIA

STATIC: Final = Path(__file__).resolve().parents[2] / "static"
FILES: Final = frozenset({"app.css", "app.js"})
router = APIRouter(tags=["web"], include_in_schema=False)


@router.get("/assets/app/{name}", openapi_extra={"x-apl-access": "public"})
async def asset(name: str) -> FileResponse:
    if name not in FILES:
        raise HTTPException(404, f"no file {name}")
    path = STATIC / name
    media = MEDIA.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=300"})
