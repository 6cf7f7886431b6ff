"""The committed AsyncAPI document is the one the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from services.matching.bootstrap import asyncapi_json

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi-matching.json"


def test_committed_asyncapi_document_is_current() -> None:
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    generated = json.loads(json.dumps(asyncapi_json()))
    assert committed == generated, (
        "docs/asyncapi-matching.json is stale; regenerate it with "
        "`python -m services.matching.asyncapi > docs/asyncapi-matching.json`"
    )


def test_document_names_the_topics_and_events() -> None:
    document = asyncapi_json()
    addresses = {c["address"] for c in document["channels"].values()}
    assert addresses == {"apl.placements.v1", "apl.students.v1", "apl.rounds.v1", "apl.matches.v1"}
    text = json.dumps(document)
    for name in ("MatchProposed", "MatchCancelled", "MatchConfirmed", "MatchingRoundCompleted"):
        assert name in text
