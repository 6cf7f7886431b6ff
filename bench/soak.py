"""Soak: the demo ten times over, with people answering while the rounds run, then proof that
nothing was lost.

    .venv/bin/python -m bench.soak [--scale 10] [--seed 2027] [--json out.json] [--keep]
    .venv/bin/python -m bench.soak --down      # what a stopped run left behind

`--scale 10` (the default) is 70,000 students across the demo's 13 regions with the demo's
placements scaled to match (`devtools.synthetic`, about 1.25 slots a student); `--scale 1` is the
demo's size. It runs on the local infrastructure as the demo does (`apl infra up`: Kafka,
PostgreSQL, Keycloak with the dev realm), the three services as processes of their own
(`devtools/demo/run.py`'s way of starting them) on a database and a topic prefix of the run's own
(`apl_soak_<run>`, `<run>.`), sending mail to the demo's SMTP sink (`devtools/demo/mailsink.py`,
its own ports and folder), so it never touches the demo or the tests. Logs:
`.local/soak/<run>/logs/`.

What it does, all through the placements API with tokens of the people who would act:

1. identities: accounts for the people who will act (about 1 % of students answer their
   proposal, 0.4 % re-rank, staff of 0.3 % of the companies answer theirs), made in realm `apl`
   of the local Keycloak by its admin API and signed in once (refresh grants afterwards);
2. posting: each region's placements, then its students, by the region's coordinator
   (`POST /v1/placements/batch`, `/v1/students/batch`, 250 a request, 4 at a time);
3. read model: waits until the matching service has every placement and student;
4. rounds and answers, at once: a round with fill in every region; while they run, re-ranks
   (`PUT /v1/students/{id}/preferences`); as each region's round completes, its students read
   their outcome and match and accept or decline (a quarter decline), the companies' staff list
   their placements' matches and accept (a tenth decline, never a match whose student answers
   themselves); then a second ordinary round in every fourth region, and in others a
   supplementary round (opened, the invited re-rankers rank their vacancies, run);
5. settling: until every outbox is empty, every consumer group has read everything and every
   notice is delivered or failed;
6. checks, from the topics, both services' tables and the sink's messages:
   every posted placement and student is in matching's read model (and the placements
   service's); every requested round completed, once (one MatchingRoundCompleted); no placement
   over capacity and no student with two standing matches (in either service); the two
   services agree on every match; every accept and decline that was answered 200 stands in
   both services (a decline's pair excluded and never proposed again), every match both sides
   accepted confirmed once; every re-ranking is the student's preferences in both; every notice
   the events ask for (`plan_notices`) reached the sink exactly once (counted by Message-ID),
   with one NotificationDelivered, and nothing else did; no dead letters (the soak causes none);
   no 5xx answer.

It prints its figures (students, placements, regions, records per topic and type, rounds and
their latency, answers, notices and their rate, each phase's time, dead letters, peak memory
and CPU of each service, losses as `lost=0 duplicated=0 violations=0`) and exits 1 on any loss,
duplicate or violation. `--json` writes them too (the integration test reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import soak_checks as checks
from bench.soak_api import Api, Keycloak, Person, SoakError, Tokens, new_password, person
from devtools import auth, localinfra
from devtools.demo.run import (
    ACTION_LINK_SECRET,
    SESSION_SECRET,
    WEBHOOK_SECRET,
    DemoPaths,
    Progress,
    _spawn,
    _start_services,
    _stop_all,
    _wait_ready,
    build_data_set,
    coordinator_of,
    region_chunks,
)
from devtools.ports import free_port
from shared.contracts.topics import ALL_TOPICS, Topics
from shared.kafka import delete_topics, ensure_topics
from shared.kafka_client import KafkaConnection

DEMO_STUDENTS = 7000
DEFAULT_SEED = 2027  # the demo's
SERVICES = localinfra.SERVICES
BATCH = 250
POSTERS = 4
HTTP_CONCURRENCY = 8
STUDENT_ACTORS = 0.01
RERANKERS = 0.004
COMPANY_ACTORS = 0.003
STUDENT_DECLINES = 0.25
COMPANY_DECLINES = 0.10
POLL = 0.5


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SoakPaths(DemoPaths):
    """`.local/soak/<run>/`: logs, pid files and the sink's mail of one run."""

    run: str = ""

    @property
    def base(self) -> Path:
        return self.root / ".local" / "soak" / self.run

    @property
    def marker(self) -> Path:
        """What `--down` needs to clean up after this run (database, prefix)."""
        return self.base / "run.json"


# ------------------------------------------------------------------------------------ cast


@dataclass
class Cast:
    """The people who act, chosen from the data set (seeded)."""

    students: list[Person]
    students_decline: set[str]
    """Student ids of the answering students who decline."""
    early: list[Person]
    """Re-rank right after the rounds are requested."""
    late: list[Person]
    """Re-rank after their region's first round (before its second or supplementary one)."""
    companies: list[Person]
    second: list[str]
    """Regions with a second ordinary round."""
    supplementary: list[str]
    """Regions with a supplementary round."""

    @property
    def people(self) -> list[Person]:
        return [*self.students, *self.early, *self.late, *self.companies]


def choose_cast(
    run: str, placements: list[dict[str, Any]], students: list[dict[str, Any]], seed: int
) -> Cast:
    rng = random.Random(seed)  # noqa: S311 (a seeded choice of test people, not a secret)
    regions = sorted({s["region"] for s in students})
    by_region: dict[str, list[dict[str, Any]]] = {r: [] for r in regions}
    for s in students:
        by_region[s["region"]].append(s)
    company_of = {p["placement_id"]: p["company_id"] for p in placements}
    comp_region = {p["company_id"]: p["region"] for p in placements}
    firsts: Counter[str] = Counter()
    for s in students:
        if s["preferences"]:
            firsts[company_of[s["preferences"][0]]] += 1
    cast = Cast([], set(), [], [], [], regions[0::4], regions[2::4])
    for region in regions:
        pool = by_region[region]
        n = len(pool)
        popular = sorted(
            (c for c in firsts if comp_region[c] == region), key=lambda c: (-firsts[c], c)
        )
        k_companies = max(1, round(COMPANY_ACTORS * n))
        chosen = rng.sample(popular[: 5 * k_companies], min(k_companies, len(popular)))
        cast.companies += [person(run, "company", c, region) for c in sorted(chosen)]
        at_chosen = [
            s for s in pool if s["preferences"] and company_of[s["preferences"][0]] in chosen
        ]
        k_students = max(1, round(STUDENT_ACTORS * n))
        picked = rng.sample(at_chosen, min(len(at_chosen), k_students // 2 or 1))
        taken = {s["student_id"] for s in picked}
        rest = [s for s in pool if s["student_id"] not in taken]
        picked += rng.sample(rest, min(len(rest), k_students - len(picked)))
        taken |= {s["student_id"] for s in picked}
        for s in picked:
            cast.students.append(person(run, "student", s["student_id"], region))
            if rng.random() < STUDENT_DECLINES:
                cast.students_decline.add(s["student_id"])
        rest = [s for s in pool if s["student_id"] not in taken]
        k_rerank = max(2, round(RERANKERS * n))
        rerank = rng.sample(rest, min(len(rest), k_rerank))
        half = len(rerank) // 2
        cast.early += [person(run, "student", s["student_id"], region) for s in rerank[:half]]
        cast.late += [person(run, "student", s["student_id"], region) for s in rerank[half:]]
    return cast


# ---------------------------------------------------------------------------------- records


@dataclass
class RoundRun:
    region: str
    kind: str  # first | second | supplementary
    round_id: str
    requested: float
    completed: float | None = None
    body: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    applied: float | None = None
    """When the placements service had consumed everything published until the round showed
    completed (its proposals among it): what people see from then on."""
    visible: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def latency(self) -> float:
        return (self.completed or time.monotonic()) - self.requested


@dataclass
class Answer:
    match_id: uuid.UUID
    by: str
    answer: str  # accept | decline
    status: int
    region: str
    student_id: str
    placement_id: str


@dataclass
class Story:
    """What the people did, for the checks."""

    runs: list[RoundRun] = field(default_factory=list)
    refused_rounds: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    reranks: dict[str, list[str]] = field(default_factory=dict)
    """Student id -> the preferences of their last re-ranking answered 200."""
    rerank_status: Counter[int] = field(default_factory=Counter)
    unplaced_actors: int = 0
    not_visible: list[str] = field(default_factory=list)
    """Proposals an outcome named that the student's match never showed (findings)."""
    openings: dict[str, int] = field(default_factory=dict)
    """Region -> students invited to its supplementary round."""


class Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        _say(f"soak: {name} ...")
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = time.monotonic() - started
            _say(f"soak: {name}: {self.seconds[name]:.1f} s")


# -------------------------------------------------------------------------------- posting


async def post_batches(
    api: Api, label: str, path: str, bodies: list[dict[str, Any]], *, run: str
) -> float:
    """POST `bodies` in chunks of BATCH, one region a chunk, as that region's coordinator, a
    few at once (the demo's import); items per second. A refused batch stops the soak."""
    progress = Progress(label, len(bodies))
    chunks = region_chunks(bodies, BATCH)
    queue: asyncio.Queue[tuple[int, str, list[dict[str, Any]]]] = asyncio.Queue()
    for number, (region, chunk) in enumerate(chunks):
        queue.put_nowait((number, region, chunk))
    done = 0
    refused: list[str] = []

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            number, region, chunk = queue.get_nowait()
            response = await api.call(
                "POST",
                path,
                coordinator_of(region),
                route=path,
                json={"items": chunk},
                key=f"{run}-{label}-{number}",
            )
            if response.status_code != 201:
                refused.append(f"batch {number}: {response.status_code} {response.text[:300]}")
            done += len(chunk)
            progress.update(done)

    await asyncio.gather(*(worker() for _ in range(POSTERS)))
    seconds = progress.finish()
    if refused:
        raise SoakError(f"{len(refused)} {label} batches were refused, e.g. {refused[0]}")
    return len(bodies) / max(seconds, 1e-9)


async def wait_read_model(conn: asyncpg.Connection, placements: int, students: int) -> None:
    total = placements + students
    progress = Progress("matching read model", total)
    deadline = time.monotonic() + max(300.0, total / 50)
    while True:
        seen = int(
            await conn.fetchval(
                "SELECT (SELECT count(*) FROM matching.placements) "
                "+ (SELECT count(*) FROM matching.students)"
            )
        )
        if seen >= total:
            break
        if time.monotonic() > deadline:
            raise SoakError(f"matching read model: {seen}/{total} after the wait")
        progress.update(seen)
        await asyncio.sleep(POLL)
    progress.finish()


# ------------------------------------------------------------------------------- the story


class Scenario:
    """Rounds in every region and people answering while they run."""

    def __init__(
        self,
        api: Api,
        cast: Cast,
        run: str,
        placements: list[dict[str, Any]],
        students: list[dict[str, Any]],
        seed: int,
        probe: checks.Probe,
    ) -> None:
        self.api = api
        self.probe = probe
        self.topics = probe.topics
        self._watchers: list[asyncio.Task[None]] = []
        self.cast = cast
        self.run = run
        self.story = Story()
        self.rng = random.Random(seed + 1)  # noqa: S311 (seeded answers, not a secret)
        self.answering = {p.ident for p in cast.students}
        self.student_region = {s["student_id"]: s["region"] for s in students}
        self.programme = {s["student_id"]: s.get("programme") for s in students}
        self.choices: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for p in placements:
            self.choices.setdefault(p["region"], []).append(
                (p["placement_id"], tuple(p.get("programmes") or ()))
            )
        self.first: dict[str, RoundRun] = {}
        self._company_answered: set[uuid.UUID] = set()

    # ---- rounds

    async def request(self, region: str, kind: str, body: dict[str, Any]) -> RoundRun | None:
        response = await self.api.call(
            "POST",
            "/v1/rounds",
            coordinator_of(region),
            route="/v1/rounds",
            json={"region": region, **body},
            key=f"{self.run}-{kind}-{region}",
        )
        if response.status_code != 202:
            self.story.refused_rounds.append(
                f"{kind} round of {region}: {response.status_code} {response.text[:300]}"
            )
            return None
        run = RoundRun(region, kind, response.json()["round_id"], time.monotonic())
        self.story.runs.append(run)
        return run

    async def poll_rounds(self) -> None:
        while True:
            for run in [r for r in self.story.runs if r.completed is None]:
                response = await self.api.call(
                    "GET",
                    f"/v1/rounds/{run.round_id}",
                    coordinator_of(run.region),
                    route="/v1/rounds/{id}",
                )
                if response.status_code == 200 and response.json().get("status") == "completed":
                    run.completed, run.body = time.monotonic(), response.json()
                    marks = await self.probe.ends(checks.consumed_by("placements", self.topics))
                    self._watchers.append(asyncio.create_task(self.watch_applied(run, marks)))
                    run.done.set()
            await asyncio.sleep(POLL)

    async def watch_applied(self, run: RoundRun, marks: dict[Any, int]) -> None:
        """Until the placements service's group has committed past `marks`."""
        while True:
            if await self.probe.behind("placements", marks) == 0:
                break
            await asyncio.sleep(1.0)
        run.applied = time.monotonic()
        run.visible.set()

    # ---- people

    async def rerank(self, p: Person, *, vacancies: bool = False) -> None:
        """A student ranks again: the vacancies that fit them (when asked and there are any),
        else five open placements of their region, their programme's first."""
        prefs: list[str] = []
        if vacancies:
            found = await self.api.call(
                "GET",
                f"/v1/students/{p.ident}/vacancies",
                p.username,
                route="/v1/students/{id}/vacancies",
            )
            if found.status_code == 200:
                prefs = [v["placement_id"] for v in found.json()["items"]][:5]
        if not prefs:
            programme = self.programme.get(p.ident)
            options = self.choices.get(p.region, [])  # a small scale: a region may have none
            fitting = [pid for pid, progs in options if not progs or programme in progs]
            pool = fitting if len(fitting) >= 5 else [pid for pid, _ in options]
            prefs = self.rng.sample(pool, min(5, len(pool)))
            if not prefs:
                return  # nothing to rank in the region: the student keeps their choices
        response = await self.api.call(
            "PUT",
            f"/v1/students/{p.ident}/preferences",
            p.username,
            route="/v1/students/{id}/preferences",
            json={"preferences": prefs},
        )
        self.story.rerank_status[response.status_code] += 1
        if response.status_code == 200:
            self.story.reranks[p.ident] = prefs

    async def student_answers(self, p: Person, run: RoundRun) -> None:
        """The student reads the round's outcome for them and, when placed, accepts or
        declines the proposal once it shows."""
        outcome: dict[str, Any] = {}
        for attempt in range(30):
            response = await self.api.call(
                "GET",
                f"/v1/students/{p.ident}/outcome",
                p.username,
                route="/v1/students/{id}/outcome",
            )
            if response.status_code == 200 and response.json()["round_id"] == run.round_id:
                outcome = response.json()
                break
            await asyncio.sleep(min(2.0**attempt, 30.0))
        if not outcome:
            self.story.not_visible.append(f"{p.ident}: no outcome of round {run.round_id}")
            return
        if outcome.get("placement_id") is None:
            self.story.unplaced_actors += 1
            return
        match = outcome.get("match")
        for attempt in range(30):
            if match and match["placement_id"] == outcome["placement_id"]:
                break
            await asyncio.sleep(min(2.0**attempt, 30.0))
            response = await self.api.call(
                "GET",
                f"/v1/students/{p.ident}/match",
                p.username,
                route="/v1/students/{id}/match",
            )
            match = response.json() if response.status_code == 200 else None
        if not match or match["placement_id"] != outcome["placement_id"]:
            self.story.not_visible.append(
                f"{p.ident}: placed at {outcome['placement_id']}, no such proposal shown"
            )
            return
        decline = p.ident in self.cast.students_decline
        await self.answer(p.username, "student", match, decline=decline)

    async def answer(self, user: str, by: str, match: dict[str, Any], *, decline: bool) -> None:
        match_id = uuid.UUID(match["match_id"])
        what = "decline" if decline else "accept"
        body: dict[str, Any] = {"by": by}
        if decline:
            body["reason_code"] = "too_far" if by == "student" else "no_capacity"
        response = await self.api.call(
            "POST",
            f"/v1/matches/{match_id}/{what}",
            user,
            route=f"/v1/matches/{{id}}/{what}",
            json=body,
            key=f"{self.run}-{match_id}-{by}-{what}",
        )
        self.story.answers.append(
            Answer(
                match_id,
                by,
                what,
                response.status_code,
                match["region"],
                match["student_id"],
                match["placement_id"],
            )
        )

    async def company_pass(self, p: Person) -> None:
        """Company staff list their placements' matches and answer the open proposals of
        their own region's round that they have not answered: accept, or now and then
        decline (never a match whose student answers it themselves; those that the student
        declines are left to the student)."""
        listed = await self.api.call(
            "GET",
            "/v1/placements",
            p.username,
            route="/v1/placements",
            params={"company_id": p.ident, "limit": 500},
        )
        if listed.status_code != 200:
            return
        for placement in listed.json():
            found = await self.api.call(
                "GET",
                f"/v1/placements/{placement['placement_id']}/matches",
                p.username,
                route="/v1/placements/{id}/matches",
            )
            if found.status_code != 200:
                continue
            for match in found.json():
                match_id = uuid.UUID(match["match_id"])
                if (
                    match["state"] not in ("proposed", "accepted")
                    or match["accepted_by_company"]
                    or match["region"] != p.region
                    or match_id in self._company_answered
                ):
                    continue
                student = match["student_id"]
                if student in self.cast.students_decline:
                    continue
                self._company_answered.add(match_id)
                decline = student not in self.answering and self.rng.random() < COMPANY_DECLINES
                await self.answer(p.username, "company", match, decline=decline)

    async def region_story(self, region: str) -> None:
        run = self.first.get(region)
        if run is None:
            return
        await run.visible.wait()
        students = [p for p in self.cast.students if p.region == region]
        companies = [p for p in self.cast.companies if p.region == region]
        await asyncio.gather(
            *(self.student_answers(p, run) for p in students),
            *(self.company_pass(p) for p in companies),
        )
        late = [p for p in self.cast.late if p.region == region]
        if region in self.cast.supplementary:
            opened = await self.api.call(
                "POST",
                f"/v1/regions/{region}/supplementary",
                coordinator_of(region),
                route="/v1/regions/{region}/supplementary",
                json={},
                key=f"{self.run}-opening-{region}",
            )
            if opened.status_code == 202:
                self.story.openings[region] = int(opened.json()["students"])
            else:
                self.story.refused_rounds.append(
                    f"supplementary opening of {region}: {opened.status_code} {opened.text[:300]}"
                )
        await asyncio.gather(
            *(self.rerank(p, vacancies=region in self.cast.supplementary) for p in late)
        )
        await asyncio.gather(*(self.company_pass(p) for p in companies))  # late proposals
        follow: RoundRun | None = None
        if region in self.cast.second:
            follow = await self.request(region, "second", {"fill": True})
        elif region in self.story.openings:
            follow = await self.request(region, "supplementary", {"kind": "supplementary"})
        if follow is not None:
            await follow.done.wait()

    async def play(self, wait: float) -> None:
        poller = asyncio.create_task(self.poll_rounds())
        try:
            for region in sorted(set(self.student_region.values())):
                run = await self.request(region, "first", {"fill": True})
                if run is not None:
                    self.first[region] = run
            early = asyncio.gather(*(self.rerank(p) for p in self.cast.early))
            stories = asyncio.gather(*(self.region_story(r) for r in sorted(self.first)))
            progress = Progress("rounds completed", len(self.first))
            deadline = time.monotonic() + wait
            while not stories.done():
                if time.monotonic() > deadline:
                    stories.cancel()
                    pending = [f"{r.kind} {r.region}" for r in self.story.runs if not r.completed]
                    raise SoakError(f"rounds not completed within {wait:.0f} s: {pending}")
                done = sum(r.completed is not None for r in self.story.runs)
                seen = sum(r.applied is not None for r in self.story.runs)
                progress.total = len(self.story.runs)
                progress.update(
                    done, f"applied by placements {seen}, answers {len(self.story.answers)}"
                )
                await asyncio.sleep(POLL)
            await stories
            await early
            progress.total = len(self.story.runs)
            progress.finish(f"answers {len(self.story.answers)}")
        finally:
            for task in (poller, *self._watchers):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


# -------------------------------------------------------------------------------- settling


async def settle(conn: asyncpg.Connection, probe: checks.Probe, wait: float) -> dict[str, int]:
    """Until every outbox is empty, every group has read everything and no notice is pending,
    twice in a row; the delivery log by status."""
    progress = Progress("notices delivered", 1)
    deadline = time.monotonic() + wait
    quiet = 0
    while True:
        unsent = await checks.unsent(conn, SERVICES)
        lags = await probe.lags()
        log = await checks.deliveries(conn)
        pending = log.get("pending", 0) + log.get("grouped", 0)
        finished = log.get("delivered", 0) + log.get("failed", 0)
        progress.total = max(finished + pending, 1)
        backlog = sum(unsent.values()) + sum(lags.values())
        progress.update(finished, f"outboxes {sum(unsent.values())} lag {sum(lags.values())}")
        quiet = quiet + 1 if backlog == 0 and pending == 0 else 0
        if quiet >= 2:
            progress.finish()
            return log
        if time.monotonic() > deadline:
            raise SoakError(
                f"not settled within {wait:.0f} s: outboxes {unsent}, lags {lags}, notices {log}"
            )
        await asyncio.sleep(2.0)


# --------------------------------------------------------------------------------- the run


@dataclass
class Setup:
    paths: SoakPaths
    topics: Topics
    kafka: KafkaConnection
    admin_url: str
    database: str
    database_url: str
    issuer: str
    ports: dict[str, int]
    sink_port: int


async def start(run: str) -> Setup:
    root = localinfra.project_root()
    paths = SoakPaths(root, run)
    lines = await asyncio.to_thread(localinfra.up, localinfra.Paths(root))
    settings = dict(line.split("=", 1) for line in lines)
    settings.update({k: v for k, v in os.environ.items() if k.startswith("APL_")})
    kafka, service_kafka = localinfra.kafka_from(settings)
    try:  # the soak's people sign in to the dev realm of the local Keycloak
        issuer = auth.dev_issuer(localinfra.Paths(root))
    except auth.Refused as exc:
        raise SoakError(f"the soak signs in to the local dev realm: {exc}") from exc
    admin_url = settings["APL_DATABASE_URL"]
    database = f"apl_{run.replace('-', '_')}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {database}")
    finally:
        await conn.close()
    database_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    topics = Topics(f"{run}.")
    paths.base.mkdir(parents=True, exist_ok=True)
    paths.marker.write_text(json.dumps({"database": database, "prefix": topics.prefix}) + "\n")
    await ensure_topics(kafka, topics)
    ports = {name: free_port() for name in SERVICES}
    smtp_port, http_port = free_port(), free_port()
    _spawn(
        paths,
        "mailsink",
        [
            sys.executable,
            "-m",
            "devtools.demo.mailsink",
            "--smtp-port",
            str(smtp_port),
            "--http-port",
            str(http_port),
            "--store",
            str(paths.mail),
        ],
        {},
    )
    await _wait_ready(
        "mail sink",
        f"http://127.0.0.1:{http_port}/api/count",
        paths.logs / "mailsink.log",
        paths.pids / "mailsink.pid",
    )
    common = {
        "APL_TOPIC_PREFIX": topics.prefix,
        "APL_ENVIRONMENT": "local",
        "APL_LOG_JSON": "true",
        "APL_AUTH_ISSUER": issuer,
        "APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET,
    }
    extra: dict[str, dict[str, str]] = {
        "placements": {
            "APL_WEB_CLIENT_SECRET": settings.get(
                "APL_WEB_CLIENT_SECRET", localinfra.DEV_WEB_SECRET
            ),
            "APL_SESSION_SECRET": SESSION_SECRET,
        },
        "matching": {},
        "notifications": {
            "APL_NOTIFICATIONS_PLACEMENTS_URL": f"http://127.0.0.1:{ports['placements']}",
            "APL_NOTIFICATIONS_CLIENT_SECRET": settings.get(
                "APL_NOTIFICATIONS_CLIENT_SECRET", localinfra.DEV_NOTIFICATIONS_SECRET
            ),
            "APL_NOTIFICATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "APL_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
            # reminders come of no event (a confirmed match near its start): none in a soak
            "APL_NOTIFICATIONS_REMINDER_DAYS": "0",
        },
    }
    for name in SERVICES:
        extra[name].update(service_kafka[name].environment(name))
    await _start_services(paths, ports, database_url, common, extra)
    return Setup(paths, topics, kafka, admin_url, database, database_url, issuer, ports, smtp_port)


def _pid(paths: SoakPaths, name: str) -> int | None:
    try:
        return int((paths.pids / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None


async def stop(setup: Setup, *, keep: bool) -> None:
    _stop_all(setup.paths)
    with contextlib.suppress(Exception):
        await delete_topics(setup.kafka, setup.topics)
    if not keep:
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(setup.admin_url)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {setup.database} WITH (FORCE)")
            finally:
                await conn.close()
        shutil.rmtree(setup.paths.mail, ignore_errors=True)
        setup.paths.marker.unlink(missing_ok=True)


async def soak(scale: float, seed: int, *, keep: bool, json_out: Path | None) -> int:
    n_students = max(13, round(DEMO_STUDENTS * scale))
    run = f"soak{datetime.now(UTC):%Y%m%d%H%M%S}-{uuid.uuid4().hex[:4]}"
    phases = Phases()
    started = time.monotonic()
    with phases.phase("data set"):
        placements, students = build_data_set(n_students, seed)
        cast = choose_cast(run, placements, students, seed)
    _say(
        f"soak {run}: {len(students)} students, {len(placements)} placements "
        f"({sum(int(p['capacity']) for p in placements)} slots), "
        f"{len({s['region'] for s in students})} regions; acting: {len(cast.students)} students "
        f"answering, {len(cast.early) + len(cast.late)} re-ranking, {len(cast.companies)} "
        "companies"
    )
    with phases.phase("infrastructure and services"):
        setup = await start(run)
    password = new_password()
    limits = httpx.Limits(
        max_connections=HTTP_CONCURRENCY, max_keepalive_connections=HTTP_CONCURRENCY
    )
    base = f"http://127.0.0.1:{setup.ports['placements']}"
    figures: dict[str, Any] = {}
    code = 1
    async with (
        httpx.AsyncClient(timeout=30.0) as idp,
        httpx.AsyncClient(base_url=base, timeout=120.0, limits=limits) as client,
    ):
        kc = Keycloak(setup.issuer, idp)
        try:
            tokens = Tokens(setup.issuer, idp, {p.username: password for p in cast.people})
            api = Api(client, tokens, concurrency=HTTP_CONCURRENCY)
            with phases.phase("identities"):
                await kc.create(cast.people, password)
                sem = asyncio.Semaphore(4)

                async def sign_in(user: str) -> None:
                    async with sem:
                        await tokens.headers(user)

                users = [p.username for p in cast.people]
                users += sorted({coordinator_of(s["region"]) for s in students})
                await asyncio.gather(*(sign_in(u) for u in users))
                # One signed-in request first: the service fetches the issuer's keys at its
                # first request, and requests arriving while that fetch is in flight are
                # answered 503 instead of waiting for it (docs/operations.md, "Soak").
                first = sorted(cast.second)[0]
                await api.call(
                    "GET",
                    "/v1/rounds",
                    coordinator_of(first),
                    route="/v1/rounds (first)",
                    params={"region": first},
                )
            rates: dict[str, float] = {}
            with phases.phase("placements posted"):
                rates["placements"] = await post_batches(
                    api, "placements", "/v1/placements/batch", placements, run=run
                )
            with phases.phase("students registered"):
                rates["students"] = await post_batches(
                    api, "students", "/v1/students/batch", students, run=run
                )
            conn = await asyncpg.connect(setup.database_url)
            stack = contextlib.AsyncExitStack()
            try:
                with phases.phase("matching read model"):
                    await wait_read_model(conn, len(placements), len(students))
                probe = await stack.enter_async_context(checks.Probe(setup.kafka, setup.topics))
                scenario = Scenario(api, cast, run, placements, students, seed, probe)
                with phases.phase("rounds and answers"):
                    await scenario.play(wait=max(900.0, n_students / 20))
                with phases.phase("settling"):
                    log = await settle(conn, probe, max(900.0, n_students / 10))
                memory = {
                    name: checks.memory(pid)
                    for name in (*SERVICES, "mailsink")
                    if (pid := _pid(setup.paths, name)) is not None
                }
                cpu = {
                    name: checks.cpu_seconds(pid)
                    for name in (*SERVICES, "mailsink")
                    if (pid := _pid(setup.paths, name)) is not None
                }
                with phases.phase("checks"):
                    figures = await verify(conn, setup, placements, students, scenario, api, log)
            finally:
                await stack.aclose()
                await conn.close()
            figures["memory_kb"] = memory
            figures["cpu_seconds"] = cpu
            figures["rates"] = rates
            figures["grants"] = dict(tokens.grants)
            figures["run"] = run
            figures["scale"] = scale
            figures["cast"] = {
                "answering_students": len(cast.students),
                "reranking_students": len(cast.early) + len(cast.late),
                "companies": len(cast.companies),
                "second_rounds": cast.second,
                "supplementary_rounds": cast.supplementary,
            }
            code = 0 if figures["verdict"]["ok"] else 1
        finally:
            with phases.phase("teardown"):
                with contextlib.suppress(Exception):
                    deleted = await kc.delete_created()
                    _say(f"soak: {deleted} accounts removed from realm apl")
                await stop(setup, keep=keep)
    phases.seconds["whole run"] = time.monotonic() - started
    figures["phases"] = phases.seconds
    print(report(figures))
    if json_out is not None:
        text = json.dumps(figures, indent=2, default=str) + "\n"
        await asyncio.to_thread(json_out.write_text, text)
    return code


# ---------------------------------------------------------------------------------- checks


async def verify(
    conn: asyncpg.Connection,
    setup: Setup,
    placements: list[dict[str, Any]],
    students: list[dict[str, Any]],
    scenario: Scenario,
    api: Api,
    log: dict[str, int],
) -> dict[str, Any]:
    story = scenario.story
    topics = setup.topics
    read = await checks.read_topics(setup.kafka, topics)
    posted_p = {p["placement_id"] for p in placements}
    posted_s = {s["student_id"] for s in students}
    lost: dict[str, int] = {}
    duplicated: dict[str, int] = {}
    violations: dict[str, int] = {}
    samples: dict[str, list[str]] = {}

    def note(table: dict[str, int], name: str, items: list[str]) -> None:
        table[name] = len(items)
        if items:
            samples[name] = items[:10]

    for finding, posted, kind, schema in (
        ("placements_not_in_read_model", posted_p, "placement", "matching"),
        ("students_not_in_read_model", posted_s, "student", "matching"),
        ("placements_not_in_placements_service", posted_p, "placement", "placements"),
        ("students_not_in_placements_service", posted_s, "student", "placements"),
    ):
        query = f"SELECT {kind}_id FROM {schema}.{kind}s"  # noqa: S608 (fixed names above)
        note(lost, finding, sorted(posted - await checks.ids(conn, query)))

    # rounds: each requested one completed (API), once (one MatchingRoundCompleted)
    requested = {r.round_id for r in story.runs}
    note(lost, "rounds_not_completed", sorted(r.round_id for r in story.runs if not r.completed))
    note(lost, "rounds_without_completion_event", sorted(requested - set(read.completed)))
    note(
        duplicated,
        "round_completion_events",
        [f"{rid} x{n}" for rid, n in read.completed.items() if rid in requested and n > 1],
    )
    in_matching = await checks.ids(conn, "SELECT round_id::text FROM matching.rounds")
    note(lost, "rounds_not_in_matching", sorted(requested - in_matching))
    note(violations, "refused_round_requests", story.refused_rounds)

    # invariants in both services
    over = await checks.over_capacity(conn)
    note(violations, "over_capacity_placements", over["placements"])
    note(violations, "over_capacity_matching", over["matching"])
    two = await checks.two_standing(conn)
    note(violations, "two_standing_placements", two["placements"])
    note(violations, "two_standing_matching", two["matching"])
    apart = await checks.diverged(conn)
    note(lost, "matches_not_in_placements", apart["not_in_placements"])
    note(lost, "matches_not_in_matching", apart["not_in_matching"])
    note(violations, "matches_diverged", apart["different"])

    # answers
    answered = [a for a in story.answers if a.status == 200]
    rows = await checks.matches_by_id(conn, {a.match_id for a in answered})
    not_applied: list[str] = []
    declined_pairs: list[tuple[str, str]] = []
    for a in answered:
        row = rows.get(a.match_id)
        if row is None:
            not_applied.append(f"{a.match_id} ({a.by} {a.answer}): no such match")
            continue
        if a.answer == "decline":
            declined_pairs.append((a.student_id, a.placement_id))
            ok = (
                row["p_state"] in ("declined", "cancelled")
                and row["m_status"] == "declined"
                and row["excluded"]
                and row["p_declined_by"] == a.by
            )
        else:
            flag = "student" if a.by == "student" else "company"
            ok = (
                bool(row[f"p_{flag}"])
                and bool(row[f"m_{flag}"])
                and row["p_state"] in ("accepted", "confirmed")
                and row["m_status"] in ("proposed", "confirmed")
            )
        if not ok:
            not_applied.append(
                f"{a.match_id} ({a.by} {a.answer}): placements {row['p_state']} "
                f"(student {row['p_student']}, company {row['p_company']}), matching "
                f"{row['m_status']} (student {row['m_student']}, company {row['m_company']}), "
                f"excluded {row['excluded']}"
            )
    note(lost, "answers_not_applied", not_applied)
    note(
        violations,
        "declined_pairs_proposed_again",
        await checks.repaired_pairs(conn, declined_pairs),
    )
    refused_answers = [
        f"{a.match_id} ({a.by} {a.answer}): {a.status}" for a in story.answers if a.status != 200
    ]
    note(violations, "answers_refused", refused_answers)
    both = [
        m
        for m, row in rows.items()
        if row["p_student"] and row["p_company"] and row["p_state"] != "declined"
    ]
    note(
        lost,
        "confirmations_missing",
        [
            str(m)
            for m in both
            if read.confirmed.get(str(m), 0) == 0
            or rows[m]["p_state"] != "confirmed"
            or rows[m]["m_status"] != "confirmed"
        ],
    )
    note(
        duplicated,
        "confirmations",
        [f"{m} x{n}" for m, n in read.confirmed.items() if n > 1],
    )

    # re-rankings
    prefs = await checks.preferences(conn, story.reranks)
    note(
        lost,
        "reranks_not_applied",
        [
            f"{sid}: asked {want}, placements {prefs.get(sid, ([], []))[0]}, matching "
            f"{prefs.get(sid, ([], []))[1]}"
            for sid, want in sorted(story.reranks.items())
            if prefs.get(sid) != (want, want)
        ],
    )
    note(
        violations,
        "reranks_refused",
        [f"{n} x {status}" for status, n in story.rerank_status.items() if status != 200],
    )
    note(violations, "proposals_not_visible", story.not_visible)

    # notices: the events' notices (plan_notices) against the sink's Message-IDs
    sink = checks.read_sink(setup.paths.mail)
    planned = {str(n) for n in read.planned}
    failed = {str(n) for n in read.failed}
    note(
        lost,
        "notices_not_at_sink",
        sorted(n for n in planned if sink.by_id.get(n, 0) == 0 and n not in failed),
    )
    note(duplicated, "notices_at_sink", [f"{n} x{c}" for n, c in sink.by_id.items() if c > 1])
    note(violations, "notices_nobody_asked_for", sorted(set(sink.by_id) - planned))
    note(violations, "messages_without_message_id", ["?"] * sink.without_id)
    note(
        lost,
        "notices_without_delivered_event",
        sorted(n for n in planned if read.delivered.get(uuid.UUID(n), 0) == 0 and n not in failed),
    )
    note(
        duplicated,
        "notice_delivered_events",
        [f"{n} x{c}" for n, c in read.delivered.items() if c > 1],
    )
    note(violations, "notices_failed", [f"{n}: {e}" for n, e in read.failed.items()])
    note(
        violations,
        "dead_letters",
        [f"{d['topic']}@{d['offset']}: {d['error']}" for d in read.dead_letters]
        + ["..."] * max(0, read.dlt_total - len(read.dead_letters)),
    )
    violations["dead_letters"] = read.dlt_total
    note(violations, "http_5xx_or_transport", api.server_errors)
    violations["http_5xx_or_transport"] = (
        api.count(status_from=500, status_to=599) + api.transport_errors()
    )

    latencies = [r.latency for r in story.runs if r.completed]
    applied = [
        r.applied - r.completed
        for r in story.runs
        if r.kind == "first" and r.applied and r.completed
    ]
    kinds = Counter(planned_kind for planned_kind in read.planned.values())
    republished = sum(n - 1 for n in read.event_ids.values() if n > 1)
    verdict = {
        "lost": sum(lost.values()),
        "duplicated": sum(duplicated.values()),
        "violations": sum(violations.values()),
    }
    verdict["ok"] = not any(verdict.values())
    answers = Counter(f"{a.by} {a.answer} {a.status}" for a in story.answers)
    return {
        "students": len(students),
        "placements": len(placements),
        "slots": sum(int(p["capacity"]) for p in placements),
        "regions": len({s["region"] for s in students}),
        "topics": {
            topics.contract_topic(t): {"records": read.messages.get(t, 0), **read.types.get(t, {})}
            for t in topics.all_with_dlt()
        },
        "contract_topics": list(ALL_TOPICS),
        "republished_events": republished,
        "rounds": [
            {
                "region": r.region,
                "kind": r.kind,
                "round_id": r.round_id,
                "latency_s": round(r.latency, 3),
                "applied_after_s": (
                    round(r.applied - r.completed, 3) if r.applied and r.completed else None
                ),
                "students": (r.body.get("figures") or {}).get("students"),
                "placed": (r.body.get("figures") or {}).get("placed"),
                "filled": (r.body.get("figures") or {}).get("filled"),
                "proposed": r.body.get("proposed"),
                "cancelled": r.body.get("cancelled"),
            }
            for r in sorted(story.runs, key=lambda r: (r.kind != "first", r.region))
        ],
        "round_latency_s": {
            "median": statistics.median(latencies) if latencies else 0.0,
            "p90": checks.percentile(latencies, 0.9),
            "max": max(latencies, default=0.0),
        },
        "applied_after_completion_s": {
            "median": statistics.median(applied) if applied else 0.0,
            "max": max(applied, default=0.0),
        },
        "answers": dict(sorted(answers.items())),
        "confirmed": len(both),
        "reranks": dict(story.rerank_status),
        "unplaced_answering_students": story.unplaced_actors,
        "supplementary_invited": story.openings,
        "notices": {
            "planned": len(planned),
            "by_kind": dict(sorted(kinds.items())),
            "at_sink": sink.messages,
            "distinct_at_sink": len(sink.by_id),
            "delivered_events": sum(read.delivered.values()),
            "failed_events": len(read.failed),
            "delivery_log": log,
            "sink_span_s": round(sink.span_seconds, 1),
            "rate_per_s": round(sink.messages / sink.span_seconds, 1) if sink.span_seconds else 0,
        },
        "http": {
            f"{method} {route} {status}": n
            for (method, route, status), n in sorted(api.statuses.items())
        },
        "dead_letters": read.dlt_total,
        "lost": lost,
        "duplicated": duplicated,
        "violations": violations,
        "samples": samples,
        "verdict": verdict,
    }


# ---------------------------------------------------------------------------------- report


def report(f: dict[str, Any]) -> str:
    if "verdict" not in f:
        return f"soak: no figures (see the errors above); phases {f.get('phases')}"
    lines = [
        "",
        f"## APL Match soak {f['run']} (scale {f['scale']})",
        "",
        f"students {f['students']}, placements {f['placements']} ({f['slots']} slots), "
        f"regions {f['regions']}",
        f"acting: {f['cast']['answering_students']} students answering, "
        f"{f['cast']['reranking_students']} re-ranking, {f['cast']['companies']} companies; "
        f"second rounds in {', '.join(f['cast']['second_rounds'])}; supplementary rounds in "
        f"{', '.join(f['cast']['supplementary_rounds'])}",
        f"posting: {f['rates']['placements']:.0f} placements/s, "
        f"{f['rates']['students']:.0f} students/s (batches of {BATCH}, {POSTERS} at a time)",
        "",
        "records per topic (type: records):",
    ]
    for topic, counts in f["topics"].items():
        rest = {k: v for k, v in counts.items() if k != "records"}
        detail = ", ".join(f"{k} {v}" for k, v in sorted(rest.items()))
        lines.append(f"  {topic:<32} {counts['records']:>8}  {detail}")
    lines.append(f"  events published more than once (same event id): {f['republished_events']}")
    lat = f["round_latency_s"]
    lines += [
        "",
        f"rounds: {len(f['rounds'])}; latency requested -> completed: median "
        f"{lat['median']:.2f} s, p90 {lat['p90']:.2f} s, max {lat['max']:.2f} s; the "
        "placements service had applied what each first round published "
        f"{f['applied_after_completion_s']['median']:.1f} s (median), "
        f"{f['applied_after_completion_s']['max']:.1f} s (max) after it showed completed",
        "  region kind           students placed filled proposed cancelled latency applied",
    ]
    for r in f["rounds"]:
        lines.append(
            f"  {r['region']:<6} {r['kind']:<14} {r['students'] or 0:>8} {r['placed'] or 0:>6} "
            f"{r['filled'] or 0:>6} {r['proposed'] or 0:>8} {r['cancelled'] or 0:>9} "
            f"{r['latency_s']:>6.2f} s "
            + (f"{r['applied_after_s']:>6.1f} s" if r["applied_after_s"] is not None else "")
        )
    n = f["notices"]
    lines += [
        "",
        "answers (by, answer, status): " + ", ".join(f"{k} {v}" for k, v in f["answers"].items()),
        f"confirmed (both accepted): {f['confirmed']}; re-ranks (status: n): {f['reranks']}; "
        f"answering students left unplaced: {f['unplaced_answering_students']}; invited to "
        f"supplementary rounds: {f['supplementary_invited']}",
        "",
        f"notices: {n['planned']} asked for by the events ("
        + ", ".join(f"{k} {v}" for k, v in n["by_kind"].items())
        + f"); at the sink {n['at_sink']} messages, {n['distinct_at_sink']} Message-IDs; "
        f"NotificationDelivered {n['delivered_events']}, NotificationFailed {n['failed_events']}",
        f"  sink: first to last message {n['sink_span_s']} s, {n['rate_per_s']} messages/s",
        f"dead letters: {f['dead_letters']}",
        "",
        "HTTP answers: " + ", ".join(f"{k}: {v}" for k, v in f["http"].items()),
        "",
        "peak memory (VmHWM) and CPU of each process:",
    ]
    for name, mem in f["memory_kb"].items():
        cpu = f["cpu_seconds"].get(name)
        lines.append(
            f"  {name:<14} peak {mem.get('VmHWM', 0) / 1024:7.1f} MB, now "
            f"{mem.get('VmRSS', 0) / 1024:7.1f} MB, CPU {cpu or 0:8.1f} s"
        )
    lines += ["", "phases:"]
    for name, seconds in f["phases"].items():
        lines.append(f"  {name:<28} {seconds:8.1f} s")
    lines += ["", "checks:"]
    for table in ("lost", "duplicated", "violations"):
        for name, count in f[table].items():
            mark = "ok " if count == 0 else "BAD"
            lines.append(f"  {mark} {table:<10} {name:<40} {count}")
            for sample in f["samples"].get(name, [])[:5]:
                lines.append(f"        {sample}")
    v = f["verdict"]
    lines += [
        "",
        f"lost={v['lost']} duplicated={v['duplicated']} violations={v['violations']}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ down


async def down() -> int:
    """Stop what runs stopped before their end left: processes, topics, databases, accounts."""
    root = localinfra.project_root()
    folder = root / ".local" / "soak"
    lines = await asyncio.to_thread(localinfra.up, localinfra.Paths(root))
    settings = dict(line.split("=", 1) for line in lines)
    settings.update({k: v for k, v in os.environ.items() if k.startswith("APL_")})
    kafka, _ = localinfra.kafka_from(settings)
    issuer = auth.dev_issuer(localinfra.Paths(root))
    for base in sorted(folder.glob("soak*")) if folder.exists() else []:
        paths = SoakPaths(root, base.name)
        stopped = _stop_all(paths)
        if paths.marker.exists():
            marker = json.loads(paths.marker.read_text())
            await delete_topics(kafka, Topics(marker["prefix"]))
            conn = await asyncpg.connect(settings["APL_DATABASE_URL"])
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {marker['database']} WITH (FORCE)")
            finally:
                await conn.close()
            paths.marker.unlink()
        shutil.rmtree(paths.mail, ignore_errors=True)
        _say(f"soak: {base.name}: stopped {', '.join(stopped) or 'nothing'}")
    async with httpx.AsyncClient(timeout=30) as client:
        deleted = await Keycloak(issuer, client).delete_prefixed("soak")
    _say(f"soak: {deleted} soak accounts removed from realm apl")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=10.0, help="times the demo's size (1: 7,000 students)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's database and mail (not the topics)"
    )
    parser.add_argument("--down", action="store_true", help="clean up after stopped runs")
    args = parser.parse_args()
    try:
        if args.down:
            raise SystemExit(asyncio.run(down()))
        raise SystemExit(
            asyncio.run(soak(args.scale, args.seed, keep=args.keep, json_out=args.json))
        )
    except (SoakError, localinfra.InfraError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
