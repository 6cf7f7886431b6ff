"""The front-end packages every service serves itself (no CDN), and the documentation pages made
of them: `/docs` (Swagger UI, signing in with the authorization code flow and PKCE) and
`/docs/asyncapi` (the AsyncAPI document rendered by the AsyncAPI React component).

The packages are npm dependencies of the project (`package.json` and its lock, installed by
`make setup` with `npm ci`); only the files named in `VENDOR` are served, under
`/assets/vendor/<name>`, with a year's cache. The folder they are read from is
`APL_ASSETS_DIR`, else the checkout's `node_modules`, else the image's `/app/node_modules`.
A missing file answers 404 and is logged once at start-up by `check_assets`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import structlog
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

log = structlog.get_logger(__name__)

PUBLIC: dict[str, Any] = {"x-apl-access": "public"}
PREFIX: Final = "/assets/vendor"
VENDOR: Final[dict[str, str]] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "sortable.min.js": "sortablejs/Sortable.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-favicon.png": "swagger-ui-dist/favicon-32x32.png",
    "asyncapi.js": "@asyncapi/react-component/browser/standalone/index.js",
    "asyncapi.css": "@asyncapi/react-component/styles/default.min.css",
}
"""Served name → path under the packages' folder (node_modules)."""
MEDIA: Final = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
CACHE: Final = "public, max-age=31536000, immutable"
_ROOT = Path(__file__).resolve().parent.parent


def assets_dir() -> Path:
    """Where the front-end packages are installed (see the module)."""
    configured = os.environ.get("APL_ASSETS_DIR")
    if configured:
        return Path(configured)
    checkout = _ROOT / "node_modules"
    return checkout if checkout.is_dir() else Path("/app/node_modules")


def vendor_url(name: str) -> str:
    if name not in VENDOR:
        raise KeyError(f"{name} is not a served front-end file (shared/assets.py VENDOR)")
    return f"{PREFIX}/{name}"


def missing_assets(root: Path | None = None) -> list[str]:
    """The served files that are not installed (empty when `npm ci` ran)."""
    base = root or assets_dir()
    return [name for name, path in VENDOR.items() if not (base / path).is_file()]


def check_assets() -> None:
    missing = missing_assets()
    if missing:
        log.warning(
            "front-end packages missing: pages that need them render without them",
            folder=str(assets_dir()),
            missing=missing,
            fix="make setup (npm ci), or set APL_ASSETS_DIR",
        )


def assets_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    base = assets_dir()

    @router.get(PREFIX + "/{name}", openapi_extra=PUBLIC)
    async def vendor(name: str) -> FileResponse:
        path = VENDOR.get(name)
        if path is None or not (base / path).is_file():
            raise HTTPException(404, f"no front-end file {name}")
        media = MEDIA.get(Path(path).suffix, "application/octet-stream")
        return FileResponse(base / path, media_type=media, headers={"Cache-Control": CACHE})

    return router


def docs_router(app: FastAPI, *, asyncapi: bool) -> APIRouter:
    """`/docs`, `/docs/oauth2-redirect` and, for a service with one, `/docs/asyncapi`."""
    router = APIRouter(include_in_schema=False)
    redirect = "/docs/oauth2-redirect"

    @router.get("/docs", openapi_extra=PUBLIC)
    async def swagger() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=vendor_url("swagger-ui-bundle.js"),
            swagger_css_url=vendor_url("swagger-ui.css"),
            swagger_favicon_url=vendor_url("swagger-favicon.png"),
            oauth2_redirect_url=redirect,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={"persistAuthorization": False},
        )
        # FastAPI's page names no language; the documentation is in English.
        html = bytes(page.body).decode("utf-8").replace("<html>", '<html lang="en">', 1)
        return HTMLResponse(html)

    @router.get(redirect, openapi_extra=PUBLIC)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    if asyncapi:

        @router.get("/docs/asyncapi", openapi_extra=PUBLIC)
        async def asyncapi_page() -> HTMLResponse:
            return HTMLResponse(_asyncapi_html(app.title))

    return router


def _asyncapi_html(title: str) -> str:
    config = json.dumps(
        {"show": {"sidebar": True, "errors": True}, "expand": {"messageExamples": True}}
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: AsyncAPI</title>
<link rel="stylesheet" href="{vendor_url("asyncapi.css")}">
</head>
<body>
<main id="asyncapi">
<p>Loading the AsyncAPI document (<a href="/docs/asyncapi.json">JSON</a>) ...</p>
</main>
<script src="{vendor_url("asyncapi.js")}"></script>
<script>
fetch("/docs/asyncapi.json").then(r => r.json()).then(schema => {{
  const into = document.getElementById("asyncapi");
  AsyncApiStandalone.render({{schema: schema, config: {config}}}, into);
}});
</script>
</body>
</html>
"""
