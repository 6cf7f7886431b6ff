"""The AsyncAPI document of the placements service: what it consumes and what its outbox
publishes, each with its payload schema; the committed copy is the generated one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.placements.asyncapi import render
from services.placements.bootstrap import asyncapi

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi-placements.json"


def test_committed_asyncapi_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "docs/asyncapi-placements.json is stale: run `make docs`"
    )


def _payload_types(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The event types a channel's message may be, read from its payload schema."""
    schemas = document["components"]["schemas"]
    channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
    [ref] = [m["$ref"] for m in channel["messages"].values()]
    message = document["components"]["messages"][ref.rsplit("/", 1)[-1]]
    payload_ref = message["payload"]["$ref"]
    payload = schemas[payload_ref.rsplit("/", 1)[-1]]
    payload = payload.get("items", payload)  # a batched subscriber's: an array of events
    union = payload.get("oneOf", payload.get("anyOf"))
    refs = [o["$ref"] for o in union] if union else [payload_ref]
    types = set()
    for ref in refs:
        event = schemas[ref.rsplit("/", 1)[-1]]
        types.add(event["properties"]["type"]["const"])
        data = event["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
        assert schemas[data]["type"] == "object"  # the data's schema is in the document too
    return types


def test_consumed_and_published_messages_carry_their_schemas() -> None:
    document = asyncapi()
    flows: dict[tuple[str, str], set[str]] = {}
    for operation in document["operations"].values():
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        flows[(operation["action"], channel["address"])] = _payload_types(document, operation)
    assert flows == {
        ("receive", "apl.matches.v1"): {"MatchProposed", "MatchConfirmed", "MatchCancelled"},
        ("receive", "apl.rounds.v1"): {"MatchingRoundOutcomes", "MatchingRoundCompleted"},
        ("send", "apl.placements.v1"): {
            "PlacementPosted",
            "PlacementUpdated",
            "PlacementWithdrawn",
        },
        ("send", "apl.students.v1"): {
            "StudentRegistered",
            "StudentPreferencesUpdated",
            "StudentWithdrawn",
        },
        ("send", "apl.round-requests.v1"): {"MatchingRoundRequested", "SupplementaryRoundOpened"},
        ("send", "apl.match-decisions.v1"): {
            "MatchAccepted",
            "MatchDeclined",
            "MatchAssignmentRequested",
        },
    }


def test_published_student_profiles_hold_no_personal_details() -> None:
    schemas = asyncapi()["components"]["schemas"]
    profile = schemas["StudentProfile"]["properties"]
    assert {"student_id", "region", "preferences"} <= profile.keys()
    assert not {"name", "email", "phone"} & profile.keys()
    assert json.dumps(schemas["MatchingRoundRequestedData"]).count("inputs_published") == 1
