"""Example events of every type, for tests."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from shared.contracts import events as ev
from shared.contracts.outcomes import ChoiceNote, Explanation, HeldBy, StudentOutcome
from shared.contracts.profiles import GeoPoint, PlacementOffer, StudentProfile, Supervisor


def placement(
    pid: str = "p-1", region: str = "SE-AB", capacity: int = 2, **kw: object
) -> PlacementOffer:
    base: dict[str, object] = {
        "placement_id": pid,
        "company_id": "c-1",
        "region": region,
        "capacity": capacity,
        "title": "Electrician apprentice",
        "required_skills": ("wiring",),
        "programmes": ("EE",),
        "starts_on": date(2027, 1, 18),
        "ends_on": date(2027, 3, 12),
        "site": GeoPoint(lat=59.33, lon=18.07),
        "supervisor": Supervisor(name="Anna Berg", email="anna@example.se", language="sv"),
    }
    base.update(kw)
    return PlacementOffer.model_validate(base, strict=False)


def student(
    sid: str = "s-1", region: str = "SE-AB", prefs: tuple[str, ...] = ("p-1",), **kw: object
) -> StudentProfile:
    base: dict[str, object] = {
        "student_id": sid,
        "region": region,
        "programme": "EE",
        "skills": ("wiring",),
        "preferences": prefs,
        "available_from": date(2027, 1, 11),
        "available_to": date(2027, 3, 19),
        "home": GeoPoint(lat=59.3, lon=18.0),
        "max_travel_km": 40.0,
    }
    base.update(kw)
    return StudentProfile.model_validate(base, strict=False)


def proposed(
    sid: str,
    pid: str,
    round_id: uuid.UUID,
    rank: int | None = 1,
    region: str = "R1",
    **kw: Any,
) -> ev.MatchProposed:
    """Matching's proposal of `pid` to `sid` in round `round_id` (company `c-1`; `kw`: more
    fields of the proposal, `match_id` among them)."""
    data = ev.MatchProposedData(
        match_id=kw.pop("match_id", None) or uuid.uuid4(),
        region=region,
        student_id=sid,
        placement_id=pid,
        round_id=round_id,
        company_id="c-1",
        rank=rank,
        **kw,
    )
    return ev.MatchProposed(producer="matching", data=data)


def every_event(region: str = "SE-AB") -> list[ev.Event]:
    """One event of each type of contract v1 (`ev.EVENT_TYPES`)."""
    rid, mid, eid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    match: dict[str, Any] = {
        "match_id": mid,
        "region": region,
        "student_id": "s-1",
        "placement_id": "p-1",
    }
    figures = ev.RoundFigures(
        students=10,
        placed=9,
        placed_weight=9,
        total_rank_cost=12,
        first_choice=7,
        top3=9,
        unknown_preferences=1,
        blocking_pairs=0,
        solve_seconds=0.01,
        solver="lsa",
    )
    note: dict[str, Any] = {
        "notification_id": uuid.uuid4(),
        "source_event_id": eid,
        "region": region,
        "match_id": mid,
        "placement_id": "p-1",
        "channel": "email",
        "attempts": 1,
    }
    return [
        ev.PlacementPosted(producer="placements", data=placement(region=region)),
        ev.PlacementUpdated(producer="placements", data=placement(region=region, capacity=3)),
        ev.PlacementWithdrawn(
            producer="placements", data=ev.PlacementWithdrawnData(placement_id="p-1", region=region)
        ),
        ev.StudentRegistered(producer="placements", data=student(region=region)),
        ev.StudentPreferencesUpdated(
            producer="placements", data=student(region=region, prefs=("p-2", "p-1"))
        ),
        ev.StudentWithdrawn(
            producer="placements", data=ev.StudentWithdrawnData(student_id="s-1", region=region)
        ),
        ev.MatchingRoundRequested(
            producer="placements", data=ev.MatchingRoundRequestedData(round_id=rid, region=region)
        ),
        ev.MatchingRoundCompleted(
            producer="matching",
            data=ev.MatchingRoundCompletedData(
                round_id=rid,
                region=region,
                policy="optimal",
                figures=figures,
                unplaced_by_reason={"choices_full": 1},
                proposed=9,
                cancelled=0,
            ),
        ),
        ev.MatchingRoundOutcomes(
            producer="matching",
            data=ev.MatchingRoundOutcomesData(
                round_id=rid,
                region=region,
                part=1,
                parts=1,
                outcomes=(
                    StudentOutcome(
                        student_id="s-1",
                        placement_id="p-1",
                        rank=1,
                        reason=None,
                        explanation=Explanation(choices=1),
                    ),
                    StudentOutcome(
                        student_id="s-2",
                        placement_id=None,
                        rank=None,
                        reason="choices_full",
                        explanation=Explanation(
                            choices=1,
                            better_choices=(
                                ChoiceNote(
                                    rank=1,
                                    placement_id="p-1",
                                    status="full",
                                    held_by=HeldBy(slots=1, better_rank=1),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        ev.SupplementaryRoundOpened(
            producer="placements",
            data=ev.SupplementaryRoundOpenedData(
                opening_id=uuid.uuid4(), region=region, round_id=rid, student_ids=("s-2",)
            ),
        ),
        ev.MatchProposed(
            producer="matching",
            data=ev.MatchProposedData(**match, round_id=rid, company_id="c-1", rank=1),
        ),
        ev.MatchAssignmentRequested(
            producer="placements",
            data=ev.MatchAssignmentRequestedData(
                match_id=uuid.uuid4(),
                region=region,
                student_id="s-2",
                placement_id="p-1",
                company_id="c-1",
                reason="agreed with the company",
            ),
        ),
        ev.MatchAccepted(producer="placements", data=ev.MatchAcceptedData(**match, by="student")),
        ev.MatchDeclined(
            producer="placements",
            data=ev.MatchDeclinedData(**match, by="company", reason_code="no_capacity"),
        ),
        ev.MatchConfirmed(producer="matching", data=ev.MatchConfirmedData(**match)),
        ev.MatchCancelled(
            producer="matching", data=ev.MatchCancelledData(**match, reason="superseded")
        ),
        ev.NotificationDelivered(
            producer="notifications", data=ev.NotificationDeliveredData(**note)
        ),
        ev.NotificationFailed(
            producer="notifications", data=ev.NotificationFailedData(**note, error="550")
        ),
    ]
