"""The committed AsyncAPI document is the one the app generates."""

from __future__ import annotations

import json
from pathlib import Path

from services.notifications.bootstrap import asyncapi_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi-notifications.json"


def test_committed_asyncapi_document_is_current() -> None:
    generated = asyncapi_document()
    assert DOC.read_text(encoding="utf-8") == generated, (
        "docs/asyncapi-notifications.json is stale: run "
        "`apl serve notifications --write-asyncapi docs/asyncapi-notifications.json`"
    )
    channels = json.loads(generated)["channels"]
    addresses = {c["address"] for c in channels.values()}
    assert {"apl.matches.v1", "apl.notifications.v1"} <= addresses
