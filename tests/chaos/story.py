"""The story every trial tells, from a seed: companies' placements and students posted through
the placements API, a round, people accepting and declining its proposals, a second round,
more acceptances, until every match both sides accepted is confirmed.

The data set and every decision follow from the seed alone (never from timing), so two runs of
one seed must end with the same assignments; only the ids differ between trials (each trial
tags its ids, addresses and region), and `normalise` takes the tag out again for comparing.
Every write the API accepted is kept in `Story.accepted`, for the checks.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.stack import Api, coordinator
from tests.support.waiting import eventually

PLACEMENTS = 6
STUDENTS = 14
LANGUAGES = ("sv", "fi", "en")
WAIT = 180.0
"""How long a step waits for the services (a killed one restarts, a lease runs out)."""


@dataclass(frozen=True)
class Accepted:
    """A write the placements API accepted: what event it must lead to."""

    kind: str  # placement, student, round, accept, decline
    key: str  # the placement, student, round or match id
    by: str = ""


@dataclass
class Story:
    seed: int
    tag: str
    """Marks this trial's ids and addresses (`t03`)."""
    region: str
    accepted: list[Accepted] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    steps: list[tuple[float, str]] = field(default_factory=list)
    """(seconds since the start, step) as the story went."""
    started: float = 0.0
    final: dict[str, tuple[str, str] | None] = field(default_factory=dict)

    # ------------------------------------------------------------------- the data

    def placement_id(self, i: int) -> str:
        return f"{self.tag}-p{i:02d}"

    def student_id(self, i: int) -> str:
        return f"{self.tag}-s{i:02d}"

    def supervisor(self, i: int) -> str:
        return f"sup-{self.tag}-p{i:02d}@example.se"

    def student_email(self, i: int) -> str:
        return f"{self.tag}-s{i:02d}@students.example.se"

    def placements(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:placements")
        return [
            {
                "placement_id": self.placement_id(i),
                "company_id": f"{self.tag}-c{i % 3}",
                "region": self.region,
                "capacity": rng.choice((1, 1, 2, 2, 3)),
                "title": f"Placement {i}",
                "programmes": ["EE"],
                "starts_on": "2027-01-18",
                "ends_on": "2027-03-12",
                "supervisor": {
                    "name": f"Supervisor {i}",
                    "email": self.supervisor(i),
                    "language": LANGUAGES[i % len(LANGUAGES)],
                },
            }
            for i in range(PLACEMENTS)
        ]

    def students(self) -> list[dict[str, Any]]:
        rng = random.Random(f"{self.seed}:students")
        weights = [rng.uniform(0.5, 3.0) for _ in range(PLACEMENTS)]  # some are popular
        made = []
        for i in range(STUDENTS):
            wanted = rng.randint(1, 4)
            prefs: list[str] = []
            while len(prefs) < wanted:
                pick = rng.choices(range(PLACEMENTS), weights)[0]
                if self.placement_id(pick) not in prefs:
                    prefs.append(self.placement_id(pick))
            made.append(
                {
                    "student_id": self.student_id(i),
                    "region": self.region,
                    "programme": "EE",
                    "preferences": prefs,
                    "priority": 1 if rng.random() < 0.2 else 0,
                    "name": f"Student {i}",
                    "email": self.student_email(i),
                }
            )
        return made

    def decision(self, student_id: str, round_no: int) -> str:
        """What the people do with a proposal of round `round_no` to the student: `decline`
        (the student declines), `accept` (the student and the company accept) or `wait`."""
        draw = random.Random(f"{self.seed}:{student_id.removeprefix(self.tag)}:{round_no}").random()
        if round_no == 1:
            return "decline" if draw < 0.3 else "accept" if draw < 0.7 else "wait"
        return "accept" if draw < 0.5 else "wait"

    def normalise(self, text: str) -> str:
        """`text` without this trial's tag (for comparing trials)."""
        return text.replace(self.tag, "*")

    def mark(self, step: str) -> None:
        self.steps.append((time.monotonic() - self.started, step))

    # ------------------------------------------------------------------- the story

    async def run(self, api: Api) -> dict[str, tuple[str, str] | None]:
        self.started = time.monotonic()
        await self.post_inputs(api)
        first = await self.round(api, 1)
        for match in sorted(first, key=lambda m: str(m["student_id"])):
            await self.answer(api, match, self.decision(match["student_id"], 1))
        self.mark("round 1 answered")
        second = await self.round(api, 2)
        for match in sorted(second, key=lambda m: str(m["student_id"])):
            await self.answer(api, match, self.decision(match["student_id"], 2))
        self.mark("round 2 answered")
        await self.confirmed(api)
        self.mark("confirmed")
        return self.final

    async def post_inputs(self, api: Api) -> None:
        """The placements (half one by one, half as an import) and the students (two one by
        one, the rest as an import)."""
        me = coordinator(self.region)
        placements = self.placements()
        for body in placements[: PLACEMENTS // 2]:
            await api.post(me, "/v1/placements", body, f"{self.tag}-{body['placement_id']}")
            self.accepted.append(Accepted("placement", body["placement_id"]))
        batch = {"items": placements[PLACEMENTS // 2 :]}
        await api.post(me, "/v1/placements/batch", batch, f"{self.tag}-placements")
        self.accepted += [Accepted("placement", b["placement_id"]) for b in batch["items"]]
        self.mark("placements posted")
        students = self.students()
        for body in students[:2]:
            await api.post(me, "/v1/students", body, f"{self.tag}-{body['student_id']}")
            self.accepted.append(Accepted("student", body["student_id"]))
        rest = {"items": students[2:]}
        await api.post(me, "/v1/students/batch", rest, f"{self.tag}-students")
        self.accepted += [Accepted("student", b["student_id"]) for b in rest["items"]]
        self.mark("students posted")

    async def round(self, api: Api, number: int) -> list[dict[str, Any]]:
        """Ask for a round, wait until it completed and the placements service shows its
        proposals; return them."""
        me = coordinator(self.region)
        accepted = await api.post(
            me, "/v1/rounds", {"region": self.region}, f"{self.tag}-round-{number}"
        )
        round_id = str(accepted["round_id"])
        self.rounds.append(round_id)
        self.accepted.append(Accepted("round", round_id))

        async def completed() -> dict[str, Any]:
            body: dict[str, Any] = await api.get(me, f"/v1/rounds/{round_id}")
            return body if body["status"] == "completed" else {}

        done = await eventually(completed, wait=WAIT, interval=0.3, what=f"round {number}")
        self.mark(f"round {number} completed")
        proposed = int(done["proposed"] or 0)

        async def proposals() -> list[dict[str, Any]]:
            found = [m for m in await self.matches(api) if str(m["round_id"]) == round_id]
            return found if len(found) >= proposed else []

        if proposed == 0:
            return []
        return await eventually(
            proposals, wait=WAIT, interval=0.3, what=f"round {number}'s {proposed} proposals"
        )

    async def matches(self, api: Api) -> list[dict[str, Any]]:
        """Every match of this story's placements, as the placements service shows them."""
        me = coordinator(self.region)
        lists = await asyncio.gather(
            *(
                api.get(me, f"/v1/placements/{self.placement_id(i)}/matches")
                for i in range(PLACEMENTS)
            )
        )
        return [m for each in lists for m in each]

    async def answer(self, api: Api, match: dict[str, Any], decision: str) -> None:
        me = coordinator(self.region)
        match_id = str(match["match_id"])
        if decision == "decline":
            body = {"by": "student", "reason": "chaos: declined"}
            await api.post(me, f"/v1/matches/{match_id}/decline", body, f"{match_id}-decline")
            self.accepted.append(Accepted("decline", match_id, "student"))
        elif decision == "accept":
            for party in ("student", "company"):
                await api.post(
                    me, f"/v1/matches/{match_id}/accept", {"by": party}, f"{match_id}-{party}"
                )
                self.accepted.append(Accepted("accept", match_id, party))

    async def confirmed(self, api: Api) -> None:
        """Until every match both sides accepted shows as confirmed; then the final state:
        each student's standing match as (placement, state), or None."""
        both = {a.key for a in self.accepted if a.kind == "accept" and a.by == "company"}

        async def all_confirmed() -> bool:
            states = {str(m["match_id"]): m["state"] for m in await self.matches(api)}
            return all(states.get(match) == "confirmed" for match in both)

        await eventually(all_confirmed, wait=WAIT, interval=0.3, what="the confirmations")

    async def final_state(self, api: Api) -> dict[str, tuple[str, str] | None]:
        """Each student's standing match (placement, state: proposed, accepted or confirmed)
        as the placements API answers it (None: none), keyed and valued without the trial's
        tag."""
        me = coordinator(self.region)
        final: dict[str, tuple[str, str] | None] = {}
        for i in range(STUDENTS):
            sid = self.student_id(i)
            response = await api.call(me, "GET", f"/v1/students/{sid}/match")
            if response.status_code == 404:
                final[self.normalise(sid)] = None
                continue
            assert response.status_code == 200, response.text
            body = response.json()
            standing = body["state"] in ("proposed", "accepted", "confirmed")
            final[self.normalise(sid)] = (
                (self.normalise(body["placement_id"]), body["state"]) if standing else None
            )
        self.final = final
        return final
