"""A round's events as outbox rows, each serialised once, straight from the round's columns.

A round of 7,000 students publishes thousands of `MatchProposed`: building, validating,
stamping and dumping a pydantic model for each cost more than the round's database writes. Here
they are made from `EventTemplate`s (shared/serialised.py), one per (rank, filled) the round
uses: the same bytes the models give, with the round's time as every event's `occurred_at`
and the unit of work's actor. The outcome parts (`outcome_rows`) are each one event model
without its outcomes, serialised, with the outcomes' JSON texts (the engine's, made without
models: `SolveResult.outcome_texts`) put in its empty `outcomes` array: the bytes of the part
with those outcomes' models. The few cancellations and the completion stay models (serialised
once, by the outbox).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from services.matching.domain.model import NewProposal
from shared.contracts import events as ev
from shared.contracts.events import Actor
from shared.contracts.outcomes import StudentOutcome
from shared.contracts.vocabulary import Participant
from shared.serialised import (
    EventTemplate,
    HoleKind,
    Serialised,
    json_str,
    random_uuids,
)

PRODUCER = "matching"

_PROPOSED_HOLES: dict[str, HoleKind] = {
    "event_id": "uuid",
    "match_id": "uuid",
    "student_id": "str",
    "placement_id": "str",
    "company_id": "str",
}


class ProposedEvents:
    """The `MatchProposed` of one round (region, round id, actor, time), as outbox rows."""

    def __init__(
        self,
        region: str,
        round_id: uuid.UUID,
        actor: Actor | None,
        *,
        occurred_at: datetime | None = None,
    ) -> None:
        self.region = region
        self.round_id = round_id
        self.actor = actor
        self.occurred_at = occurred_at or datetime.now(UTC)
        self._templates: dict[tuple[int | None, bool], EventTemplate] = {}

    def _template(self, rank: int | None, filled: bool) -> EventTemplate:  # noqa: FBT001
        key = (rank, filled)
        template = self._templates.get(key)
        if template is None:

            def example(**h: Any) -> ev.Event:
                return ev.MatchProposed(
                    event_id=h["event_id"],
                    occurred_at=self.occurred_at,
                    producer=PRODUCER,
                    data=ev.MatchProposedData(
                        match_id=h["match_id"],
                        region=self.region,
                        student_id=h["student_id"],
                        placement_id=h["placement_id"],
                        round_id=self.round_id,
                        company_id=h["company_id"],
                        rank=rank,
                        filled=filled,
                    ),
                ).by(self.actor)

            template = self._templates[key] = EventTemplate(
                example, _PROPOSED_HOLES, key=self.region
            )
        return template

    def rows(self, made: Sequence[tuple[str, NewProposal]]) -> list[Serialised]:
        """One row per (match id, proposal), in order."""
        event_ids = random_uuids(len(made))
        formats: dict[tuple[int | None, bool], Callable[..., str]] = {}
        strings: dict[str, str] = {}  # placement and company ids repeat: encode each once
        topic, event_type = ev.MatchProposed.topic, "MatchProposed"
        region = self.region
        rows: list[Serialised] = []
        append = rows.append
        for event_id, (match_id, p) in zip(event_ids, made, strict=True):
            key = (p.rank, p.filled)
            render = formats.get(key)
            if render is None:
                render = formats[key] = self._template(*key).format
            placement = strings.get(p.placement_id)
            if placement is None:
                placement = strings[p.placement_id] = json_str(p.placement_id)
            company = strings.get(p.company_id)
            if company is None:
                company = strings[p.company_id] = json_str(p.company_id)
            text = render(
                f'"{event_id}"', f'"{match_id}"', json_str(p.student_id), placement, company
            )
            append(Serialised(event_id, topic, region, event_type, text.encode()))
        return rows


def outcome_part(
    round_id: uuid.UUID,
    region: str,
    part: int,
    parts: int,
    outcomes: Sequence[StudentOutcome],
    *,
    dry_run: bool,
    participant: Participant,
) -> ev.MatchingRoundOutcomes:
    """Part `part` of `parts` of a round's `MatchingRoundOutcomes`, with `outcomes`."""
    return ev.MatchingRoundOutcomes(
        producer=PRODUCER,
        data=ev.MatchingRoundOutcomesData(
            round_id=round_id,
            region=region,
            part=part,
            parts=parts,
            dry_run=dry_run,
            participant=participant,
            outcomes=tuple(outcomes),
        ),
    )


def outcome_rows(
    round_id: uuid.UUID,
    region: str,
    texts: Sequence[str],
    *,
    dry_run: bool,
    participant: Participant,
    actor: Actor | None,
) -> list[Serialised]:
    """Every student's outcome (`texts`: each `StudentOutcome`'s `outcome_json`, in the
    round's input order) as the round's `MatchingRoundOutcomes`, by `actor`: parts of at most
    OUTCOMES_PER_PART, numbered from 1 (none without students), each the bytes of the part
    with those outcomes' models (`handlers.outcome_parts`; the tests compare them)."""
    size = ev.OUTCOMES_PER_PART
    parts = math.ceil(len(texts) / size)
    rows: list[Serialised] = []
    for k in range(parts):
        event = outcome_part(
            round_id, region, k + 1, parts, (), dry_run=dry_run, participant=participant
        ).by(actor)
        payload = event.json_with_outcomes(texts[k * size : (k + 1) * size])
        rows.append(Serialised(event.event_id, event.topic, region, event.type, payload))
    return rows
