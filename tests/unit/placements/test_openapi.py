"""The committed OpenAPI document is the app's current one."""

from __future__ import annotations

import json
from pathlib import Path

from services.placements.openapi import document

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_docs_openapi_json_is_current() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == document(), "docs/openapi.json is stale: run `make docs`"


def test_internal_routes_stay_out_of_the_public_document() -> None:
    paths = document()["paths"]
    assert not any(path.startswith("/internal") for path in paths)
    assert {"/v1/placements", "/v1/students", "/v1/rounds", "/healthz", "/readyz"} <= set(paths)
