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
- `apl infra up --brokers 3`: Kafka as three combined broker+controller nodes (a KRaft quorum of
  all three, `KafkaCluster`) in `.local/kafka-cluster` instead of the single node, with the same
  SASL users (passwords of its own, in its `users.json`) and ACLs, default replication factor 3
  and `min.insync.replicas=2` (Kafka's own topics too), the contract's topics with 3 replicas;
  its settings go to `.local/kafka-cluster/apl.env` (`APL_ENV_FILE` selects them), so the single
  node and `.local/apl.env`, which the test suite uses, are never disturbed. `down` stops both,
  `status` shows both. Tests make clusters of their own (`KafkaCluster.temporary`, free ports)
  and kill, stop and start single nodes of them.
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
from typing import TYPE_CHECKING, cast

from devtools.ports import answers, free_port, port_free
from shared.kafka_client import (
    DEFAULT_MECHANISM,
    DEFAULT_PROTOCOL,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)

if TYPE_CHECKING:
    from shared.contracts.topics import Topics

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
    def kafka_cluster(self) -> Path:
        """`apl infra up --brokers 3`'s nodes, apart from the single node's `kafka`."""
        return self.state / "kafka-cluster"

    @property
    def kafka_cluster_env(self) -> Path:
        """The env file of `apl infra up --brokers 3` (`APL_ENV_FILE` names it to use it)."""
        return self.kafka_cluster / "apl.env"

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
    return _passwords_in(paths.kafka_users)


def _passwords_in(path: Path) -> dict[str, str]:
    """The passwords kept in `path` (each SCRAM user's and the controller's), generated there
    once, readable by this user only."""
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        known = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
    wanted = (*KAFKA_USERS, KAFKA_CONTROLLER)
    if all(known.get(user) for user in wanted):
        return known
    for user in wanted:
        known.setdefault(user, secrets.token_urlsafe(24))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, json.dumps(known, indent=2) + "\n")
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
    return _node_properties(
        header="# Written by `apl infra up`: one combined broker+controller in KRaft mode.",
        node_id=1,
        voters=f"1@127.0.0.1:{controller}",
        port=port,
        controller=controller,
        data=paths.kafka / "data",
        passwords=passwords,
    )


def _node_properties(
    *,
    header: str,
    node_id: int,
    voters: str,
    port: int,
    controller: int,
    data: Path,
    passwords: dict[str, str],
    replication: int = 1,
    min_insync: int = 1,
) -> str:
    """A combined broker+controller's server.properties: SASL/SCRAM-SHA-512 for clients (and
    between brokers, as the admin), SASL/PLAIN on the controllers' listener, ACLs enforced.
    `replication` and `min_insync` apply to the topics created without a factor and to Kafka's
    own topics (a cluster of several nodes); 1 and 1 for the single node."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    cluster = (
        [
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_insync}",
            "unclean.leader.election.enable=false",
        ]
        if replication > 1
        else []
    )
    return "\n".join(
        [
            header,
            "# Clients: SASL/SCRAM-SHA-512 on CLIENT; KRaft: SASL/PLAIN on CONTROLLER (loopback).",
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
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
            f"log.dirs={data}",
            "num.partitions=12",
            *cluster,
            "auto.create.topics.enable=false",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=12",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_insync}",
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_insync}",
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
    return _java_cmd(paths.root, paths.kafka / "logs", libs, main, *args)


def _java_cmd(
    root: Path, logs: Path, libs: Path, main: str, *args: str, heap: str | None = None
) -> list[str]:
    """A Kafka tool or broker (`main`) on the cached jars, logging into `logs`."""
    return [
        _java(),
        "-Xms256m",
        heap or os.environ.get("APL_KAFKA_HEAP", "-Xmx1g"),
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={root / 'deploy' / 'local' / 'log4j2.properties'}",
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


def create_topics(kafka: KafkaConnection, prefix: str = "", *, replication: int = 1) -> list[str]:
    """The contract's topics under `prefix` and the services' ACLs on them (`replication`
    replicas of each partition: 1 on the single node)."""
    from shared.contracts.topics import Topics

    return asyncio.run(ensure_replicated_topics(kafka, Topics(prefix), replication=replication))


async def ensure_replicated_topics(
    kafka: KafkaConnection,
    topics: Topics,
    *,
    replication: int = 1,
    usernames: Mapping[str, str] | None = None,
) -> list[str]:
    """`shared.kafka.ensure_topics` (the contract's topics, their `.dlt` twins and the services'
    ACLs) with `replication` replicas of each partition. Returns the topics created now. `kafka`
    is the admin principal."""
    from shared.kafka import ensure_topics

    return await ensure_topics(kafka, topics, replication=replication, usernames=usernames)


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


# ---------------------------------------------------------------------------- kafka cluster

CLUSTER_NODES = 3
CLUSTER_PREFERRED = ((19192, 19193), (19292, 19293), (19392, 19393))
"""`apl infra up --brokers 3`'s preferred ports: (client, controller) of each node."""
CLUSTER_HEAP = "-Xmx512m"
"""Each node's heap (`APL_KAFKA_CLUSTER_HEAP`): three JVMs share the machine."""


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller of a `KafkaCluster`, in a folder of its own."""

    node_id: int
    folder: Path
    port: int
    controller: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.folder / "server.properties"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.folder / "kafka.pid"

    @property
    def formatted(self) -> Path:
        """Written once the storage is formatted with the cluster's id and SCRAM users."""
        return self.folder / "formatted-with-users"


class KafkaCluster:
    """Several combined broker+controller nodes in KRaft mode (a static quorum of all of them)
    on 127.0.0.1, with the single node's security: SASL/SCRAM-SHA-512 users made when the
    storage is formatted (passwords generated once into `<folder>/users.json`), SASL/PLAIN on
    the controllers' listener, ACLs enforced. Topics get `replication` replicas (3 with three
    nodes) and `min.insync.replicas=2`, Kafka's own topics too: a producer with `acks=all`
    keeps writing while one node is down, and a node's loss leaves the quorum.

    `apl infra up --brokers 3` runs one in `.local/kafka-cluster`; tests make their own
    (`KafkaCluster.temporary(folder)`: free ports) and kill, stop and start single nodes.
    The methods block (they wait for the nodes): call them from a thread in async code."""

    def __init__(
        self,
        root: Path,
        folder: Path,
        ports: Sequence[tuple[int, int]],
        *,
        heap: str | None = None,
    ) -> None:
        if not ports:
            raise ValueError("a cluster needs at least one node")
        self.root = root
        self.folder = folder
        self.nodes = [
            KafkaNode(i, folder / f"node-{i}", port, controller)
            for i, (port, controller) in enumerate(ports, start=1)
        ]
        self.heap = heap or os.environ.get("APL_KAFKA_CLUSTER_HEAP", CLUSTER_HEAP)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def temporary(
        cls, folder: Path, nodes: int = CLUSTER_NODES, *, root: Path | None = None
    ) -> KafkaCluster:
        """A cluster of `nodes` nodes in `folder` (a temporary one) on free ports."""
        chosen: list[int] = []
        while len(chosen) < 2 * nodes:
            port = free_port()
            if port not in chosen:
                chosen.append(port)
        pairs = [(chosen[2 * i], chosen[2 * i + 1]) for i in range(nodes)]
        return cls(root or project_root(), folder, pairs)

    @classmethod
    def local(cls, paths: Paths, ports: dict[str, int]) -> KafkaCluster:
        """`apl infra up --brokers 3`'s cluster in `.local/kafka-cluster`, on its remembered
        ports (else the preferred ones if free, else free ones; `ports` is updated)."""
        folder = paths.kafka_cluster
        pairs = []
        for i, (client, controller) in enumerate(CLUSTER_PREFERRED, start=1):
            running = _alive(folder / f"node-{i}" / "kafka.pid") is not None
            pairs.append(
                (
                    _choose(ports, f"kafka_cluster_{i}", client, running=running),
                    _choose(ports, f"kafka_cluster_controller_{i}", controller, running=running),
                )
            )
        return cls(paths.root, folder, pairs)

    # ------------------------------------------------------------------ what it is

    @property
    def replication(self) -> int:
        return min(3, len(self.nodes))

    @property
    def min_insync(self) -> int:
        return 2 if self.replication >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def passwords(self) -> dict[str, str]:
        return _passwords_in(self.folder / "users.json")

    @property
    def admin(self) -> KafkaConnection:
        return admin_connection(self.bootstrap, self.passwords)

    @property
    def services(self) -> dict[str, KafkaConnection]:
        passwords = self.passwords
        base = KafkaConnection(self.bootstrap)
        return {s: base.as_user(s, passwords[s]) for s in SERVICES}

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in {self.folder}")

    def pid(self, node_id: int) -> int | None:
        """The node's process id while it runs."""
        proc = self._procs.get(node_id)
        if proc is not None and proc.poll() is not None:
            del self._procs[node_id]  # reaped
        return _alive(self.node(node_id).pid_file)

    def running(self) -> list[int]:
        """The nodes whose process runs."""
        return [n.node_id for n in self.nodes if self.pid(n.node_id) is not None]

    def _properties(self, node: KafkaNode, passwords: dict[str, str]) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller}" for n in self.nodes)
        return _node_properties(
            header=(
                f"# Written by `apl infra`: node {node.node_id} of {len(self.nodes)}, a combined "
                "broker+controller in KRaft mode."
            ),
            node_id=node.node_id,
            voters=voters,
            port=node.port,
            controller=node.controller,
            data=node.data,
            passwords=passwords,
            replication=self.replication,
            min_insync=self.min_insync,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, wait: float = WAIT_SECONDS) -> KafkaConnection:
        """Format what is not formatted, start every node that does not run, and wait until
        every node is a registered broker; returns the admin's connection."""
        for node in self.nodes:
            self._launch(node)
        self.wait_ready([n.node_id for n in self.nodes], wait)
        return self.admin

    def start_node(self, node_id: int, wait: float = WAIT_SECONDS) -> None:
        """Start one node (unless it runs) and wait until the cluster has it as a broker again."""
        self._launch(self.node(node_id))
        self.wait_ready([node_id], wait)

    def kill_node(self, node_id: int) -> int:
        """SIGKILL one node (no shutdown of any kind); returns the pid it had. Raises if it
        was not running."""
        node = self.node(node_id)
        pid = self.pid(node_id)
        if pid is None:
            raise InfraError(f"kafka node {node_id}: not running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self._reap(node_id, 10.0)
        node.pid_file.unlink(missing_ok=True)
        return pid

    def stop_node(self, node_id: int, timeout: float = 30.0) -> bool:
        """Stop one node (SIGTERM: a controlled shutdown); False if it was not running."""
        stopped = _stop_pid(self.node(node_id).pid_file, f"kafka node {node_id}", timeout)
        self._reap(node_id, 1.0)
        return stopped

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop every node together (SIGTERM, then SIGKILL for what still runs after
        `timeout`: the last ones cannot hand their partitions to anyone); returns the nodes
        that were running."""
        pids = {n.node_id: pid for n in self.nodes if (pid := self.pid(n.node_id)) is not None}
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self.pid(i) is not None for i in pids):
            time.sleep(0.3)
        for node_id in pids:
            if (pid := self.pid(node_id)) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self._reap(node_id, 10.0)
            self.node(node_id).pid_file.unlink(missing_ok=True)
        return sorted(pids)

    def _reap(self, node_id: int, timeout: float) -> None:
        proc = self._procs.pop(node_id, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(self.node(node_id).pid_file) is not None:
            time.sleep(0.1)

    def _launch(self, node: KafkaNode) -> None:
        if self.pid(node.node_id) is not None:
            return
        paths = Paths(self.root)
        libs = kafka_libs(paths)
        passwords = self.passwords
        node.logs.mkdir(parents=True, exist_ok=True)
        _write_private(node.config, self._properties(node, passwords))
        self._format(node, libs, passwords)
        with node.stdout.open("ab") as out:
            proc = subprocess.Popen(
                _java_cmd(
                    self.root, node.logs, libs, "kafka.Kafka", str(node.config), heap=self.heap
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=node.folder,
            )
        self._procs[node.node_id] = proc
        node.pid_file.write_text(f"{proc.pid}\n")

    def _cluster_id(self) -> str:
        path = self.folder / "cluster.id"
        with contextlib.suppress(OSError):
            known = path.read_text().strip()
            if known:
                return known
        self.folder.mkdir(parents=True, exist_ok=True)
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(made + "\n")
        return made

    def _format(self, node: KafkaNode, libs: Path, passwords: dict[str, str]) -> None:
        fingerprint = f"{self._cluster_id()} {_users_fingerprint(passwords)}"
        if (node.data / "meta.properties").exists():
            if _text(node.formatted).strip() == fingerprint:
                return
            _say(
                f"kafka node {node.node_id}: {node.data} was formatted otherwise; formatting again"
            )
            shutil.rmtree(node.data)
        node.formatted.unlink(missing_ok=True)
        scram = [
            arg
            for user in KAFKA_USERS
            for arg in (
                "--add-scram",
                f"{KAFKA_MECHANISM}=[name={user},password={passwords[user]}]",
            )
        ]
        result = subprocess.run(
            _java_cmd(
                self.root,
                node.logs,
                libs,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self._cluster_id(),
                "-c",
                str(node.config),
                *scram,
                heap=self.heap,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(
                f"kafka node {node.node_id}: formatting storage failed:\n"
                f"{result.stdout}{result.stderr}"
            )
        node.formatted.write_text(fingerprint + "\n")

    # ------------------------------------------------------------------ readiness

    def wait_ready(self, node_ids: Sequence[int], wait: float = WAIT_SECONDS) -> None:
        """Until each of `node_ids` accepts connections and the cluster's metadata lists it as
        a broker; raises with the node's log when one exits or `wait` runs out."""
        deadline = time.monotonic() + wait
        pending = set(node_ids)
        while True:
            for node_id in sorted(pending):
                node = self.node(node_id)
                proc = self._procs.get(node_id)
                if proc is not None and proc.poll() is not None:
                    raise InfraError(
                        f"kafka node {node_id}: exited with code {proc.returncode}; last lines "
                        f"of {node.log}:\n{tail(node.log)}\n{tail(node.stdout, 10)}"
                    )
            ready = {i for i in pending if answers(self.node(i).port)}
            if ready and ready == pending and pending <= self.brokers(ready):
                return
            if time.monotonic() > deadline:
                lagging = sorted(pending)
                logs = "\n".join(f"{self.node(i).log}:\n{tail(self.node(i).log)}" for i in lagging)
                raise InfraError(
                    f"kafka nodes {lagging}: not ready after {wait:.0f} s; last lines of\n{logs}"
                )
            time.sleep(0.3)

    def brokers(self, through: set[int] | None = None) -> set[int]:
        """The node ids the cluster's metadata lists as brokers now (asked of `through`, else of
        any node); empty when no node answers."""
        addresses = [n.address for n in self.nodes if through is None or n.node_id in through]
        admin = admin_connection(",".join(addresses), self.passwords)

        async def probe() -> set[int]:
            client = admin.admin(request_timeout_ms=3000)
            try:
                await client.start()
                described = await client.describe_cluster()
                return {int(b["node_id"]) for b in described["brokers"]}
            except Exception:
                return set()
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

        return asyncio.run(probe())

    def env_lines(self, database: str, *, issuer: str | None, local_issuer: bool) -> list[str]:
        return env_lines(
            self.bootstrap,
            database,
            local_pg=True,
            issuer=issuer,
            local_issuer=local_issuer,
            kafka_passwords=self.passwords,
        )

    def status(self) -> str:
        """One line: which nodes run, where, and their logs."""
        up_nodes = [n for n in self.nodes if self.pid(n.node_id) and answers(n.port)]
        return (
            f"kafka cluster: {len(up_nodes)} of {len(self.nodes)} nodes running at "
            f"{self.bootstrap}; logs {self.folder}/node-N/logs/server.log"
        )


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
    pg_provision(bindir, port)
    return admin_url


def pg_provision(bindir: Path, port: int, database: str = DB_NAME) -> None:
    """Database `apl` (or `database`), and a role and schema per service in it (idempotent;
    the roles are the server's, made once)."""
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
    if not database.isidentifier():
        raise InfraError(f"postgres: {database!r} is not a plain database name")
    exists = _run(
        # psql -c takes no bind parameters; the name is an identifier (checked above)
        [*base, "-d", "postgres", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],  # noqa: S608
        "psql",
        env,
    ).strip()
    if exists != "1":
        _run([*base, "-d", "postgres", "-c", f"CREATE DATABASE {database}"], "create database", env)
    statements = []
    for service in SERVICES:
        statements.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{service}') THEN "
            f"CREATE ROLE {service} LOGIN PASSWORD '{service}'; END IF; END $$;"
        )
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {service} AUTHORIZATION {service};")
        statements.append(f"GRANT CONNECT ON DATABASE {database} TO {service};")
    _run([*base, "-d", database, "-c", "\n".join(statements)], "provision roles", env)


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


def cluster_up(paths: Paths, ports: dict[str, int]) -> KafkaCluster:
    """Start `apl infra up --brokers 3`'s cluster unless it runs, with the contract's topics
    (three replicas each) and the services' ACLs."""
    cluster = KafkaCluster.local(paths, ports)
    if sorted(cluster.running()) == [n.node_id for n in cluster.nodes] and cluster.brokers():
        _say(f"kafka cluster: already running at {cluster.bootstrap}")
    else:
        _say(f"kafka cluster: starting {len(cluster.nodes)} nodes at {cluster.bootstrap} ...")
        cluster.start()
        _say(f"kafka cluster: {len(cluster.nodes)} nodes ready in {cluster.folder}")
    created = create_topics(cluster.admin, replication=cluster.replication)
    if created:
        _say(
            f"kafka cluster: created {len(created)} topics (12 partitions, "
            f"{cluster.replication} replicas each) and ACLs"
        )
    return cluster


def up(paths: Paths, brokers: int = 1) -> list[str]:
    """Start what is missing; return the env lines. `brokers` 3: Kafka is the three-node cluster
    of `.local/kafka-cluster` (its lines go to its own env file), not the single node."""
    from devtools import keycloak

    given_kafka = os.environ.get("APL_KAFKA_BOOTSTRAP")
    given_db = os.environ.get("APL_DATABASE_URL")
    given_issuer = os.environ.get("APL_AUTH_ISSUER")
    if brokers not in (1, CLUSTER_NODES):
        raise InfraError(f"--brokers: 1 (the single node) or {CLUSTER_NODES}, not {brokers}")
    if brokers > 1 and given_kafka:
        raise InfraError(
            f"--brokers {brokers} starts a local cluster, but APL_KAFKA_BOOTSTRAP names one"
        )
    env_file = paths.env_file if brokers == 1 else paths.kafka_cluster_env
    with _exclusive(paths):
        ports = _load_ports(paths)
        try:
            passwords: dict[str, str] | None = None
            if given_kafka:
                _say(f"kafka: using APL_KAFKA_BOOTSTRAP={given_kafka} (nothing started)")
                kafka = given_kafka
            elif brokers > 1:
                cluster = cluster_up(paths, ports)
                kafka, passwords = cluster.bootstrap, cluster.passwords
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
            env_file.parent.mkdir(parents=True, exist_ok=True)
            _write_private(  # local passwords in it
                env_file,
                "# Written by `apl infra up`; read by the services and tests.\n"
                + "\n".join(lines)
                + "\n",
            )
        if brokers > 1:
            _say(f"kafka cluster: settings in {env_file} (APL_ENV_FILE={env_file} selects them)")
    return lines


def down(paths: Paths) -> None:
    from devtools import keycloak

    stopped_kafka = _stop_pid(paths.kafka_pid, "kafka")
    _say("kafka: stopped" if stopped_kafka else "kafka: was not running (started by us)")
    if paths.kafka_cluster.exists():
        stopped = KafkaCluster.local(paths, _load_ports(paths)).stop()
        _say(
            f"kafka cluster: stopped nodes {', '.join(map(str, stopped))}"
            if stopped
            else "kafka cluster: was not running (started by us)"
        )
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
    if paths.kafka_cluster.exists() and not os.environ.get("APL_KAFKA_BOOTSTRAP"):
        cluster = KafkaCluster.local(paths, dict(ports))
        print(cluster.status())
        # either Kafka will do: the single node, or the whole cluster of `up --brokers 3`
        ok = ok or len(cluster.running()) == len(cluster.nodes)
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
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, CLUSTER_NODES),
        default=1,
        help=(
            "up, env: 3 runs Kafka as a three-node KRaft cluster (replication factor 3, "
            "min.insync.replicas=2) in .local/kafka-cluster instead of the single node; its "
            "settings go to .local/kafka-cluster/apl.env. down and status cover both."
        ),
    )
    args = parser.parse_args(argv)
    paths = Paths(project_root())
    try:
        if args.action == "up":
            for line in up(paths, args.brokers):
                print(line)
            return 0
        if args.action == "down":
            down(paths)
            return 0
        if args.action == "status":
            return status(paths)
        env_file = paths.env_file if args.brokers == 1 else paths.kafka_cluster_env
        if not env_file.exists():
            command = "apl infra up" + ("" if args.brokers == 1 else f" --brokers {args.brokers}")
            print(f"apl infra: no {env_file} yet; run '{command}'", file=sys.stderr)
            return 1
        for line in env_file.read_text().splitlines():
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
