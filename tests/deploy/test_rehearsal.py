"""docker-compose.yml rehearsed without Docker: each application service's command run as a local
process with the environment compose would give its container, until its healthcheck passes.

`deploy/compose-check` loads the file with compose-go (as `docker compose` does: interpolation
from `.env`, `env_file` merged, secrets written to files under a temporary folder) and prints each
service's entrypoint, command, environment, secrets and healthcheck. The image's part comes from
deploy/Dockerfile: its `ENTRYPOINT` (`apl`) and `ENV` lines. Then, in dependency order, `init`
runs to completion (`service_completed_successfully`) and `placements`, `matching` and
`notifications` start (the independent ones at once) and their own healthcheck command is run as
compose would run it (every `interval`, failures in `start_period` not counted, `retries`).

Which containers' world is mapped to this machine, and how (the environment rewriting):
- `kafka:9092` -> the test's Kafka; `@postgres:5432/apl` -> the test's PostgreSQL and a fresh
  database of this rehearsal, in which, as deploy/postgres/init-roles.sh does, each service's role
  (`placements`, `matching`, `notifications`; made with the password of its name when missing,
  as `apl infra up` makes them, and that password put in `.env`) owns a schema of its name;
- `http://keycloak:8080/realms/apl` -> the test's issuer (the local Keycloak: `.env`'s client
  secrets are the dev realm's);
- `http://<service>:<port>` (one service calling another) -> `http://127.0.0.1:<its port here>`,
  `APL_<SERVICE>_HTTP_PORT` -> a free port, and `127.0.0.1:<port>` in the service's own
  healthcheck likewise; `APL_<SERVICE>_HTTP_HOST` `0.0.0.0` -> `127.0.0.1`;
- `/run/secrets/<name>` -> the secret's file;
- added: `APL_TOPIC_PREFIX` (this rehearsal's topics), `PATH` with the virtualenv's `bin` first
  (the image's `apl` and `python`), `HOME`, and `APL_ENV_FILE` naming no file; nothing else of
  this process's environment, and the working directory is an empty folder (like the image's
  /app), so a setting compose does not give is not found elsewhere.
`.env` is .env.example with each `change-me` secret replaced by a random one.

A wrong variable name or command in the compose file fails: two variants of the file below.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from devtools.ports import free_port
from shared.contracts.topics import Topics
from shared.kafka import delete_topics
from tests.support.databases import create_database, drop_database
from tests.support.infra import Infra

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
APP = ("init", "placements", "matching", "notifications")
ROLES = ("placements", "matching", "notifications")
DEV_CLIENT_SECRETS = {  # deploy/keycloak/dev: the local realm's clients
    "APL_NOTIFICATIONS_CLIENT_SECRET": "dev-notifications-secret",
    "APL_WEB_CLIENT_SECRET": "dev-web-secret",
}
READY = {"init": "service_completed_successfully"}


# --------------------------------------------------------------------------------- the image


def image() -> tuple[list[str], dict[str, str]]:
    """deploy/Dockerfile's final stage: its ENTRYPOINT and its ENV variables."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    final = text.rsplit("\nFROM ", 1)[1]
    entrypoint: list[str] = []
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
        elif line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                key, _, value = pair.partition("=")
                env[key] = value
    return entrypoint, env


# ------------------------------------------------------------------------------- the project


def kafka_passwords(infra: Infra) -> dict[str, str]:
    """The Kafka principals' passwords of the local infrastructure, by .env.example's names."""
    passwords = {"KAFKA_ADMIN_PASSWORD": infra.kafka.password.get_secret_value()}
    for role in ROLES:
        kafka = infra.kafka_as(role)
        assert kafka.username == role  # as compose names them
        passwords[f"{role.upper()}_KAFKA_PASSWORD"] = kafka.password.get_secret_value()
    return passwords


def env_file(path: Path, infra: Infra) -> None:
    """.env.example, its placeholders replaced: the roles' passwords are their names (as
    `apl infra up` makes them), the Kafka principals' those of the local cluster, the client
    secrets the dev realm's, the rest random."""
    kafka = kafka_passwords(infra)
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, eq, value = line.partition("=")
        if eq and not line.startswith("#") and value.startswith("change-me"):
            if name.endswith("_DB_PASSWORD"):
                value = name.removesuffix("_DB_PASSWORD").lower()
            elif name in kafka:
                value = kafka[name]
            else:
                value = DEV_CLIENT_SECRETS.get(name) or secrets.token_urlsafe(24)
        lines.append(f"{name}{eq}{value}" if eq else line)
    path.write_text("\n".join(lines) + "\n")


def load(binary: Path, folder: Path, compose_text: str, infra: Infra) -> dict[str, dict[str, Any]]:
    """The services as compose-go loaded them (secrets written under folder/secrets)."""
    (folder / "docker-compose.yml").write_text(compose_text)
    env_file(folder / ".env", infra)
    result = subprocess.run(
        [
            str(binary),
            "-env-file",
            str(folder / ".env"),
            "-secrets-dir",
            str(folder / "secrets"),
            str(folder / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {s["name"]: s for s in json.loads(result.stdout)["services"]}


# ------------------------------------------------------------------------------- the mapping


@dataclass
class Mapping:
    """Compose's addresses -> this machine's."""

    infra: Infra
    database: str  # the rehearsal's database (administrator URL)
    topics: Topics
    ports: dict[str, tuple[str, int]] = field(default_factory=dict)
    """service -> (its port in the container, its port here)"""

    def rewrite(self, value: str, own: str | None = None) -> str:
        pg = urlsplit(self.database)
        value = value.replace("kafka:9092", self.infra.kafka_bootstrap)
        value = value.replace("@postgres:5432/apl", f"@{pg.hostname}:{pg.port or 5432}{pg.path}")
        value = value.replace("http://keycloak:8080/realms/apl", self.infra.auth_issuer)
        for service, (inside, here) in self.ports.items():
            value = value.replace(f"//{service}:{inside}", f"//127.0.0.1:{here}")
            if service == own:
                value = re.sub(
                    rf"\b(127\.0\.0\.1|localhost):{inside}\b", f"127.0.0.1:{here}", value
                )
        return value

    def environment(
        self, name: str, service: dict[str, Any], image_env: dict[str, str], workdir: Path
    ) -> dict[str, str]:
        env = {**image_env, **service["environment"]}
        env = {k: self.rewrite(v, own=name) for k, v in env.items()}
        for target, file in service["secret_files"].items():
            env = {k: v.replace(target, file) for k, v in env.items()}
        prefix = f"APL_{name.upper()}_"
        if name in self.ports:
            env[f"{prefix}HTTP_PORT"] = str(self.ports[name][1])
        if env.get(f"{prefix}HTTP_HOST") == "0.0.0.0":  # noqa: S104 - compose's value, replaced
            env[f"{prefix}HTTP_HOST"] = "127.0.0.1"
        env.update(
            {
                "APL_TOPIC_PREFIX": self.topics.prefix,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HOME": str(workdir),
                "APL_ENV_FILE": str(workdir / "no-such.env"),
            }
        )
        return env


# ------------------------------------------------------------------------------- the rehearsal


@dataclass
class Outcome:
    lines: list[str]
    failed: dict[str, str]  # service -> why


async def _healthy(
    check: dict[str, Any], env: dict[str, str], cwd: Path, mapping: Mapping, name: str
) -> bool:
    test = [mapping.rewrite(part, own=name) for part in check["test"]]
    kind, args = test[0], test[1:]
    argv = ["sh", "-c", args[0]] if kind == "CMD-SHELL" else args
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(proc.wait(), check["timeout_s"]) == 0
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False


@dataclass
class _Run:
    """One rehearsal's state: the services, what became of them, the processes to stop."""

    services: dict[str, dict[str, Any]]
    mapping: Mapping
    workdir: Path
    lines: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)
    """service -> the condition it met (service_healthy, service_completed_successfully)"""
    running: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self, name: str) -> None:
        entrypoint, image_env = image()
        service = self.services[name]
        cwd = self.workdir / name
        cwd.mkdir(parents=True, exist_ok=True)
        env = self.mapping.environment(name, service, image_env, cwd)
        argv = [*(service["entrypoint"] or entrypoint), *(service["command"] or [])]
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(proc)
        shown = f"`{' '.join(argv)}`"
        t0 = time.monotonic()
        if READY.get(name) == "service_completed_successfully":
            try:
                code = await asyncio.wait_for(proc.wait(), 180)
            except TimeoutError:
                code = None
            if code == 0:
                self.done[name] = "service_completed_successfully"
                self.lines.append(f"{name}: {shown} exited 0 after {time.monotonic() - t0:.1f} s")
            else:
                self.failed[name] = f"{shown} ended with {code}:\n{_tail(log_path)}"
            return
        check = service["healthcheck_spec"]
        deadline = t0 + check["start_period_s"] + check["interval_s"] * check["retries"]
        while proc.returncode is None:
            if await _healthy(check, env, cwd, self.mapping, name):
                self.done[name] = "service_healthy"
                test = " ".join(self.mapping.rewrite(p, own=name) for p in check["test"][1:])
                took = time.monotonic() - t0
                self.lines.append(f"{name}: {shown} healthy after {took:.1f} s ({test})")
                return
            if time.monotonic() > deadline:
                self.failed[name] = f"{shown} not healthy in time:\n{_tail(log_path)}"
                return
            await asyncio.sleep(min(check["interval_s"], 1.0))
        self.failed[name] = (
            f"{shown} exited with {proc.returncode} before it was healthy:\n{_tail(log_path)}"
        )

    def startable(self, pending: list[str], only: tuple[str, ...]) -> list[str]:
        """The pending services whose dependencies among the rehearsed ones are met."""
        return [
            n
            for n in pending
            if all(
                self.done.get(dep) == cond
                for dep, cond in self.services[n]["depends_on"].items()
                if dep in only
            )
        ]

    async def stop(self) -> None:
        for proc in self.running:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def rehearse(
    services: dict[str, dict[str, Any]], mapping: Mapping, workdir: Path, only: tuple[str, ...]
) -> Outcome:
    """Run `only` (application services) as compose would, in dependency order (those whose
    dependencies are met at once); stop them all at the end. Returns what happened, line by
    line, and which failed."""
    for name in only:
        inside = services[name]["environment"].get(f"APL_{name.upper()}_HTTP_PORT")
        if inside:
            mapping.ports[name] = (inside, free_port())
    run = _Run(services, mapping, workdir)
    started = time.monotonic()
    try:
        pending = list(only)
        while pending and not run.failed:
            ready = run.startable(pending, only)
            if not ready:
                run.failed.update(dict.fromkeys(pending, "dependencies never met"))
                break
            await asyncio.gather(*(run.start(n) for n in ready))
            pending = [n for n in pending if n not in ready]
    finally:
        await run.stop()
    run.lines.append(f"rehearsal of {', '.join(only)}: {time.monotonic() - started:.1f} s")
    return Outcome(run.lines, run.failed)


def _tail(path: Path, n: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture
async def mapping(
    infra: Infra, make_topics: Callable[[], Awaitable[Topics]]
) -> AsyncIterator[Mapping]:
    """A fresh database with the services' roles and schemas (init-roles.sh's work), and a
    topic prefix of its own (`init` creates the topics; they are deleted afterwards)."""
    database = await create_database(infra.database_url, "apl_rehearsal")
    name = database.rpartition("/")[2]
    admin = await asyncpg.connect(infra.database_url)
    try:
        for role in ROLES:
            if not await admin.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
                await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{role}'")
            await admin.execute(f"GRANT CONNECT ON DATABASE {name} TO {role}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(database)
    try:
        for role in ROLES:
            await conn.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
    finally:
        await conn.close()
    topics = Topics(prefix=f"r{uuid.uuid4().hex[:10]}.")
    try:
        yield Mapping(infra, database, topics)
    finally:
        await delete_topics(infra.kafka, topics, usernames=infra.kafka_usernames)
        await drop_database(infra.database_url, database)


# ---------------------------------------------------------------------------------------- tests


async def test_every_application_service_of_the_compose_file_becomes_healthy(
    compose_check: Path, mapping: Mapping, tmp_path: Path
) -> None:
    services = load(
        compose_check, tmp_path, (ROOT / "docker-compose.yml").read_text(), mapping.infra
    )
    assert set(APP) <= set(services)
    outcome = await rehearse(services, mapping, tmp_path / "run", APP)
    print("\n".join(["", *outcome.lines]))
    assert outcome.failed == {}, "\n\n".join(f"{k}: {v}" for k, v in outcome.failed.items())
    assert len(outcome.lines) == len(APP) + 1


def _second(text: str, old: str, new: str) -> str:
    """`text` with the second occurrence of `old` replaced (the first is `init`'s)."""
    first = text.index(old)
    second = text.index(old, first + 1)
    return text[:second] + new + text[second + len(old) :]


@pytest.mark.parametrize(
    ("variant", "change", "broken", "says"),
    [
        (
            "a misspelt variable",
            lambda t: _second(
                t,
                "APL_PLACEMENTS_DATABASE_URL: postgresql",
                "APL_PLACEMENT_DATABASE_URL: postgresql",
            ),
            "placements",
            "5432",  # without its variable the service tries the default address, refused
        ),
        (
            "a wrong command",
            lambda t: t.replace('command: ["serve", "matching"]', 'command: ["serve", "match"]'),
            "matching",
            "invalid choice: 'match'",
        ),
    ],
)
async def test_a_mistake_in_the_compose_file_fails_the_rehearsal(
    compose_check: Path,
    mapping: Mapping,
    tmp_path: Path,
    variant: str,
    change: Callable[[str], str],
    broken: str,
    says: str,
) -> None:
    original = (ROOT / "docker-compose.yml").read_text()
    text = change(original)
    assert text != original, variant
    services = load(compose_check, tmp_path, text, mapping.infra)  # compose accepts the file
    outcome = await rehearse(services, mapping, tmp_path / "run", ("init", broken))
    assert list(outcome.failed) == [broken], (variant, outcome)
    assert says in outcome.failed[broken], outcome.failed[broken]
