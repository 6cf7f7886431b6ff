"""Every student's outcome of a round, with its explanation: codes with parameters, no words.

The matching engine computes an `Explanation` for every student of a round (the same one
`apl match --explain` prints); the matching service publishes the outcomes with the round
(`MatchingRoundOutcomes`), the placements service keeps and serves them. Words come from
`shared.explain` (English message ids, translated by the placements service's catalogues).

An explanation names no other student: what took a full choice is given as counts of the
students holding its slots, relative to the student explained (priority, and the rank each
gave the placement).

On the wire (`MatchingRoundOutcomes`) and where the placements service stores them, outcomes
leave out every field at its default (`outcome_json`): most of a rule's figures are null or
empty, and with them written out a round's outcomes were twice the bytes. A reader's model
fills them in; a field without a default is always written.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.profiles import Id

OutcomeReason = Literal["no_eligible_choice", "choices_full", "no_eligible_vacancy"]
"""Why a student is unplaced: no choice exists and is eligible; eligible choices exist, all
were needed by others; (after fill) no choice and no vacancy of the region fits either."""

RuleCode = Literal[
    "required_skills", "programmes", "period", "available_weeks", "max_travel_km", "declined"
]
"""An eligibility rule of docs/product.md a pair fails (`declined`: the student or the company
declined this pair earlier; `available_weeks`: a teacher's period touches a week the teacher did
not list)."""

ChoiceStatus = Literal["unknown", "withdrawn", "ineligible", "full", "free"]
"""What stood in the way of one better-ranked choice: not a known placement, withdrawn by its
company, ineligible (which rules), full (who holds its slots), or free (a slot was free, but
the student's own placement is pinned)."""

RULE_CODES: tuple[RuleCode, ...] = (
    "required_skills",
    "programmes",
    "period",
    "available_weeks",
    "max_travel_km",
    "declined",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RuleFailure(_Model):
    """One failed rule, with the figures that make it fail."""

    rule: RuleCode = Field(description="The rule failed.", examples=["max_travel_km"])
    missing: tuple[str, ...] = Field(
        default=(),
        description="required_skills: the placement's skills the student lacks.",
        examples=[["welding"]],
    )
    programme: str | None = Field(
        default=None, description="programmes: the student's programme.", examples=["EE"]
    )
    accepted: tuple[str, ...] = Field(
        default=(), description="programmes: the programmes the placement accepts.", examples=[]
    )
    available_from: date | None = Field(default=None, description="period: student's first day.")
    available_to: date | None = Field(default=None, description="period: student's last day.")
    starts_on: date | None = Field(
        default=None, description="period, available_weeks: placement's first day."
    )
    ends_on: date | None = Field(
        default=None, description="period, available_weeks: placement's last day."
    )
    unavailable_weeks: tuple[str, ...] = Field(
        default=(),
        description=(
            "available_weeks: the ISO weeks the period touches that the teacher did not list, "
            "in order."
        ),
        examples=[["2027-W11", "2027-W12"]],
    )
    distance_km: float | None = Field(
        default=None, ge=0, description="max_travel_km: home to site, km.", examples=[42.3]
    )
    limit_km: float | None = Field(
        default=None, ge=0, description="max_travel_km: the student's limit, km.", examples=[30]
    )


class HeldBy(_Model):
    """Who holds the slots of a full choice, counted relative to the student explained. Each
    holder is counted once, in the first group that fits it, in this order."""

    slots: int = Field(ge=0, description="The placement's slots in this round.", examples=[2])
    pinned: int = Field(
        default=0, ge=0, description="Held by students already confirmed or accepted there."
    )
    higher_priority: int = Field(
        default=0, ge=0, description="Held by students of higher priority."
    )
    better_rank: int = Field(
        default=0, ge=0, description="Same priority, ranked the placement better."
    )
    same_rank: int = Field(default=0, ge=0, description="Same priority, ranked it the same.")
    worse_rank: int = Field(
        default=0,
        ge=0,
        description="Same priority, ranked it worse (the best outcome overall put them there).",
    )
    lower_priority: int = Field(default=0, ge=0, description="Held by students of lower priority.")
    unranked: int = Field(
        default=0, ge=0, description="Held by students who did not rank it (assigned by hand)."
    )


class ChoiceNote(_Model):
    """Why one choice better than the outcome is not the student's placement."""

    rank: int = Field(ge=1, description="Position in the student's preferences.", examples=[1])
    placement_id: Id = Field(description="The placement chosen.", examples=["p-1"])
    status: ChoiceStatus = Field(description="What stood in the way.", examples=["full"])
    rules: tuple[RuleFailure, ...] = Field(
        default=(), description="ineligible: every rule failed, with its figures."
    )
    held_by: HeldBy | None = Field(default=None, description="full: who holds the slots.")


class Explanation(_Model):
    """Every choice better than the outcome, and what stood in the way of each."""

    better_choices: tuple[ChoiceNote, ...] = Field(
        default=(),
        description="Choices ranked better than the outcome (all when unplaced), best first.",
    )
    choices: int = Field(ge=0, description="How many placements the student ranked.", examples=[5])


class StudentOutcome(_Model):
    """One student's outcome of a round."""

    student_id: Id = Field(description="Pseudonymous student id.", examples=["s-000123"])
    placement_id: Id | None = Field(description="Where placed; None when unplaced.")
    rank: int | None = Field(
        ge=1, description="Rank of the placement for the student; None when filled or unplaced."
    )
    filled: bool = Field(
        default=False, description="Placed by fill at a vacancy the student did not rank."
    )
    pinned: bool = Field(
        default=False, description="Kept from before (confirmed, accepted, or assigned by hand)."
    )
    reason: OutcomeReason | None = Field(description="Why unplaced; None when placed.")
    previous_placement_id: Id | None = Field(
        default=None,
        description="The student's standing match before the round (who moves: it differs).",
    )
    explanation: Explanation = Field(description="Why this outcome.")


def outcome_json(model: BaseModel) -> str:
    """An outcome's JSON (or a part's: an explanation, a rule, holders) as it travels and is
    stored: every field at its default left out (`model_dump_json(exclude_defaults=True)`;
    the model reads it back equal)."""
    return model.model_dump_json(exclude_defaults=True)
