"""The AsyncAPI document shows the payload schema of every message the service consumes and
produces, and the committed copy is the one the code generates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.matching.bootstrap import asyncapi

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi-matching.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi()


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


def _payload(document: dict[str, Any], channel: str) -> dict[str, Any]:
    """The payload schema of the one message of `channel` (FastStream's wrapper resolved)."""
    (message,) = document["channels"][channel]["messages"].values()
    payload: dict[str, Any] = _resolve(document, message["$ref"])["payload"]
    if ":" in payload.get("$ref", ""):  # "<channel>:Message:Payload", a union or an array
        return _resolve(document, payload["$ref"])
    return payload


def _refs(schema: dict[str, Any]) -> set[str]:
    """The event schemas a payload is (one of; batched, an array of)."""
    schema = schema.get("items", schema)
    alternatives = schema.get("oneOf") or schema.get("anyOf") or [schema]
    return {a["$ref"].rsplit("/", 1)[1] for a in alternatives}


def test_committed_asyncapi_document_is_current(document: dict[str, Any]) -> None:
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    generated = json.loads(json.dumps(document))
    assert committed == generated, "docs/asyncapi-matching.json is stale: run `make docs`"


def test_channels_and_operations(document: dict[str, Any]) -> None:
    actions = {
        (document["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"], op["action"])
        for op in document["operations"].values()
    }
    assert actions == {
        ("apl.placements.v1", "receive"),
        ("apl.students.v1", "receive"),
        ("apl.round-requests.v1", "receive"),
        ("apl.match-decisions.v1", "receive"),
        ("apl.matches.v1", "send"),
        ("apl.rounds.v1", "send"),
    }


@pytest.mark.parametrize(
    ("channel", "events"),
    [
        ("matching:placements", {"PlacementPosted", "PlacementUpdated", "PlacementWithdrawn"}),
        (
            "matching:students",
            {"StudentRegistered", "StudentPreferencesUpdated", "StudentWithdrawn"},
        ),
        ("matching:round-requests", {"MatchingRoundRequested", "SupplementaryRoundOpened"}),
        (
            "matching:match-decisions",
            {"MatchAccepted", "MatchDeclined", "MatchAssignmentRequested"},
        ),
        ("matching:match-events", {"MatchProposed", "MatchConfirmed", "MatchCancelled"}),
        ("matching:round-results", {"MatchingRoundOutcomes", "MatchingRoundCompleted"}),
    ],
)
def test_every_message_has_its_event_schemas(
    document: dict[str, Any], channel: str, events: set[str]
) -> None:
    assert _refs(_payload(document, channel)) == events
    for name in events:
        schema = document["components"]["schemas"][name]
        assert schema["properties"]["type"]["const"] == name
        assert {"event_id", "type", "schema_version", "occurred_at", "producer", "data"} <= set(
            schema["properties"]
        )


def test_batched_channels_are_arrays_of_their_events(document: dict[str, Any]) -> None:
    for channel in ("matching:placements", "matching:students"):
        assert _payload(document, channel)["type"] == "array"


def test_event_schemas_carry_their_fields(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def data(event: str) -> dict[str, Any]:
        return _resolve(document, schemas[event]["properties"]["data"]["$ref"])

    assert data("PlacementPosted")["title"] == "PlacementOffer"
    assert {"placement_id", "company_id", "region", "capacity"} <= set(
        data("PlacementUpdated")["properties"]
    )
    assert set(data("PlacementWithdrawn")["required"]) == {"placement_id", "region"}
    assert {"student_id", "preferences"} <= set(data("StudentRegistered")["properties"])
    requested = data("MatchingRoundRequested")["properties"]
    assert requested["policy"]["enum"] == ["optimal", "stable"]
    assert {"inputs_published", "kind", "fill", "dry_run"} <= set(requested)
    assert requested["kind"]["enum"] == ["ordinary", "supplementary"]
    assert set(data("MatchAccepted")["properties"]["by"]["enum"]) == {"student", "company"}
    cancelled = data("MatchCancelled")["properties"]
    assert set(cancelled["reason"]["enum"]) == {
        "superseded",
        "declined",
        "student_withdrawn",
        "placement_withdrawn",
        "capacity_reduced",
        "overridden",
    }
    proposed = data("MatchProposed")["properties"]
    assert {"match_id", "round_id", "company_id", "rank", "student_id", "filled", "override"} <= (
        set(proposed)
    )
    completed = data("MatchingRoundCompleted")["properties"]
    assert {"figures", "unplaced_by_reason", "proposed", "cancelled"} <= set(completed)
    assert {"kind", "fill", "dry_run", "outcome_parts"} <= set(completed)
    figures = _resolve(document, completed["figures"]["$ref"])
    assert figures["title"] == "RoundFigures"
    assert {"filled", "no_eligible_vacancy"} <= set(figures["properties"])
    outcomes = data("MatchingRoundOutcomes")["properties"]
    assert {"round_id", "region", "part", "parts", "dry_run", "outcomes"} <= set(outcomes)
    assert outcomes["outcomes"]["maxItems"] == 200
    assignment = data("MatchAssignmentRequested")["properties"]
    assert {"match_id", "student_id", "placement_id", "reason"} <= set(assignment)
