"""`apl infra up|down|status|env`: a real Kafka (KRaft), PostgreSQL and Keycloak here, no Docker.

- Kafka: the broker jars are resolved from Maven Central by `deploy/local/pom.xml` into a cache
  outside the repository (`$XDG_CACHE_HOME/apl-match`, else `~/.cache/apl-match`) and run with the
  machine's Java as one combined broker+controller on 127.0.0.1. Clients authenticate with
  SASL/SCRAM-SHA-512 (no PLAINTEXT listener; the controller's listener takes SASL/PLAIN from its
  static `controller` user) and are authorised by ACLs (`StandardAuthorizer`,
  `allow.everyone.if.no.acl.found=false`; `admin` is a super user). The SCRAM users (`admin`
  and one per service) are made when the storage is formatted, on the first start, with
  passwords generated once into `.local/kafka/users.json`. A cluster formatted by an older `up`
  (no SASL users) is formatted again, with a message: it only holds local development data. The
  contract's topics and their `.dlt` twins are created with 12 partitions, and each service's
  ACLs on them; auto-creation is off.
- PostgreSQL: the machine's server binaries (`/usr/lib/postgresql/<v>/bin`, or `APL_PG_BIN`) run a
  cluster in `.local/pg`, on 127.0.0.1 and a port of its own, with one database `apl` and one
  schema and role per service.
- Keycloak 26 (the identity provider, realm `apl` from `deploy/keycloak/`): the distribution from
  Maven Central in the same cache, run with a Java 21+ JDK on 127.0.0.1 (`devtools/keycloak.py`).
- State (data, logs, pids, ports) lives in the project's git-ignored `.local/`. The addresses are
  written to `.local/apl.env` and printed as shell-sourceable lines.
- Where `APL_KAFKA_BOOTSTRAP`, `APL_DATABASE_URL` or `APL_AUTH_ISSUER` is set, that component is
  not started and the given address is used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from devtools.ports import answers, free_port, port_free
from shared.kafka_client import (
    DEFAULT_MECHANISM,
    DEFAULT_PROTOCOL,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)

SERVICES = ("placements", "matching", "notifications")
DB_NAME = "apl"
DB_ADMIN = "apl"
DB_ADMIN_PASSWORD = "apl"  # local development only; the cluster listens on 127.0.0.1
KAFKA_PREFERRED = (19092, 19093)
KAFKA_ADMIN = "admin"  # the super user: topics, ACLs and the dev tools
KAFKA_CONTROLLER = "controller"  # KRaft's own listener (SASL/PLAIN, loopback); a super user
KAFKA_USERS = (KAFKA_ADMIN, *SERVICES)  # SCRAM-SHA-512, made when the storage is formatted
KAFKA_MECHANISM = "SCRAM-SHA-512"
PG_PREFERRED = 15432
# The dev realm's secret of the `apl-notifications` client (deploy/keycloak/dev/clients.json).
DEV_NOTIFICATIONS_SECRET = "dev-notifications-secret"  # dev realm only
DEV_WEB_SECRET = "dev-web-secret"  # dev realm only: the web application's client
WAIT_SECONDS = float(os.environ.get("APL_INFRA_WAIT_SECONDS", "120"))


class InfraError(RuntimeError):
    """Something the user can act on; printed without a traceback."""


# ------------------------------------------------------------------------------------ paths


def project_root() -> Path:
    """The checkout holding `deploy/local/pom.xml`, searched from the working directory up."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "deploy" / "local" / "pom.xml").exists():
            return folder
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / ".local"

    @property
    def env_file(self) -> Path:
        return Path(os.environ.get("APL_ENV_FILE", self.state / "apl.env"))

    @property
    def ports(self) -> Path:
        return self.state / "ports.json"

    @property
    def kafka(self) -> Path:
        return self.state / "kafka"

    @property
    def kafka_users(self) -> Path:
        return self.kafka / "users.json"

    @property
    def kafka_formatted(self) -> Path:
        """Written once the storage is formatted with the SCRAM users of `kafka_users`."""
        return self.kafka / "formatted-with-users"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka / "kafka.pid"

    @property
    def kafka_log(self) -> Path:
        return self.kafka / "logs" / "server.log"

    @property
    def kafka_stdout(self) -> Path:
        return self.kafka / "logs" / "stdout.log"

    @property
    def pg(self) -> Path:
        return self.state / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg / "postgres.log"

    @property
    def keycloak(self) -> Path:
        return self.state / "keycloak"

    @property
    def keycloak_pid(self) -> Path:
        return self.keycloak / "keycloak.pid"

    @property
    def keycloak_log(self) -> Path:
        return self.keycloak / "keycloak.log"

    @property
    def keycloak_import(self) -> Path:
        return self.keycloak / "import"

    @property
    def pom(self) -> Path:
        return self.root / "deploy" / "local" / "pom.xml"

    @property
    def cache(self) -> Path:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(os.environ.get("APL_CACHE_DIR", Path(base) / "apl-match"))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])


def _alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A zombie or a recycled pid is not ours: our process's command line names our state folder.
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if str(pid_file.parent.parent).encode() not in cmdline:
            return None
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.split(")")[-1].split()[0] == "Z":
            return None
    return pid


def _load_ports(paths: Paths) -> dict[str, int]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(paths.ports.read_text())
        return {k: int(v) for k, v in data.items()}
    return {}


def _save_ports(paths: Paths, ports: dict[str, int]) -> None:
    paths.state.mkdir(parents=True, exist_ok=True)
    paths.ports.write_text(json.dumps(ports, indent=2) + "\n")


def _choose(ports: dict[str, int], name: str, preferred: int, *, running: bool) -> int:
    """Keep a remembered port; otherwise the preferred one if free, else any free port."""
    if name in ports and (running or port_free(ports[name])):
        return ports[name]
    chosen = preferred if port_free(preferred) else free_port()
    ports[name] = chosen
    return chosen


# ------------------------------------------------------------------------------------ kafka


def _kafka_version(paths: Paths) -> str:
    text = paths.pom.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>")]


def kafka_libs(paths: Paths) -> Path:
    """Resolve the broker's jars with Maven (once; cached outside the repository)."""
    version = _kafka_version(paths)
    libs = paths.cache / f"kafka-{version}" / "libs"
    marker = libs.parent / "resolved"
    if marker.exists() and any(libs.glob(f"kafka_2.13-{version}.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfraError(
            "Maven (mvn) is needed once to fetch the Kafka jars; install it or set "
            "APL_KAFKA_BOOTSTRAP to an existing Kafka"
        )
    _say(f"fetching Apache Kafka {version} from Maven Central (once) ...")
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(paths.pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        f"-Dmaven.repo.local={paths.cache / 'm2'}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InfraError(
            f"Maven could not resolve Kafka {version}:\n{result.stdout[-3000:]}"
            f"{result.stderr[-3000:]}"
        )
    marker.write_text(version + "\n")
    return libs


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise InfraError(
            "Java 17 or newer is needed to run Kafka; install it or set "
            "APL_KAFKA_BOOTSTRAP to an existing Kafka"
        )
    return java


def kafka_passwords(paths: Paths) -> dict[str, str]:
    """The local cluster's passwords: each SCRAM user's and the controller's, generated once
    (readable by this user only) and kept until `.local/` is removed."""
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        known = {str(k): str(v) for k, v in json.loads(paths.kafka_users.read_text()).items()}
    wanted = (*KAFKA_USERS, KAFKA_CONTROLLER)
    if all(known.get(user) for user in wanted):
        return known
    for user in wanted:
        known.setdefault(user, secrets.token_urlsafe(24))
    paths.kafka.mkdir(parents=True, exist_ok=True)
    _write_private(paths.kafka_users, json.dumps(known, indent=2) + "\n")
    return known


def _write_private(path: Path, text: str) -> None:
    """Write a file only this user may read (it holds passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def _jaas(module: str, user: str, password: str, *, serves: bool = False) -> str:
    served = f' user_{user}="{password}"' if serves else ""
    return f'{module} required username="{user}" password="{password}"{served};'


def _kafka_properties(paths: Paths, port: int, controller: int, passwords: dict[str, str]) -> str:
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    return "\n".join(
        [
            "# Written by `apl infra up`: one combined broker+controller in KRaft mode.",
            "# Clients: SASL/SCRAM-SHA-512 on CLIENT; KRaft: SASL/PLAIN on CONTROLLER (loopback).",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=CLIENT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=CLIENT",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            f"listener.name.client.sasl.enabled.mechanisms={KAFKA_MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={KAFKA_MECHANISM}",
            "listener.name.client.scram-sha-512.sasl.jaas.config="
            + _jaas(scram, KAFKA_ADMIN, passwords[KAFKA_ADMIN]),
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config="
            + _jaas(plain, KAFKA_CONTROLLER, passwords[KAFKA_CONTROLLER], serves=True),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{KAFKA_ADMIN};User:{KAFKA_CONTROLLER}",
            f"log.dirs={paths.kafka / 'data'}",
            "num.partitions=12",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.segment.bytes=104857600",
            "",
        ]
    )


def admin_connection(bootstrap: str, passwords: dict[str, str]) -> KafkaConnection:
    """The local cluster as its admin."""
    return KafkaConnection(bootstrap).as_user(KAFKA_ADMIN, passwords[KAFKA_ADMIN])


def kafka_from(env: Mapping[str, str]) -> tuple[KafkaConnection, dict[str, KafkaConnection]]:
    """The admin's and each service's connection that `env` names (the lines of `up`, or an
    environment): `APL_KAFKA_BOOTSTRAP`, `APL_KAFKA_SECURITY_PROTOCOL`,
    `APL_KAFKA_SASL_MECHANISM`, `APL_KAFKA_CA_FILE`, `APL_KAFKA_ADMIN_USERNAME` and
    `..._PASSWORD`, `APL_<SERVICE>_KAFKA_USERNAME` and `..._PASSWORD`."""
    base = KafkaConnection(
        env["APL_KAFKA_BOOTSTRAP"],
        security_protocol=cast(
            SecurityProtocol, env.get("APL_KAFKA_SECURITY_PROTOCOL", DEFAULT_PROTOCOL)
        ),
        sasl_mechanism=cast(SaslMechanism, env.get("APL_KAFKA_SASL_MECHANISM", DEFAULT_MECHANISM)),
        ca_file=env.get("APL_KAFKA_CA_FILE", ""),
    )
    admin = base.as_user(
        env.get("APL_KAFKA_ADMIN_USERNAME", KAFKA_ADMIN), env.get("APL_KAFKA_ADMIN_PASSWORD", "")
    )
    services = {
        s: base.as_user(
            env.get(f"APL_{s.upper()}_KAFKA_USERNAME", s),
            env.get(f"APL_{s.upper()}_KAFKA_PASSWORD", ""),
        )
        for s in SERVICES
    }
    return admin, services


def _kafka_cmd(paths: Paths, libs: Path, main: str, *args: str) -> list[str]:
    return [
        _java(),
        "-Xms256m",
        os.environ.get("APL_KAFKA_HEAP", "-Xmx1g"),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={paths.kafka / 'logs'}",
        f"-Dlog4j2.configurationFile={paths.root / 'deploy' / 'local' / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _users_fingerprint(passwords: dict[str, str]) -> str:
    text = "\n".join(f"{user}={passwords[user]}" for user in KAFKA_USERS)
    return hashlib.sha256(text.encode()).hexdigest()


def _sasl_ready(paths: Paths, passwords: dict[str, str]) -> bool:
    """The storage was formatted by this version of `up`, with every SCRAM user and the
    passwords of `users.json`."""
    return _text(paths.kafka_formatted).strip() == _users_fingerprint(passwords)


def _format(paths: Paths, libs: Path, config: Path, passwords: dict[str, str]) -> None:
    data = paths.kafka / "data"
    if (data / "meta.properties").exists() and not _sasl_ready(paths, passwords):
        _say(
            f"kafka: {data} was formatted without the SASL users of {paths.kafka_users} (by an "
            "older `apl infra up`, or that file was removed); it holds local development data "
            "only, so it is formatted again (its topics and their records are gone)"
        )
        shutil.rmtree(data)
    if (data / "meta.properties").exists():
        return
    paths.kafka_formatted.unlink(missing_ok=True)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    scram = [
        arg
        for user in KAFKA_USERS
        for arg in ("--add-scram", f"{KAFKA_MECHANISM}=[name={user},password={passwords[user]}]")
    ]
    result = subprocess.run(
        _kafka_cmd(
            paths,
            libs,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            *scram,
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"kafka: formatting storage failed:\n{result.stdout}{result.stderr}")
    paths.kafka_formatted.write_text(_users_fingerprint(passwords) + "\n")
    _say(f"kafka: storage formatted in {data} (SCRAM users {', '.join(KAFKA_USERS)})")


def kafka_up(paths: Paths, ports: dict[str, int]) -> KafkaConnection:
    """Start the local broker unless it runs; return its connection as the admin."""
    running = _alive(paths.kafka_pid)
    config = paths.kafka / "server.properties"
    passwords = kafka_passwords(paths)
    if running is not None and not (
        _sasl_ready(paths, passwords) and "SASL_PLAINTEXT" in _text(config)
    ):
        _say(
            f"kafka: the running broker (pid {running}) was not started with the SASL users of "
            f"{paths.kafka_users} (an older `apl infra up` started it without SASL); stopping it"
        )
        _stop_pid(paths.kafka_pid, "kafka")
        running = None
    port = _choose(ports, "kafka", KAFKA_PREFERRED[0], running=running is not None)
    controller = _choose(ports, "kafka_controller", KAFKA_PREFERRED[1], running=running is not None)
    kafka = admin_connection(f"127.0.0.1:{port}", passwords)
    if running is not None and answers(port):
        _say(f"kafka: already running (pid {running}) at {kafka.bootstrap}")
        return kafka
    libs = kafka_libs(paths)
    (paths.kafka / "logs").mkdir(parents=True, exist_ok=True)
    _write_private(config, _kafka_properties(paths, port, controller, passwords))
    _format(paths, libs, config, passwords)
    with paths.kafka_stdout.open("ab") as out:
        proc = subprocess.Popen(
            _kafka_cmd(paths, libs, "kafka.Kafka", str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=paths.kafka,
        )
    paths.kafka_pid.write_text(f"{proc.pid}\n")
    _say(f"kafka: starting (pid {proc.pid}) at {kafka.bootstrap} ...")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfraError(
                f"kafka: exited with code {proc.returncode}; last lines of "
                f"{paths.kafka_log}:\n{tail(paths.kafka_log)}\n{tail(paths.kafka_stdout, 10)}"
            )
        if answers(port) and _kafka_ready(kafka):
            return kafka
        time.sleep(0.5)
    raise InfraError(
        f"kafka: not accepting connections at {kafka.bootstrap} after {WAIT_SECONDS:.0f} s; "
        f"last lines of {paths.kafka_log}:\n{tail(paths.kafka_log)}"
    )


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _kafka_ready(kafka: KafkaConnection) -> bool:
    async def probe() -> bool:
        admin = kafka.admin(request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    return asyncio.run(probe())


def create_topics(kafka: KafkaConnection, prefix: str = "") -> list[str]:
    """The contract's topics under `prefix` and the services' ACLs on them."""
    from shared.contracts.topics import Topics
    from shared.kafka import ensure_topics

    return asyncio.run(ensure_topics(kafka, Topics(prefix)))


def _stop_pid(pid_file: Path, name: str, timeout: float = 30.0) -> bool:
    pid = _alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid_file) is not None:
        time.sleep(0.3)
    if _alive(pid_file) is not None:
        _say(f"{name}: did not stop in {timeout:.0f} s; killing")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------------- postgres


def pg_bin() -> Path:
    given = os.environ.get("APL_PG_BIN")
    if given:
        return Path(given)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise InfraError(
        "PostgreSQL server binaries not found (apt install postgresql, or set "
        "APL_PG_BIN, or set APL_DATABASE_URL to an existing server)"
    )


def _as_pg_user() -> list[str]:
    """Run server commands as `postgres` when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise InfraError(
            "running as root needs a 'postgres' system user to own the cluster"
        ) from exc
    return ["runuser", "-u", "postgres", "--"]


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise InfraError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def _pg_running(paths: Paths) -> bool:
    if not (paths.pg_data / "postmaster.pid").exists():
        return False
    result = subprocess.run(
        [*_as_pg_user(), str(pg_bin() / "pg_ctl"), "status", "-D", str(paths.pg_data)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def pg_up(paths: Paths, ports: dict[str, int]) -> str:
    running = _pg_running(paths)
    port = _choose(ports, "postgres", PG_PREFERRED, running=running)
    admin_url = f"postgresql://{DB_ADMIN}:{DB_ADMIN_PASSWORD}@127.0.0.1:{port}/{DB_NAME}"
    bindir = pg_bin()
    sudo = _as_pg_user()
    paths.pg.mkdir(parents=True, exist_ok=True)
    if sudo:
        shutil.chown(paths.pg, "postgres", "postgres")
    if not (paths.pg_data / "PG_VERSION").exists():
        pwfile = paths.pg / "pwfile"
        pwfile.write_text(DB_ADMIN_PASSWORD + "\n")
        if sudo:
            shutil.chown(pwfile, "postgres", "postgres")
        _run(
            [
                *sudo,
                str(bindir / "initdb"),
                "-D",
                str(paths.pg_data),
                "-U",
                DB_ADMIN,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            "initdb",
        )
        pwfile.unlink()
        _say(f"postgres: cluster created in {paths.pg_data}")
    if not running:
        conf = "\n".join(
            [
                "# Written by `apl infra up`.",
                "listen_addresses = '127.0.0.1'",
                f"port = {port}",
                f"unix_socket_directories = '{paths.pg}'",
                "max_connections = 300",
                "shared_buffers = 256MB",
                "fsync = on",
                "synchronous_commit = on",
                "log_min_messages = warning",
                "",
            ]
        )
        (paths.pg_data / "apl.conf").write_text(conf)
        if sudo:
            shutil.chown(paths.pg_data / "apl.conf", "postgres", "postgres")
        main_conf = paths.pg_data / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'apl.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'apl.conf'\n")
        _say(f"postgres: starting at 127.0.0.1:{port} ...")
        result = subprocess.run(
            [
                *sudo,
                str(bindir / "pg_ctl"),
                "start",
                "-D",
                str(paths.pg_data),
                "-l",
                str(paths.pg_log),
                "-w",
                "-t",
                str(int(WAIT_SECONDS)),
            ],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise InfraError(
                f"postgres: did not start ({result.stdout.strip()} {result.stderr.strip()}); "
                f"last lines of {paths.pg_log}:\n{tail(paths.pg_log)}"
            )
    else:
        _say(f"postgres: already running at 127.0.0.1:{port}")
    _pg_provision(bindir, port)
    return admin_url


def _pg_provision(bindir: Path, port: int) -> None:
    """Database `apl`, and a role and schema per service (idempotent)."""
    env = {**os.environ, "PGPASSWORD": DB_ADMIN_PASSWORD}
    base = [
        str(bindir / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        DB_ADMIN,
        "-v",
        "ON_ERROR_STOP=1",
        "-qAt",
    ]
    exists = _run(
        # psql -c takes no bind parameters; DB_NAME is this module's constant
        [*base, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],  # noqa: S608
        "psql",
        env,
    ).strip()
    if exists != "1":
        _run([*base, "-d", "postgres", "-c", f"CREATE DATABASE {DB_NAME}"], "create database", env)
    statements = []
    for service in SERVICES:
        statements.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{service}') THEN "
            f"CREATE ROLE {service} LOGIN PASSWORD '{service}'; END IF; END $$;"
        )
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {service};")
        statements.append(f"GRANT CONNECT ON DATABASE {DB_NAME} TO {service};")
    _run([*base, "-d", DB_NAME, "-c", "\n".join(statements)], "provision roles", env)


def pg_down(paths: Paths) -> bool:
    if not _pg_running(paths):
        return False
    _run(
        [
            *_as_pg_user(),
            str(pg_bin() / "pg_ctl"),
            "stop",
            "-D",
            str(paths.pg_data),
            "-m",
            "fast",
            "-w",
        ],
        "pg_ctl stop",
    )
    return True


# ------------------------------------------------------------------------------------ commands


def service_database_url(admin_url: str, service: str) -> str:
    """The per-service role's URL on the same server and database as `admin_url`."""
    rest = admin_url.split("@", 1)[1]
    return f"postgresql://{service}:{service}@{rest}"


def env_lines(
    kafka: str,
    database: str,
    *,
    local_pg: bool,
    issuer: str | None = None,
    local_issuer: bool = False,
    kafka_passwords: dict[str, str] | None = None,
) -> list[str]:
    """The `.local/apl.env` lines. `local_issuer`: `issuer` is the Keycloak started here, so the
    dev realm's client secrets (notifications, the web application) go along (never for a given
    issuer). `kafka_passwords`: `kafka` is the broker started here, so its security settings and
    principals go along, the admin's and each service's own (never for a given broker)."""
    lines = [f"APL_KAFKA_BOOTSTRAP={kafka}"]
    if kafka_passwords is not None:
        lines += [
            "APL_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
            f"APL_KAFKA_SASL_MECHANISM={KAFKA_MECHANISM}",
            f"APL_KAFKA_ADMIN_USERNAME={KAFKA_ADMIN}",
            f"APL_KAFKA_ADMIN_PASSWORD={kafka_passwords[KAFKA_ADMIN]}",
        ]
        for s in SERVICES:
            lines.append(f"APL_{s.upper()}_KAFKA_USERNAME={s}")
            lines.append(f"APL_{s.upper()}_KAFKA_PASSWORD={kafka_passwords[s]}")
    lines.append(f"APL_DATABASE_URL={database}")
    if local_pg:
        lines += [
            f"APL_{s.upper()}_DATABASE_URL={service_database_url(database, s)}" for s in SERVICES
        ]
    if issuer:
        lines.append(f"APL_AUTH_ISSUER={issuer}")
        if local_issuer:
            lines.append(f"APL_NOTIFICATIONS_CLIENT_SECRET={DEV_NOTIFICATIONS_SECRET}")
            lines.append(f"APL_WEB_CLIENT_SECRET={DEV_WEB_SECRET}")
    return lines


@contextlib.contextmanager
def _exclusive(paths: Paths) -> Iterator[None]:
    """One `up` at a time on this checkout (test sessions side by side call it together)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with (paths.state / "infra.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(paths: Paths) -> list[str]:
    from devtools import keycloak

    given_kafka = os.environ.get("APL_KAFKA_BOOTSTRAP")
    given_db = os.environ.get("APL_DATABASE_URL")
    given_issuer = os.environ.get("APL_AUTH_ISSUER")
    with _exclusive(paths):
        ports = _load_ports(paths)
        try:
            passwords: dict[str, str] | None = None
            if given_kafka:
                _say(f"kafka: using APL_KAFKA_BOOTSTRAP={given_kafka} (nothing started)")
                kafka = given_kafka
            else:
                admin = kafka_up(paths, ports)
                kafka, passwords = admin.bootstrap, kafka_passwords(paths)
                created = create_topics(admin)
                if created:
                    _say(f"kafka: created {len(created)} topics (12 partitions each) and ACLs")
            if given_db:
                _say("postgres: using APL_DATABASE_URL (nothing started)")
                database = given_db
            else:
                database = pg_up(paths, ports)
            if given_issuer:
                _say(f"keycloak: using APL_AUTH_ISSUER={given_issuer} (nothing started)")
                issuer = given_issuer
            else:
                issuer = keycloak.keycloak_up(paths, ports)
        finally:
            _save_ports(paths, ports)
        lines = env_lines(
            kafka,
            database,
            local_pg=not given_db,
            issuer=issuer,
            local_issuer=not given_issuer,
            kafka_passwords=passwords,
        )
        if not (given_kafka and given_db and given_issuer):
            paths.env_file.parent.mkdir(parents=True, exist_ok=True)
            _write_private(  # local passwords in it
                paths.env_file,
                "# Written by `apl infra up`; read by the services and tests.\n"
                + "\n".join(lines)
                + "\n",
            )
    return lines


def down(paths: Paths) -> None:
    from devtools import keycloak

    stopped_kafka = _stop_pid(paths.kafka_pid, "kafka")
    _say("kafka: stopped" if stopped_kafka else "kafka: was not running (started by us)")
    stopped_pg = pg_down(paths) if (paths.pg_data / "PG_VERSION").exists() else False
    _say("postgres: stopped" if stopped_pg else "postgres: was not running (started by us)")
    stopped_keycloak = keycloak.keycloak_down(paths)
    _say("keycloak: stopped" if stopped_keycloak else "keycloak: was not running (started by us)")


def status(paths: Paths) -> int:
    from devtools import keycloak

    ports = _load_ports(paths)
    ok = True
    pid = _alive(paths.kafka_pid)
    kport = ports.get("kafka")
    if os.environ.get("APL_KAFKA_BOOTSTRAP"):
        print(f"kafka: external at {os.environ['APL_KAFKA_BOOTSTRAP']}")
    elif pid and kport and answers(kport):
        print(f"kafka: running (pid {pid}) at 127.0.0.1:{kport}; log {paths.kafka_log}")
    else:
        ok = False
        print("kafka: not running" + (f" (stale pid {pid})" if pid else ""))
    pport = ports.get("postgres")
    if os.environ.get("APL_DATABASE_URL"):
        print("postgres: external (APL_DATABASE_URL)")
    elif (paths.pg_data / "PG_VERSION").exists() and _pg_running(paths):
        print(f"postgres: running at 127.0.0.1:{pport}; data {paths.pg_data}")
    else:
        ok = False
        print("postgres: not running")
    if os.environ.get("APL_AUTH_ISSUER"):
        print(f"keycloak: external issuer {os.environ['APL_AUTH_ISSUER']}")
    else:
        line = keycloak.keycloak_status(paths, ports)
        ok = ok and line is not None
        print(line or "keycloak: not running")
    return 0 if ok else 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="apl infra", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    paths = Paths(project_root())
    try:
        if args.action == "up":
            for line in up(paths):
                print(line)
            return 0
        if args.action == "down":
            down(paths)
            return 0
        if args.action == "status":
            return status(paths)
        if not paths.env_file.exists():
            print(f"apl infra: no {paths.env_file} yet; run 'apl infra up'", file=sys.stderr)
            return 1
        for line in paths.env_file.read_text().splitlines():
            if line and not line.startswith("#"):
                print(line)
        return 0
    except InfraError as exc:
        print(f"apl infra {args.action}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
