"""Speed of the web application's student and coordinator pages under 50 concurrent signed-in
sessions: latency per page (p50, p95, p99) and requests per second. Target: p95 under 150 ms for
every page.

    .venv/bin/python -m bench.web [--sessions 50] [--seconds 20] [--students 2000]
                                  [--think 2] [--seed 1]

Everything is real: the placements and matching services run as separate processes (`apl serve`)
on the local Kafka, PostgreSQL and Keycloak (`apl infra up`; the settings from the environment
or `.local/apl.env`), under a fresh topic prefix and in a fresh database, both removed at the end
(also after an error or Ctrl-C). The set-up goes through the API as the dev realm's
`coordinator-se-ab`: a generated region (devtools/synthetic.py, the demo's data set, every
student and placement moved into SE-AB) posted with the batch endpoints, a round asked for and
waited on until the matching service has reported it and its proposals are recorded.

Each session is its own `httpx.AsyncClient` over TCP with its own session cookie, signed with the
service's `APL_SESSION_SECRET` as the sign-in callback leaves it and holding its own access token
from Keycloak (a password grant of the dev user: `student`, `student2`, `coordinator-se-ab`), so
the service verifies real tokens. Half the sessions are students (their placement and their
choices pages), half coordinators of SE-AB (the region, the round's report, the audit trail).
Each loops over its pages for the run's length after a warm-up, each request as soon as the
last one answered (or `--think` seconds later on average, as people reading a page would); every
request's latency is recorded, and a status other than 200 is counted as an error, never as a
latency. Before the load, each page is also timed alone (one request at a time): the `alone`
column, what a page costs without waiting for others. The load runs in this process, the service
in its own; on a small machine they share the cores, and the output says so, with the load
average before the run (other work on the machine slows every figure).

Benchmarks print figures: the exit status is 0 whether or not the target is met, 1 when the
set-up failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np

from devtools import auth, localinfra
from devtools.demo.run import Tokens, build_data_set
from services.matching.settings import MatchingSettings
from services.placements.entrypoints.web import SESSION_COOKIE
from services.placements.settings import PlacementsSettings
from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics
from shared.kafka_client import KafkaConnection
from shared.settings import KafkaAdminSettings, ServiceSettings
from tests.support.databases import create_database, drop_database
from tests.support.identity import expiry
from tests.support.processes import ServiceProcess
from tests.support.web import session_cookie

REGION = "SE-AB"
COORDINATOR = "coordinator-se-ab"
STUDENTS = {"student": "s-000001", "student2": "s-000002"}
"""The dev realm's student users and the student each acts for (deploy/keycloak/dev)."""
SCHOOL_EMAIL = "{}@school.example.se"
"""The dev students' verified e-mail, given to their records as a school would."""
SESSION_SECRET = "bench-web-session-secret"  # the bench's own service: local only
ACTION_LINK_SECRET = "bench-web-action-link-secret"  # local only
BATCH = 500  # items a batch request (the API's maximum)
TARGET_MS = 150.0
WARM_UP = 3.0
ALONE_WARM_UP = 3
ALONE_REQUESTS = 10
"""Requests of each page, one at a time, for its latency with nothing else running."""
RENEW_MARGIN = 60.0
"""Seconds before its token expires that a session is signed in anew (outside any timed
request): the dev grant's refresh token belongs to the dev client, not the web client, so the
service could not refresh it."""


class SetupFailed(RuntimeError):
    """The benchmark could not be set up (exit status 1)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """The services under test, on their own topics and database."""

    admin_url: str
    kafka: KafkaConnection
    """The admin principal (topics, ACLs)."""
    service_kafka: dict[str, dict[str, str]]
    """Each service's own principal, as its environment."""
    issuer: str
    log_dir: Path
    topics: Topics = field(default_factory=lambda: Topics(f"benchweb{uuid.uuid4().hex[:8]}."))
    database_url: str = ""
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.processes["placements"].url

    def start(self) -> None:
        common = {
            "APL_ENVIRONMENT": "local",
            "APL_TOPIC_PREFIX": self.topics.prefix,
            "APL_AUTH_ISSUER": self.issuer,
            "APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET,
        }
        extra = {
            "placements": {
                "APL_SESSION_SECRET": SESSION_SECRET,
                "APL_WEB_CLIENT_SECRET": localinfra.DEV_WEB_SECRET,
            },
            "matching": {},
        }
        for name in ("placements", "matching"):
            env = {
                **common,
                **self.service_kafka[name],
                f"APL_{name.upper()}_DATABASE_URL": self.database_url,
                **extra[name],
            }
            self.processes[name] = ServiceProcess(name, env, self.log_dir)
        for process in self.processes.values():
            process.start(wait=90)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def tails(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log_path}):\n{p.tail(20)}" for p in self.processes.values()
        )


@contextlib.asynccontextmanager
async def stack_running(log_dir: Path) -> AsyncIterator[Stack]:
    infra = ServiceSettings.load()  # the shared (admin) addresses: may create a database
    try:
        issuer = auth.dev_issuer(localinfra.Paths(localinfra.project_root()))
    except auth.Refused as exc:
        raise SetupFailed(f"the benchmark signs in as the dev realm's users: {exc}") from exc
    service_kafka = {
        "placements": PlacementsSettings.load().kafka.environment("placements"),
        "matching": MatchingSettings.load().kafka.environment("matching"),
    }
    stack = Stack(
        infra.database_url, KafkaAdminSettings.load().kafka, service_kafka, issuer, log_dir
    )
    try:
        await ensure_topics(stack.kafka, stack.topics)
        stack.database_url = await create_database(stack.admin_url, "apl_bench_web")
        say(f"services: starting placements and matching (logs in {log_dir}) ...")
        try:  # in the loop's thread: a Ctrl-C cancels only once every process has started
            stack.start()
        except (RuntimeError, TimeoutError) as exc:
            raise SetupFailed(str(exc)) from exc
        yield stack
    finally:
        stack.stop()
        if stack.database_url:
            await drop_database(stack.admin_url, stack.database_url)
        await delete_topics(stack.kafka, stack.topics)


# ---------------------------------------------------------------------------------- set-up


@dataclass
class Seeded:
    round_id: str
    students: int
    placements: int
    placed: int
    proposed: int
    preferences: dict[str, int]


def region_data(n_students: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo's generated data set with every placement and student in REGION; the dev
    students' records carry their school e-mail."""
    placements, students = build_data_set(n_students, seed)
    for body in placements:
        body["region"] = REGION
    for body in students:
        body["region"] = REGION
        if body["student_id"] in STUDENTS.values():
            body["email"] = SCHOOL_EMAIL.format(body["student_id"])
    missing = set(STUDENTS.values()) - {s["student_id"] for s in students}
    if missing:
        raise SetupFailed(f"--students is too small to include {sorted(missing)}")
    return placements, students


async def submit(
    client: httpx.AsyncClient, tokens: Tokens, path: str, bodies: list[dict[str, Any]]
) -> None:
    for start in range(0, len(bodies), BATCH):
        chunk = bodies[start : start + BATCH]
        headers = {"Idempotency-Key": f"{path}-{start}", **await tokens.headers(COORDINATOR)}
        response = await client.post(path, json={"items": chunk}, headers=headers)
        if response.status_code != 201:
            raise SetupFailed(f"POST {path}: {response.status_code} {response.text[:500]}")


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], wait: float) -> None:
    deadline = time.monotonic() + wait
    while not await check():
        if time.monotonic() > deadline:
            raise SetupFailed(f"{what}: not within {wait:.0f} s")
        await asyncio.sleep(0.3)


async def seed_region(stack: Stack, n_students: int, seed: int) -> Seeded:
    placements, students = region_data(n_students, seed)
    tokens = Tokens(stack.issuer)
    started = time.monotonic()
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with httpx.AsyncClient(base_url=stack.api, timeout=60.0) as client:
            await submit(client, tokens, "/v1/placements/batch", placements)
            await submit(client, tokens, "/v1/students/batch", students)
            say(
                f"set-up: {len(placements)} placements and {len(students)} students posted "
                f"({time.monotonic() - started:.1f} s)"
            )

            async def read_model_full() -> bool:
                read = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM matching.students) "
                    "+ (SELECT count(*) FROM matching.placements)"
                )
                return int(read or 0) >= len(students) + len(placements)

            await wait_for("the matching service's read model", read_model_full, 180)
            headers = {"Idempotency-Key": f"round-{stack.topics.prefix}"}
            headers.update(await tokens.headers(COORDINATOR))
            response = await client.post("/v1/rounds", json={"region": REGION}, headers=headers)
            if response.status_code != 202:
                raise SetupFailed(f"POST /v1/rounds: {response.status_code} {response.text}")
            round_id = str(response.json()["round_id"])
            report: dict[str, Any] = {}

            async def round_completed() -> bool:
                nonlocal report
                found = await client.get(
                    f"/v1/rounds/{round_id}", headers=await tokens.headers(COORDINATOR)
                )
                report = found.json() if found.status_code == 200 else {}
                return report.get("status") == "completed"

            await wait_for("the round", round_completed, 300)
            proposed = int(report.get("proposed") or 0)

            async def proposals_recorded() -> bool:
                count = await conn.fetchval(
                    "SELECT count(*) FROM placements.matches WHERE round_id = $1",
                    uuid.UUID(round_id),
                )
                return int(count) >= proposed

            await wait_for(
                "the round's proposals in the placements service", proposals_recorded, 120
            )
    finally:
        await conn.close()
    figures = report.get("figures") or {}
    preferences = {
        s["student_id"]: len(s.get("preferences", ()))
        for s in students
        if s["student_id"] in STUDENTS.values()
    }
    say(f"set-up: round {round_id} completed ({time.monotonic() - started:.1f} s in all)")
    return Seeded(
        round_id=round_id,
        students=len(students),
        placements=len(placements),
        placed=int(figures.get("placed", 0)),
        proposed=proposed,
        preferences=preferences,
    )


# ------------------------------------------------------------------------------------ load


@dataclass
class Session:
    """One signed-in browser: its own connection, cookie and access token."""

    user: str
    pages: list[tuple[str, str]]
    """(the page's name in the output, the path requested)."""
    client: httpx.AsyncClient
    issuer: str
    settings: PlacementsSettings
    """The service's settings as far as the cookie goes (its `session_secret`)."""
    signing_in: asyncio.Lock
    """One password grant at a time: Keycloak 26 with brute-force protection refuses a user's
    concurrent logins (and would count them as failures)."""
    expires: float = 0.0

    async def sign_in(self) -> None:
        async with self.signing_in:
            for attempt in range(3):  # someone else may be signing in as this user right now
                try:
                    token = await asyncio.to_thread(
                        auth.password_token, self.issuer, self.user, auth.DEV_PASSWORD
                    )
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(1.0 + attempt)
        self.expires = expiry(token)
        cookie = {"at": token, "rt": None, "exp": self.expires, "csrf": secrets.token_urlsafe(32)}
        self.client.cookies.set(SESSION_COOKIE, session_cookie(self.settings, cookie))


@dataclass
class Samples:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, page: str, seconds: float, outcome: int | str) -> None:
        if outcome == 200:
            self.latencies.setdefault(page, []).append(seconds)
        else:
            by_status = self.errors.setdefault(page, {})
            by_status[str(outcome)] = by_status.get(str(outcome), 0) + 1


async def drive(
    session: Session, samples: Samples, warm_until: float, end: float, think: float
) -> None:
    """Request the session's pages in turn until `end`; record those after `warm_until`.
    Between two requests the session waits `think` seconds on average (0: none)."""
    pauses = np.random.default_rng()
    i = 0
    while True:
        if session.expires - RENEW_MARGIN < time.time():
            await session.sign_in()
        name, path = session.pages[i % len(session.pages)]
        i += 1
        started = time.perf_counter()
        if started >= end:
            return
        try:
            response = await session.client.get(path)
            outcome: int | str = response.status_code
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        elapsed = time.perf_counter() - started
        if started >= warm_until:
            samples.add(name, elapsed, outcome)
        if think > 0:
            await asyncio.sleep(think * float(pauses.uniform(0.5, 1.5)))


async def alone(sessions: list[Session]) -> dict[str, float]:
    """Each page's median latency with nothing else running: one session of each kind asks
    for its pages one at a time (after a few requests to warm up)."""
    medians: dict[str, float] = {}
    seen: set[str] = set()
    for session in sessions:
        for name, path in session.pages:
            if name in seen:
                continue
            seen.add(name)
            times = []
            for i in range(ALONE_WARM_UP + ALONE_REQUESTS):
                started = time.perf_counter()
                response = await session.client.get(path)
                if response.status_code == 200 and i >= ALONE_WARM_UP:
                    times.append(time.perf_counter() - started)
            if times:
                medians[name] = float(np.median(times))
    return medians


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) a process has used so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    samples: Samples
    seconds: float
    pages: list[str]
    client_cpu: float
    server_cpu: float | None
    alone: dict[str, float]
    think: float


async def load(
    stack: Stack, seeded: Seeded, n_sessions: int, seconds: float, think: float
) -> Measured:
    student_users = list(STUDENTS)
    settings = PlacementsSettings(environment="test", session_secret=SESSION_SECRET)
    signing_in = asyncio.Lock()
    sessions: list[Session] = []
    pages: list[str] = []
    async with contextlib.AsyncExitStack() as stack_of_clients:
        for i in range(n_sessions):
            client = await stack_of_clients.enter_async_context(
                httpx.AsyncClient(
                    base_url=stack.api,
                    timeout=30.0,
                    headers={"accept": "text/html"},
                    limits=httpx.Limits(max_connections=1),
                )
            )
            if i % 2 == 0:
                user = student_users[(i // 2) % len(student_users)]
                sid = STUDENTS[user]
                plan = [
                    ("/students/{student_id}", f"/students/{sid}"),
                    ("/students/{student_id}/choices", f"/students/{sid}/choices"),
                ]
            else:
                user = COORDINATOR
                plan = [
                    (f"/regions/{REGION}", f"/regions/{REGION}"),
                    ("/rounds/{round_id}", f"/rounds/{seeded.round_id}"),
                    (f"/regions/{REGION}/audit", f"/regions/{REGION}/audit"),
                ]
            pages += [name for name, _ in plan if name not in pages]
            sessions.append(Session(user, plan, client, stack.issuer, settings, signing_in))
        for session in sessions:
            await session.sign_in()
        medians = await alone(sessions)
        samples = Samples()
        server_pid = stack.processes["placements"].pid
        now = time.perf_counter()
        warm_until, end = now + WARM_UP, now + WARM_UP + seconds
        runs = [asyncio.create_task(drive(s, samples, warm_until, end, think)) for s in sessions]
        await asyncio.sleep(max(warm_until - time.perf_counter(), 0.0))
        client_before, server_before = time.process_time(), cpu_seconds(server_pid)
        measured_from = time.perf_counter()
        await asyncio.gather(*runs)
        measured = time.perf_counter() - measured_from
        client_cpu = time.process_time() - client_before
        server_after = cpu_seconds(server_pid)
    server_cpu = (
        server_after - server_before
        if server_after is not None and server_before is not None
        else None
    )
    return Measured(samples, measured, pages, client_cpu, server_cpu, medians, think)


# ---------------------------------------------------------------------------------- report


def report(measured: Measured, seeded: Seeded, n_sessions: int, load_before: float) -> None:
    cores = os.cpu_count() or 1
    print(
        f"data: region {REGION}, {seeded.students} students, {seeded.placements} placements; "
        f"round {seeded.round_id}: {seeded.placed} placed, {seeded.proposed} proposed; "
        + ", ".join(f"{sid} has {n} choices" for sid, n in sorted(seeded.preferences.items()))
    )
    print(
        f"load: {n_sessions} sessions ({(n_sessions + 1) // 2} students, {n_sessions // 2} "
        f"coordinators), each one TCP connection, "
        + (
            f"{measured.think:g} s between requests on average"
            if measured.think > 0
            else "each request as soon as the last one answered"
        )
        + f"; {WARM_UP:.0f} s warm-up, {measured.seconds:.1f} s measured"
    )
    server = (
        f"{measured.server_cpu / measured.seconds:.0%}"
        if measured.server_cpu is not None
        else "unknown"
    )
    share = (
        f"the load generator and the service share this machine's {cores} cores"
        if cores <= 2
        else f"{cores} cores, the load generator in its own process"
    )
    print(
        f"machine: {share}; CPU while measuring: service {server} of one core, "
        f"load generator {measured.client_cpu / measured.seconds:.0%}; load average "
        f"{load_before:.1f} before the run (other work on the machine slows every figure)"
    )
    print()
    print(
        f"{'page':<32}{'alone ms':>9}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}  errors"
    )
    worst: float | None = None
    total = 0
    missing = []
    for page in measured.pages:
        latencies = np.array(measured.samples.latencies.get(page, []), dtype=float) * 1000
        errors = measured.samples.errors.get(page, {})
        n_errors = sum(errors.values())
        requests = len(latencies) + n_errors
        total += requests
        shown = ", ".join(f"{n} x {status}" for status, n in sorted(errors.items())) or "0"
        single = measured.alone.get(page)
        by_itself = f"{single * 1000:>9.1f}" if single is not None else f"{'-':>9}"
        if len(latencies) == 0:
            missing.append(page)
            print(f"{page:<32}{by_itself}{requests:>9}{'-':>9}{'-':>9}{'-':>9}  {shown}")
            continue
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        worst = max(worst or 0.0, float(p95))
        print(f"{page:<32}{by_itself}{requests:>9}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}  {shown}")
    print(
        f"(alone: the median of {ALONE_REQUESTS} requests one at a time before the load; the "
        "other columns under the load)"
    )
    print(f"throughput: {total / measured.seconds:.0f} requests per second (all pages)")
    if missing:
        print(f"no successful request (not measured): {', '.join(missing)}")
    if worst is None:
        print(f"p95 max over pages: - ms (target < {TARGET_MS:.0f} ms): OVER")
        return
    verdict = "ok" if worst < TARGET_MS else "OVER"
    print(f"p95 max over pages: {worst:.0f} ms (target < {TARGET_MS:.0f} ms): {verdict}")


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-web-") as logs:
        async with stack_running(Path(logs)) as stack:
            try:
                seeded = await seed_region(stack, args.students, args.seed)
            except (SetupFailed, httpx.HTTPError) as exc:
                raise SetupFailed(f"{exc}\n{stack.tails()}") from exc
            say(f"load: {args.sessions} sessions for {WARM_UP:.0f} + {args.seconds:.0f} s ...")
            load_before = os.getloadavg()[0]
            measured = await load(stack, seeded, args.sessions, args.seconds, args.think)
            report(measured, seeded, args.sessions, load_before)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1, help="the generated data set's seed")
    parser.add_argument(
        "--think",
        type=float,
        default=2.0,
        help=(
            "seconds a session waits between requests, on average, as a person reading a page "
            "does (default 2; 0: none, a saturation test rather than 50 people)"
        ),
    )
    args = parser.parse_args()
    if args.sessions < 2 or args.seconds <= 0 or args.think < 0:
        parser.error("--sessions must be at least 2, --seconds positive, --think not negative")
    try:
        asyncio.run(run(args))
    except SetupFailed as exc:
        print(f"bench.web: set-up failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "bench.web: interrupted; services stopped, database and topics removed", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
