"""The compose file's Kafka, rehearsed without Docker: `deploy/kafka/start.sh` and
`deploy/kafka/users.sh` run as they would in the `apache/kafka` image, with the image's
`/opt/kafka/bin` tools stood in for by the same classes from the jars `apl infra up` runs
(`kafka-storage.sh`: StorageTool, `kafka-server-start.sh`: kafka.Kafka, `kafka-configs.sh`:
ConfigCommand) and the secrets in files, as compose mounts them.

What must hold: a fresh volume is formatted with the admin; the services' users are made by
`users.sh`; every principal signs in with its password and no other; `ensure_topics` (what
`apl init` runs) gives each service its ACLs, which the broker enforces; a restart keeps the
storage and its users, and a changed secret takes effect at the next `users.sh`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from devtools import localinfra
from devtools.ports import answers, free_port
from shared.contracts.topics import Topics
from shared.kafka import delete_topics, ensure_topics
from shared.kafka_client import KafkaConnection

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "kafka"
TOOLS = {
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-server-start.sh": "kafka.Kafka",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
}
SERVICES = localinfra.SERVICES
BASH = shutil.which("bash") or "/bin/bash"


class Rehearsal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "kafka"
        self.secrets = folder / "secrets"
        self.data = folder / "data"
        self.port = free_port()
        self.controller = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        libs = localinfra.kafka_libs(localinfra.Paths(ROOT))
        (self.home / "bin").mkdir(parents=True)
        log4j = ROOT / "deploy" / "local" / "log4j2.properties"
        for script, main in TOOLS.items():
            tool = self.home / "bin" / script
            tool.write_text(
                "#!/usr/bin/env bash\n"
                f"exec java -Xmx512m -Dlog4j2.configurationFile={log4j} "
                f'-Dkafka.logs.dir={folder / "logs"} -cp "{libs}/*" {main} "$@"\n'
            )
            tool.chmod(0o755)
        self.secrets.mkdir()
        for name in ("kafka_admin", "kafka_controller", *(f"{s}_kafka" for s in SERVICES)):
            self.set_secret(name, secrets.token_urlsafe(24))

    def set_secret(self, name: str, value: str) -> None:
        (self.secrets / f"{name}_password").write_text(value + "\n")

    def secret(self, name: str) -> str:
        return (self.secrets / f"{name}_password").read_text().strip()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_HOME": str(self.home),
            "APL_SECRETS_DIR": str(self.secrets),
            "APL_KAFKA_DATA": str(self.data),
            "APL_KAFKA_PORT": str(self.port),
            "APL_KAFKA_CONTROLLER_PORT": str(self.controller),
            "APL_KAFKA_ADVERTISED": f"127.0.0.1:{self.port}",
            "APL_KAFKA_CONFIG_DIR": str(self.folder / "conf"),
            "APL_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.port}",
            "CLUSTER_ID": "Ka9x0rT3Q0W5pS6nXb4m1A",
        }

    def _spawn(self) -> subprocess.Popen[bytes]:
        with (self.folder / "kafka.out").open("ab") as out:
            return subprocess.Popen(
                [BASH, str(SCRIPTS / "start.sh")],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        """`start.sh` as the container's command, until the admin signs in."""
        self.proc = self._spawn()
        deadline = time.monotonic() + 120
        while not (answers(self.port) and await _signs_in(self.admin)):
            assert self.proc.poll() is None, (self.folder / "kafka.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the broker did not start"
            await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def users(self) -> str:
        result = subprocess.run(
            [BASH, str(SCRIPTS / "users.sh")],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    @property
    def admin(self) -> KafkaConnection:
        base = KafkaConnection(f"127.0.0.1:{self.port}")
        return base.as_user("admin", self.secret("kafka_admin"))

    def service(self, name: str, password: str | None = None) -> KafkaConnection:
        return self.admin.as_user(name, password or self.secret(f"{name}_kafka"))


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    run = Rehearsal(tmp_path)
    try:
        yield run
    finally:
        run.stop()


async def _signs_in(kafka: KafkaConnection) -> bool:
    admin = kafka.admin(request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except KafkaConnectionError:
        return False
    finally:
        await admin.close()


async def _write(kafka: KafkaConnection, topic: str) -> None:
    producer = kafka.producer(enable_idempotence=True, acks="all", request_timeout_ms=15_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"SE-AB")
    finally:
        await producer.stop()


async def test_the_compose_kafka_authenticates_authorises_and_keeps_its_users(
    rehearsal: Rehearsal,
) -> None:
    await rehearsal.start()
    assert (rehearsal.data / "meta.properties").exists()
    assert await _signs_in(rehearsal.admin)
    assert not await _signs_in(rehearsal.service("matching")), "no service user before users.sh"
    assert "Completed updating config for user matching" in rehearsal.users()
    for name in SERVICES:
        assert await _signs_in(rehearsal.service(name)), name
    assert not await _signs_in(rehearsal.service("matching", "not-its-password"))
    assert not await _signs_in(
        KafkaConnection(rehearsal.admin.bootstrap, security_protocol="PLAINTEXT")
    )

    topics = Topics("rehearsed.")
    await ensure_topics(rehearsal.admin, topics)
    await _write(rehearsal.service("placements"), topics.placements)
    with pytest.raises(TopicAuthorizationFailedError):
        await _write(rehearsal.service("matching"), topics.placements)

    # a restart keeps the storage and its users; a changed secret takes effect at users.sh
    rehearsal.stop()
    old = rehearsal.secret("matching_kafka")
    rehearsal.set_secret("matching_kafka", secrets.token_urlsafe(24))
    await rehearsal.start()
    assert await _signs_in(rehearsal.service("matching", old))
    rehearsal.users()
    assert await _signs_in(rehearsal.service("matching"))
    assert not await _signs_in(rehearsal.service("matching", old))
    await _write(rehearsal.service("placements"), topics.placements)  # its ACLs survived
    await delete_topics(rehearsal.admin, topics)
