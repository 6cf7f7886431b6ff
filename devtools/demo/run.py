"""The demo's steps. See `devtools/demo/__init__.py` for what it does as a whole."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

import asyncpg
import httpx
import jwt
from aiokafka import TopicPartition

from devtools import auth, localinfra
from devtools.ports import free_port, port_free
from shared.contracts.profiles import PlacementOffer, StudentProfile, Supervisor
from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics
from shared.kafka_client import KafkaConnection

SERVICES = localinfra.SERVICES
PREFERRED_PORTS = {"placements": 8000, "matching": 8001, "notifications": 8002}
DEMO_DB = "apl_demo"
SESSION_SECRET = "demo-session-secret"  # the demo's own session cookies, local only
WEBHOOK_SECRET = "demo-webhook-secret"  # local demo only
ACTION_LINK_SECRET = "demo-action-link-secret"  # local demo only; placements and notifications
SIGN_IN_USERS = {
    "student": "a student (s-000001): their placement and their choices",
    "company": "company staff (c-000001): their placements and the students proposed",
    "coordinator-se-ab": "the coordinator of SE-AB: the region, its rounds, the audit trail",
    "coordinator": "a coordinator of SE-AB and SE-O",
    "operator": "an operator: the services, no personal data",
    "teacher": "a teacher (t-000001, SE-AB): their working-life period, choices and profile",
}
TEACHERS = 60
"""Teachers of the demo's round of teachers (SE-AB), with about 0.8 places of working-life
periods each (devtools/synthetic.py, `generate_teachers`)."""
TEACHER_REGION = "SE-AB"
CONCURRENCY = 4  # batches in flight
BATCH = 250  # items a request (the API takes up to 500)

FIRST_NAMES = ("Elin", "Oskar", "Aino", "Leo", "Maja", "Eetu", "Saga", "Noah", "Ella", "Onni")
LAST_NAMES = ("Lindqvist", "Virtanen", "Berg", "Korhonen", "Nyström", "Mäkinen", "Ek", "Laine")


class DemoError(RuntimeError):
    """A step failed in a way the user can act on."""


# ------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def base(self) -> Path:
        return self.root / ".local" / "demo"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def pids(self) -> Path:
        return self.base / "pids"

    @property
    def mail(self) -> Path:
        return self.base / "mail"

    @property
    def prefix(self) -> Path:
        """The topic prefix of the last demo run, so its topics can be deleted."""
        return self.base / "topic-prefix"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _port(preferred: int) -> int:
    return preferred if port_free(preferred) else free_port()


def _spawn(paths: DemoPaths, name: str, cmd: list[str], env: dict[str, str]) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.pids.mkdir(parents=True, exist_ok=True)
    with (paths.logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=paths.root,
        )
    (paths.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _stop_all(paths: DemoPaths) -> list[str]:
    """SIGTERM every process of the run at once, then wait up to 20 s for them all (SIGKILL
    what is left): they stop side by side, not one after another."""
    stopped: list[str] = []
    running: dict[Path, int] = {}
    for pid_file in sorted(paths.pids.glob("*.pid")) if paths.pids.exists() else []:
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            pid_file.unlink()
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            stopped.append(pid_file.stem)
        running[pid_file] = pid
    deadline = time.monotonic() + 20
    while running and time.monotonic() < deadline:
        for pid_file, pid in list(running.items()):
            if _gone(pid):
                del running[pid_file]
                pid_file.unlink(missing_ok=True)
        time.sleep(0.2)
    for pid_file, pid in running.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    return stopped


def region_chunks(
    bodies: list[dict[str, Any]], size: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The bodies in requests of at most `size`, one region each, regions in order."""
    by_region: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        by_region.setdefault(body["region"], []).append(body)
    return [
        (region, items[i : i + size])
        for region, items in sorted(by_region.items())
        for i in range(0, len(items), size)
    ]


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (reaped here when it is this process's child: a zombie still
    answers signal 0)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _delete_demo_topics(paths: DemoPaths, kafka: KafkaConnection) -> None:
    """Delete the last run's topics and their ACLs (120 partitions a run would otherwise pile
    up), as the admin `kafka`."""
    if paths.prefix.exists():
        await delete_topics(kafka, Topics(paths.prefix.read_text().strip()))
        paths.prefix.unlink()


def down(*, keep_infra: bool = False) -> int:
    root = localinfra.project_root()
    paths = DemoPaths(root)
    stopped = _stop_all(paths)
    env = localinfra.Paths(root).env_file
    if paths.prefix.exists() and env.exists():
        settings = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
        with contextlib.suppress(Exception):  # the broker may be down already
            asyncio.run(_delete_demo_topics(paths, localinfra.kafka_from(settings)[0]))
    _say("demo: stopped " + (", ".join(stopped) if stopped else "nothing (no demo processes)"))
    if not keep_infra:
        localinfra.down(localinfra.Paths(root))
    return 0


def _running(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


async def _wait_ready(
    name: str, url: str, log: Path, pid_file: Path | None = None, wait: float = 90.0
) -> None:
    deadline = time.monotonic() + wait
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if pid_file is not None and not _running(pid_file):
                tail = localinfra.tail(log, 30)
                raise DemoError(f"{name} exited during start-up; log {log}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    tail = localinfra.tail(log, 30)
    raise DemoError(f"{name} did not become ready at {url} within {wait:.0f} s; log:\n{tail}")


# --------------------------------------------------------------------------------- tokens


def coordinator_of(region: str) -> str:
    """The dev realm's coordinator of one region (deploy/keycloak/dev/users.json)."""
    return f"coordinator-{region.lower()}"


class Tokens:
    """Access tokens of dev users (password grant through `apl-cli`), each kept until shortly
    before it expires (the realm's tokens live 5 minutes)."""

    MARGIN = 30.0  # seconds before `exp` a token is fetched anew

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self._cache: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def headers(self, user: str) -> dict[str, str]:
        """`Authorization: Bearer` for `user`, fetching a token if none or it is about to expire."""
        async with self._locks.setdefault(user, asyncio.Lock()):
            token, until = self._cache.get(user, ("", 0.0))
            if time.time() >= until:
                try:
                    token = await asyncio.to_thread(
                        auth.password_token, self.issuer, user, auth.DEV_PASSWORD
                    )
                except (RuntimeError, httpx.HTTPError) as exc:
                    raise DemoError(f"no token for {user}: {exc}") from exc
                claims = jwt.decode(token, options={"verify_signature": False})
                expires = float(claims.get("exp") or time.time() + 60)
                until = max(expires - self.MARGIN, time.time() + 5)
                self._cache[user] = (token, until)
        return {"Authorization": f"Bearer {token}"}

    def forget(self, user: str) -> None:
        """Drop `user`'s token (the API answered 401: fetch a new one)."""
        self._cache.pop(user, None)


# ------------------------------------------------------------------------------- progress


class Progress:
    """One line of progress on stderr: redrawn on a terminal, every few seconds otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._complete_shown = False  # off a terminal: the line of the total printed once

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if not self.tty and now - self.last < 5 and done < self.total:
            return
        self.last = now
        width = 30
        filled = int(width * done / max(self.total, 1))
        line = (
            f"{self.label:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{now - self.started:5.1f}s {extra}"
        )
        if not self.tty and done >= self.total:
            if self._complete_shown and not extra:
                return  # the last update printed it: finish() adds nothing new
            self._complete_shown = True
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr)
        sys.stderr.flush()

    def finish(self, extra: str = "") -> float:
        self.last = 0.0
        self.update(self.total, extra)
        if self.tty:
            print(file=sys.stderr)
        return time.monotonic() - self.started


# ------------------------------------------------------------------------------------ data


def _supervisor(placement: PlacementOffer, i: int) -> Supervisor:
    language: Literal["sv", "fi", "en"] = "fi" if i % 11 == 0 else ("en" if i % 17 == 0 else "sv")
    name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i // 3) % len(LAST_NAMES)]}"
    return Supervisor(
        name=name, email=f"handledare.{placement.placement_id}@example.se", language=language
    )


def build_data_set(students: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Placements and students as API bodies; preferences name only posted placements."""
    from devtools.synthetic import generate_round

    generated = generate_round(students, seed=seed)
    placements = [
        p.model_copy(update={"supervisor": _supervisor(p, i)})
        for i, p in enumerate(generated.placements)
    ]
    known = {p.placement_id for p in placements}
    bodies_p = [json.loads(p.model_dump_json(exclude_none=True)) for p in placements]
    bodies_s = []
    for i, s in enumerate(generated.students):
        profile = StudentProfile.model_validate(
            {**s.model_dump(), "preferences": tuple(x for x in s.preferences if x in known)}
        )
        body = json.loads(profile.model_dump_json(exclude_none=True))
        body["name"] = f"{FIRST_NAMES[i % 10]} {LAST_NAMES[(i * 7) % 8]}"
        body["email"] = f"{s.student_id}@students.example.se"
        bodies_s.append(body)
    return bodies_p, bodies_s


def build_teacher_set(
    teachers: int, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Working-life periods for teachers and teachers of TEACHER_REGION as API bodies (the dev
    user `teacher` is t-000001, with the dev realm's e-mail)."""
    from devtools.synthetic import generate_teachers

    generated = generate_teachers(teachers, seed=seed, region=TEACHER_REGION)
    bodies_p = [
        json.loads(
            p.model_copy(update={"supervisor": _supervisor(p, i)}).model_dump_json(
                exclude_none=True
            )
        )
        for i, p in enumerate(generated.placements)
    ]
    bodies_t = []
    for i, t in enumerate(generated.students):
        body = json.loads(t.model_dump_json(exclude_none=True))
        body["name"] = f"{FIRST_NAMES[(i + 3) % 10]} {LAST_NAMES[(i * 5) % 8]}"
        domain = "school.example.se" if i == 0 else "teachers.example.se"
        body["email"] = f"{t.student_id}@{domain}"
        bodies_t.append(body)
    return bodies_p, bodies_t


@dataclass(frozen=True)
class Phase:
    """One phase of the demo as its report gives it: how many of what, in how long."""

    label: str
    count: int
    unit: str
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / max(self.seconds, 1e-9)

    @property
    def rate_text(self) -> str:
        return f"{self.rate:,.1f}" if self.rate < 100 else f"{self.rate:,.0f}"

    @property
    def counted(self) -> str:
        return f"{self.count:,} {self.unit if self.count != 1 else self.unit.removesuffix('s')}"


async def _submit(
    client: httpx.AsyncClient,
    tokens: Tokens,
    label: str,
    path: str,
    bodies: list[dict[str, Any]],
    unit: str,
) -> Phase:
    """POST `bodies` to a batch endpoint in chunks of at most BATCH, one region a chunk, each as
    that region's coordinator (imports are for a coordinator of every item's region), a few
    chunks at a time."""
    progress = Progress(label, len(bodies))
    chunks = region_chunks(bodies, BATCH)
    queue: asyncio.Queue[tuple[int, str, list[dict[str, Any]]]] = asyncio.Queue()
    for number, (region, chunk) in enumerate(chunks):
        queue.put_nowait((number, region, chunk))
    done = 0
    failures: list[str] = []

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            number, region, chunk = queue.get_nowait()
            first = chunk[0].get("placement_id") or chunk[0].get("student_id")
            key = f"{label}-{region}-{number}-{first}"
            user = coordinator_of(region)
            for attempt in range(5):
                headers = {"Idempotency-Key": key, **await tokens.headers(user)}
                try:
                    response = await client.post(path, json={"items": chunk}, headers=headers)
                except httpx.TransportError:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                if response.status_code == 401 and attempt < 4:  # expired in flight
                    tokens.forget(user)
                    continue
                if response.status_code >= 500:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                if response.status_code >= 400:
                    failures.append(f"batch {number}: {response.status_code} {response.text[:500]}")
                break
            done += len(chunk)
            progress.update(done)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    phase = Phase(label, len(bodies), unit, progress.finish())
    _say(f"  {phase.rate_text} {unit} per second, in batches of {BATCH}")
    if failures:
        raise DemoError(f"{len(failures)} {label} batches were refused, e.g.:\n  " + failures[0])
    return phase


# ---------------------------------------------------------------------------------- kafka


class KafkaProbe:
    """Reads consumer-group lag and topic ends with one admin client and one consumer, kept open
    for the whole demo (the waits poll twice a second), as the admin principal: no service may
    read every topic and group."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self.admin = kafka.admin()
        self.consumer = kafka.consumer()

    async def __aenter__(self) -> Self:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        described = await self.admin.describe_topics(list(topics))
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            for p in sorted(d["partitions"], key=lambda p: int(p["partition"]))
        ]

    async def messages(self, topics: Iterable[str]) -> int:
        """Messages ever written to `topics`."""
        ends = await self.consumer.end_offsets(await self.partitions(topics))
        return sum(ends.values())

    async def lag(self, group: str, topics: Iterable[str]) -> int | None:
        """Messages `group` has not committed yet on `topics`; None before its first commit."""
        committed = await self.admin.list_consumer_group_offsets(group)
        if not committed:
            return None
        parts = await self.partitions(topics)
        ends = await self.consumer.end_offsets(parts)
        done: dict[TopicPartition, int] = {
            tp: int(meta.offset) for tp, meta in committed.items() if meta.offset >= 0
        }
        return sum(int(ends[tp]) - done.get(tp, 0) for tp in parts)

    async def records(self, topics: Iterable[str], wait: float = 30.0) -> list[Any]:
        """Every record on `topics` so far, read from the beginning."""
        parts = await self.partitions(topics)
        self.consumer.assign(parts)
        await self.consumer.seek_to_beginning(*parts)
        remaining = sum((await self.consumer.end_offsets(parts)).values())
        got: list[Any] = []
        deadline = time.monotonic() + wait
        while remaining > 0 and time.monotonic() < deadline:
            for records in (await self.consumer.getmany(timeout_ms=500)).values():
                got += records
                remaining -= len(records)
        return got

    async def count_types(self, topic: str, wait: float = 30.0) -> Counter[str]:
        """The events on `topic` by type, read from the beginning."""
        return Counter(
            json.loads(r.value).get("type", "?") for r in await self.records([topic], wait)
        )

    async def round_seconds(self, requests: str, rounds: str) -> dict[str, float]:
        """Per round id, the seconds from its MatchingRoundRequested's record to its
        MatchingRoundCompleted's, by the records' timestamps (set by the relay that produced
        each: the placements service's, then the matching service's). Only those two kinds are
        parsed: the rounds topic also holds the outcome parts, megabytes of them."""
        wanted: dict[bytes, dict[str, int]] = {
            b"MatchingRoundRequested": {},
            b"MatchingRoundCompleted": {},
        }
        for record in await self.records([requests, rounds]):
            seen = wanted.get(dict(record.headers or ()).get("event-type", b""))
            if seen is not None:
                seen[str(json.loads(record.value)["data"]["round_id"])] = record.timestamp
        asked, done = wanted.values()
        return {rid: (done[rid] - at) / 1000 for rid, at in asked.items() if rid in done}


async def _wait_until(
    label: str,
    check: Callable[[], Awaitable[tuple[int, int]]],
    wait: float,
    unit: str,
    since: float | None = None,
) -> Phase:
    """Poll `check` (done, total) with a progress line until done >= total; say the rate, over
    the time since `since` (monotonic: when the work began, if before the wait), else the wait's.
    """
    done, total = await check()
    progress = Progress(label, max(total, 1))
    deadline = time.monotonic() + wait
    while done < total:
        if time.monotonic() > deadline:
            raise DemoError(f"{label}: {done}/{total} after {wait:.0f} s (see .local/demo/logs)")
        progress.total = max(total, 1)
        progress.update(done)
        await asyncio.sleep(0.5)
        done, total = await check()
    waited = progress.finish()
    phase = Phase(label, total, unit, waited if since is None else time.monotonic() - since)
    began = "" if since is None else f" ({phase.seconds:.1f} s since the work began)"
    _say(f"  {phase.rate_text} {unit} per second{began}")
    return phase


# ----------------------------------------------------------------------------------- demo


@dataclass
class RoundRun:
    region: str
    round_id: str
    requested: float
    completed: float | None = None
    body: dict[str, Any] = field(default_factory=dict)
    on_bus: float | None = None
    """Seconds from the request's record to the completion's record on the broker."""


async def _start_services(
    paths: DemoPaths,
    ports: dict[str, int],
    database_url: str,
    common: dict[str, str],
    extra: dict[str, dict[str, str]],
) -> None:
    """Spawn every service on its port and database, then wait until each is ready."""
    for name in SERVICES:
        env = {
            **common,
            f"APL_{name.upper()}_DATABASE_URL": database_url,
            f"APL_{name.upper()}_HTTP_PORT": str(ports[name]),
            **extra[name],
        }
        _spawn(paths, name, [sys.executable, "-m", "services.cli", "serve", name], env)
    for name in SERVICES:
        await _wait_ready(
            name,
            f"http://127.0.0.1:{ports[name]}/readyz",
            paths.logs / f"{name}.log",
            paths.pids / f"{name}.pid",
        )


async def _request_rounds(
    client: httpx.AsyncClient,
    tokens: Tokens,
    regions: list[str],
    key: str,
    options: dict[str, Any],
) -> dict[str, RoundRun]:
    """Request a round with `options` for each region as its coordinator (idempotently: the key
    names the run, the kind of round and the region)."""
    runs: dict[str, RoundRun] = {}
    for region in regions:
        headers = {
            "Idempotency-Key": key + region,
            **await tokens.headers(coordinator_of(region)),
        }
        body = {"region": region, **options}
        response = await client.post("/v1/rounds", json=body, headers=headers)
        if response.status_code != 202:
            raise DemoError(f"round for {region}: {response.status_code} {response.text}")
        runs[region] = RoundRun(region, response.json()["round_id"], time.monotonic())
    return runs


async def _time_on_bus(probe: KafkaProbe, topics: Topics, runs: list[RoundRun]) -> None:
    """Each round's `on_bus` seconds, read off the broker's records."""
    seconds = await probe.round_seconds(topics.round_requests, topics.rounds)
    for run in runs:
        run.on_bus = seconds.get(run.round_id)


def demo(students: int, seed: int) -> int:
    return asyncio.run(_demo(students, seed))


async def _demo(n_students: int, seed: int) -> int:
    started = time.monotonic()
    root = localinfra.project_root()
    paths = DemoPaths(root)
    _stop_all(paths)
    _say("demo: infrastructure ...")
    lines = await asyncio.to_thread(localinfra.up, localinfra.Paths(root))
    env_lines = dict(line.split("=", 1) for line in lines)
    bootstrap, admin_url = env_lines["APL_KAFKA_BOOTSTRAP"], env_lines["APL_DATABASE_URL"]
    kafka, service_kafka = localinfra.kafka_from(env_lines)
    try:  # the demo signs in as dev users: only the local dev realm has them (and `apl-cli`)
        issuer = auth.dev_issuer(localinfra.Paths(root))
    except auth.Refused as exc:
        raise DemoError(f"the demo signs in as the dev realm's users: {exc}") from exc
    client_secret = env_lines.get(
        "APL_NOTIFICATIONS_CLIENT_SECRET", localinfra.DEV_NOTIFICATIONS_SECRET
    )

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DEMO_DB}")
    finally:
        await conn.close()
    database_url = admin_url.rsplit("/", 1)[0] + f"/{DEMO_DB}"
    prefix = f"demo{datetime.now(UTC):%Y%m%d%H%M%S}."
    topics = Topics(prefix)
    await _delete_demo_topics(paths, kafka)
    await ensure_topics(kafka, topics)
    paths.base.mkdir(parents=True, exist_ok=True)
    paths.prefix.write_text(prefix + "\n")

    ports = {name: _port(p) for name, p in PREFERRED_PORTS.items()}
    common = {
        "APL_TOPIC_PREFIX": prefix,
        "APL_ENVIRONMENT": "local",
        "APL_LOG_JSON": "true",
        "APL_AUTH_ISSUER": issuer,
        "APL_ACTION_LINK_SECRET": ACTION_LINK_SECRET,
    }
    smtp_host = os.environ.get("APL_NOTIFICATIONS_SMTP_HOST")
    inbox_url = None
    extra: dict[str, dict[str, str]] = {
        "placements": {
            "APL_WEB_CLIENT_SECRET": env_lines.get(
                "APL_WEB_CLIENT_SECRET", localinfra.DEV_WEB_SECRET
            ),
            "APL_SESSION_SECRET": SESSION_SECRET,
        },
        "matching": {},
        "notifications": {
            "APL_NOTIFICATIONS_PLACEMENTS_URL": f"http://127.0.0.1:{ports['placements']}",
            "APL_NOTIFICATIONS_CLIENT_SECRET": client_secret,
            "APL_NOTIFICATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        },
    }
    for name in SERVICES:  # each service connects as its own principal
        extra[name].update(service_kafka[name].environment(name))
    if not smtp_host:
        smtp_port, http_port = _port(1025), _port(8025)
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
                str(paths.mail / prefix.rstrip(".")),
            ],
            {},
        )
        inbox_url = f"http://127.0.0.1:{http_port}"
        extra["notifications"].update(
            {
                "APL_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
                "APL_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
            }
        )
        await _wait_ready(
            "mail sink",
            f"{inbox_url}/api/count",
            paths.logs / "mailsink.log",
            paths.pids / "mailsink.pid",
        )

    await _start_services(paths, ports, database_url, common, extra)
    _say(f"demo: services ready ({time.monotonic() - started:.0f} s)")
    ready = time.monotonic()
    phases: list[Phase] = []

    placements, students = build_data_set(n_students, seed)
    api = f"http://127.0.0.1:{ports['placements']}"
    limits = httpx.Limits(max_connections=CONCURRENCY)
    tokens = Tokens(issuer)
    async with (
        httpx.AsyncClient(base_url=api, timeout=30.0, limits=limits) as client,
        KafkaProbe(kafka) as probe,
    ):
        posting = time.monotonic()
        phases += [
            await _submit(
                client,
                tokens,
                "placements posted",
                "/v1/placements/batch",
                placements,
                "placements",
            ),
            await _submit(
                client, tokens, "students registered", "/v1/students/batch", students, "students"
            ),
        ]
        periods, teachers = build_teacher_set(TEACHERS, seed)
        phases += [
            await _submit(
                client,
                tokens,
                "teachers' periods posted",
                "/v1/placements/batch",
                periods,
                "periods",
            ),
            await _submit(
                client, tokens, "teachers registered", "/v1/students/batch", teachers, "teachers"
            ),
        ]

        async def consumed() -> tuple[int, int]:
            inputs = (("placements", topics.placements), ("students", topics.students))
            lags = [  # a consumer group per subscriber
                await probe.lag(f"{prefix}matching.{name}", [topic]) for name, topic in inputs
            ]
            lag = None if None in lags else sum(x for x in lags if x is not None)
            total = len(placements) + len(students) + len(periods) + len(teachers)
            return (total - lag if lag is not None else 0), total

        phases.append(  # consumed while they were posted: timed from the first post
            await _wait_until("matching read model", consumed, 180, "events", since=posting)
        )

        regions = sorted({s["region"] for s in students})
        # With fill: the ordinary round, then the students it left unplaced at vacancies of
        # their region that fit them. Fill never changes the ordinary round, so placed minus
        # filled is what the round places without fill.
        requested = time.monotonic()
        runs = await _request_rounds(client, tokens, regions, prefix, {"fill": True})
        every = list(runs.values())

        async def rounds_done() -> tuple[int, int]:
            for run in every:
                if run.completed is None:
                    headers = await tokens.headers(coordinator_of(run.region))
                    response = await client.get(f"/v1/rounds/{run.round_id}", headers=headers)
                    if response.status_code == 401:
                        tokens.forget(coordinator_of(run.region))
                        continue
                    body = response.json()
                    if body.get("status") == "completed":
                        run.completed, run.body = time.monotonic(), body
            return sum(r.completed is not None for r in every), len(every)

        phases.append(await _wait_until("rounds completed", rounds_done, 240, "rounds"))

        # A round of teachers (SE-AB) at its working-life periods, with fill: never mixed with
        # the students' round, which it runs after (the region's lock keeps them apart anyway).
        teacher_runs = await _request_rounds(
            client,
            tokens,
            [TEACHER_REGION],
            prefix + "teachers-",
            {"fill": True, "participant": "teacher"},
        )
        every = list(teacher_runs.values())
        phases.append(await _wait_until("round of teachers completed", rounds_done, 120, "rounds"))
        await _time_on_bus(probe, topics, [*runs.values(), *teacher_runs.values()])

        # Each proposal tells its supervisor and its student, and each unplaced student is told
        # their next steps; every notice ends in a NotificationDelivered or NotificationFailed.
        all_runs = [*runs.values(), *teacher_runs.values()]
        proposed = sum(int(r.body.get("proposed") or 0) for r in all_runs)
        unplaced = sum(sum((r.body.get("unplaced_by_reason") or {}).values()) for r in all_runs)

        expected = 2 * proposed + unplaced

        async def notices() -> tuple[int, int]:
            return await probe.messages([topics.notifications]), expected

        # A notice to a student fetches its context (and, for the unplaced, the vacancies that fit)
        # from the placements service: allow about 20 a second on a small machine.
        phases.append(  # told from the first round's end on: timed from the rounds' requests
            await _wait_until(
                "notices delivered", notices, max(240.0, expected / 20), "notices", since=requested
            )
        )
        to_last_notice = time.monotonic() - ready
        outcomes = await probe.count_types(topics.notifications)
        gaps = await _competence_gaps(client, tokens, regions)
    inbox_count = None
    if inbox_url:
        async with httpx.AsyncClient(timeout=5) as inbox:
            inbox_count = (await inbox.get(f"{inbox_url}/api/count")).json()["count"]

    bounds = no_vacancy_at_all(students, placements)
    teacher_bound = no_vacancy_at_all(teachers, periods)
    report = _report(runs, bounds, outcomes, inbox_count, time.monotonic() - started)
    report += "\n" + _phase_report(phases, to_last_notice)
    slots = sum(int(p["capacity"]) for p in periods)
    report += "\n" + _teacher_report(teacher_runs, teacher_bound, slots)
    report += "\n" + _gap_report(gaps)
    print(report)
    paths.reports.mkdir(exist_ok=True)
    stamp = prefix.removeprefix("demo").rstrip(".")
    (paths.reports / f"demo-{stamp}.md").write_text(report + "\n")
    (paths.reports / f"demo-{stamp}.json").write_text(
        json.dumps(
            {
                "rounds": {r.region: r.body for r in runs.values()},
                "teacher_rounds": {r.region: r.body for r in teacher_runs.values()},
                "competence_gap": gaps,
                "no_eligible_vacancy_at_all": bounds,
                "notifications": dict(outcomes),
                "phases": [
                    {"phase": p.label, "count": p.count, "unit": p.unit, "seconds": p.seconds}
                    for p in phases
                ],
                "services_ready_to_last_notice_seconds": to_last_notice,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"\nreport: reports/demo-{stamp}.md (and .json)")
    _print_running(api, ports, inbox_url, paths, issuer, runs)
    print()
    print(f"APL_API_URL={api}")
    print(f"APL_AUTH_ISSUER={issuer}")
    print(f"APL_KAFKA_BOOTSTRAP={bootstrap}")
    print(f"APL_DATABASE_URL={database_url}")
    print(f"APL_TOPIC_PREFIX={prefix}")
    return 0


def _print_running(
    api: str,
    ports: dict[str, int],
    inbox_url: str | None,
    paths: DemoPaths,
    issuer: str,
    runs: dict[str, RoundRun],
) -> None:
    """What is still running, where, and who to sign in as."""
    print("\nStill running (stop with `make demo-down`):")
    print(f"  Web app        {api}/")
    print(f"  API docs       {api}/docs")
    print(f"  AsyncAPI       http://127.0.0.1:{ports['matching']}/docs/asyncapi")
    if inbox_url:
        print(f"  Inbox          {inbox_url}")
    print(f"  Logs           {paths.logs}")
    for name in ("placements", "matching", "notifications"):
        base = f"http://127.0.0.1:{ports[name]}"
        print(f"  {name:<14} health {base}/readyz   metrics {base}/metrics")
    print("  Grafana        where compose runs: http://localhost:3000 (docs/operations.md)")
    print(f"  Sign-in        {issuer} (realm apl)")
    print()
    print(f"Sign in at {api}/ (password apl-dev for every user):")
    for user, what in SIGN_IN_USERS.items():
        print(f"  {user:<20} {what}")
    print(f"The API: {api}/docs (Authorize signs in the same way), or a token for curl:")
    print("  TOKEN=$(.venv/bin/apl auth token coordinator-se-ab)")
    print(f'  curl -H "Authorization: Bearer $TOKEN" {api}/v1/rounds/{_any_round(runs)}')


def _any_round(runs: dict[str, RoundRun]) -> str:
    """The SE-AB round's id (the region `coordinator-se-ab` may read), else any."""
    run = runs.get("SE-AB") or next(iter(runs.values()), None)
    return run.round_id if run else "<round id>"


def no_vacancy_at_all(
    students: list[dict[str, Any]], placements: list[dict[str, Any]]
) -> dict[str, int]:
    """Per region, the students no placement of their region fits at all (rules 2 to 5 of the
    matching policy, whatever the capacity): the lower bound of the unplaced, fill or not."""
    from services.matching.engine.fill import students_without_vacancy
    from services.matching.engine.problem import build_problem

    profiles = [StudentProfile.model_validate_json(json.dumps(_profile(s))) for s in students]
    offers = [PlacementOffer.model_validate_json(json.dumps(p)) for p in placements]
    problem = build_problem(profiles, offers, (), ())
    return students_without_vacancy(problem)


def _profile(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k in StudentProfile.model_fields}


def _report(
    runs: dict[str, RoundRun],
    bounds: dict[str, int],
    outcomes: Counter[str],
    inbox: int | None,
    seconds: float,
) -> str:
    head = (
        "| region | students | placed without fill | placed with fill | filled | first choice "
        "| top 3 | unplaced (no eligible vacancy) | none fits at all | round "
        "| seen by the API |"
    )
    lines = [
        "",
        "## APL Match demo",
        "",
        "Each region's round runs with fill: placed without fill is what its ordinary round "
        "placed (fill never changes it), placed with fill adds the filled.",
        "",
        head,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals: Counter[str] = Counter()
    for region in sorted(runs):
        run = runs[region]
        figures = run.body.get("figures") or {}
        unplaced = run.body.get("unplaced_by_reason") or {}
        row = {
            "students": int(figures.get("students", 0)),
            "before": int(figures.get("placed", 0)) - int(figures.get("filled", 0)),
            "placed": int(figures.get("placed", 0)),
            "filled": int(figures.get("filled", 0)),
            "first_choice": int(figures.get("first_choice", 0)),
            "top3": int(figures.get("top3", 0)),
            "unplaced": int(sum(unplaced.values())),
            "bound": int(bounds.get(region, 0)),
        }
        totals.update(row)
        latency = (run.completed or run.requested) - run.requested
        lines.append(
            f"| {region} | {row['students']} | {row['before']} | {row['placed']} "
            f"| {row['filled']} | {row['first_choice']} | {row['top3']} | {row['unplaced']} "
            f"| {row['bound']} | {_seconds(run.on_bus)} | {latency:.2f} s |"
        )
    lines.append(
        f"| **all** | {totals['students']} | {totals['before']} | {totals['placed']} "
        f"| {totals['filled']} | {totals['first_choice']} | {totals['top3']} "
        f"| {totals['unplaced']} | {totals['bound']} | | |"
    )
    lines += [
        "",
        "Round: from the round's request to its completion, by the timestamps of both records "
        "(set by the relays that produced them: the request's by the placements service's, the "
        "completion's by the matching service's, after every proposal and outcome of the round). "
        "Seen by the API: from the request's 202 until `GET /v1/rounds/{id}` said completed "
        "(asked twice a second), once the placements service had applied the round's proposals.",
        "",
        "Unplaced students are told which vacancies fit them; a coordinator can open a "
        "supplementary round (POST /v1/regions/{region}/supplementary) or assign by hand "
        "(POST /v1/matches).",
        "",
        f"Notices delivered: {outcomes.get('NotificationDelivered', 0)}, "
        f"failed: {outcomes.get('NotificationFailed', 0)}"
        + (f"; messages in the inbox: {inbox}" if inbox is not None else ""),
        f"Whole run: {seconds:.0f} s",
    ]
    return "\n".join(lines)


def _phase_report(phases: list[Phase], to_last_notice: float) -> str:
    """Each phase's count, time and rate, and the time from services ready to the last notice."""
    lines = [
        "## Phases",
        "",
        "| phase | count | seconds | per second |",
        "|---|---:|---:|---:|",
    ]
    for p in phases:
        lines.append(f"| {p.label} | {p.counted} | {p.seconds:.1f} | {p.rate_text} |")
    lines += [
        "",
        f"From services ready to the last notice delivered: {to_last_notice:.1f} s. The phases are "
        "waited for one after another, but the read model reads while the posting goes on and "
        "the notices go out as each round ends: their times, from when their work began, "
        "overlap the phases before them.",
    ]
    return "\n".join(lines) + "\n"


GAP_TOP = 5
"""The biggest gaps the demo's report gives per region."""


async def _competence_gaps(
    client: httpx.AsyncClient, tokens: Tokens, regions: list[str]
) -> dict[str, dict[str, Any]]:
    """Each region's competence gap report after its round (`GET .../competence-gap`, the
    newest term with a round), as the region's coordinator reads it."""
    found: dict[str, dict[str, Any]] = {}
    for region in regions:
        headers = await tokens.headers(coordinator_of(region))
        response = await client.get(
            f"/v1/regions/{region}/competence-gap", params={"top": GAP_TOP}, headers=headers
        )
        response.raise_for_status()
        found[region] = response.json()
    return found


def _gap_report(gaps: dict[str, dict[str, Any]]) -> str:
    """The competence gap of every region: its slots and empty slots, and the top gaps of the
    region with the most slots left empty for want of a skill or programme, in words."""
    lines = [
        "## The competence gap (after the rounds)",
        "",
        "| region | term | slots | free after the round | empty for want of skill or programme "
        "| biggest gap |",
        "|---|---|---:|---:|---:|---|",
    ]
    for region, g in gaps.items():
        latest = g["rounds"][-1] if g["rounds"] else {}
        top = g["gaps"][0]["text"] if g["gaps"] else "none"
        lines.append(
            f"| {region} | {g['term']} | {g['slots']} | {latest.get('free_slots', 0)} "
            f"| {latest.get('empty_for_want', 0)} | {top} |"
        )
    if not gaps:
        return "\n".join(lines)
    region = "SE-AB" if "SE-AB" in gaps else min(gaps)
    g = gaps[region]
    lines += ["", f"Top {GAP_TOP} gaps of {region}, {g['term_name']}:", ""]
    lines += [f"{i}. {gap['text']}" for i, gap in enumerate(g["gaps"], start=1)]
    lines += ["", "Each region's page: /regions/{region}/competence-gap (as its coordinator)."]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _teacher_report(runs: dict[str, RoundRun], bounds: dict[str, int], slots: int) -> str:
    """The round of teachers' figures: teachers, placed with and without fill, first choice,
    top 3, unplaced, how many no period fits at all (weeks, skills to update, programme)."""
    lines = [
        "",
        "## The round of teachers (working-life periods)",
        "",
        "| region | teachers | periods' places | placed without fill | placed with fill | filled "
        "| first choice | top 3 | unplaced | no period fits at all | round time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for region in sorted(runs):
        run = runs[region]
        f = run.body.get("figures") or {}
        unplaced = int(sum((run.body.get("unplaced_by_reason") or {}).values()))
        latency = (run.completed or run.requested) - run.requested
        placed, filled = int(f.get("placed", 0)), int(f.get("filled", 0))
        lines.append(
            f"| {region} | {int(f.get('students', 0))} | {slots} "
            f"| {placed - filled} | {placed} | {filled} | {int(f.get('first_choice', 0))} "
            f"| {int(f.get('top3', 0))} | {unplaced} | {int(bounds.get(region, 0))} "
            f"| {latency:.2f} s |"
        )
    lines += [
        "",
        "Sign in as `teacher` (t-000001) to see the period proposed, the choices and the profile.",
    ]
    return "\n".join(lines)
