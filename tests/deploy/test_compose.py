"""The compose files, loaded by compose-go (the library behind `docker compose`), and the image.

No Docker engine is needed: `deploy/compose-check` is a small Go program that loads the files the
way `docker compose` does (schema, interpolation, references, the override merged over the base)
and prints what it found. `docker-compose.yml` is what operators run; `docker-compose.override.yml`
adds the local mail catcher.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"placements", "matching", "notifications"}
SCALED = {"matching", "notifications"}
INFRA = {"kafka", "kafka-users", "postgres", "keycloak", "prometheus", "grafana"}


def _load(
    binary: Path, folder: Path, compose_text: str, override: str | None = None
) -> subprocess.CompletedProcess[str]:
    (folder / "docker-compose.yml").write_text(compose_text)
    (folder / ".env").write_text((ROOT / ".env.example").read_text())
    files = [str(folder / "docker-compose.yml")]
    if override is not None:
        (folder / "docker-compose.override.yml").write_text(override)
        files.append(str(folder / "docker-compose.override.yml"))
    return subprocess.run(
        [str(binary), "-env-file", str(folder / ".env"), *files],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project(compose_check: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The base file alone: what production runs."""
    folder = tmp_path_factory.mktemp("compose")
    result = _load(compose_check, folder, (ROOT / "docker-compose.yml").read_text())
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def local(compose_check: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The base file with the local override merged over it: what `docker compose up` runs."""
    folder = tmp_path_factory.mktemp("compose-local")
    result = _load(
        compose_check,
        folder,
        (ROOT / "docker-compose.yml").read_text(),
        (ROOT / "docker-compose.override.yml").read_text(),
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def _services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in project["services"]}


def test_compose_file_loads_and_every_service_has_a_healthcheck(project: dict[str, Any]) -> None:
    services = _services(project)
    assert {"init", *INFRA, *APP_SERVICES} <= set(services)
    missing = [name for name, s in services.items() if not s["healthcheck"]]
    assert missing == []


def test_the_mail_catcher_is_only_in_the_local_override(
    project: dict[str, Any], local: dict[str, Any]
) -> None:
    base, merged = _services(project), _services(local)
    assert "mailpit" not in base
    assert not [k for k in base["notifications"]["environment"] if "SMTP" in k], (
        "the relay comes from .env, not the compose file"
    )
    assert "mailpit" not in base["notifications"]["depends_on"]
    assert merged["mailpit"]["published_ports"] == ["8025"]
    assert merged["mailpit"]["healthcheck"]
    assert merged["notifications"]["environment"]["APL_NOTIFICATIONS_SMTP_HOST"] == "mailpit"
    assert merged["notifications"]["depends_on"]["mailpit"] == "service_healthy"
    # the override adds; it takes nothing of the base away
    assert merged["notifications"]["depends_on"]["placements"] == "service_healthy"
    assert set(base) < set(merged)


def test_every_container_has_resource_limits_and_rotated_logs(local: dict[str, Any]) -> None:
    for name, service in _services(local).items():
        assert service["memory_limit_bytes"] > 0, name
        assert service["cpus_limit"] > 0, name
        assert service["logging_driver"] == "json-file", name
        assert service["logging_options"].get("max-size"), name
        assert int(service["logging_options"].get("max-file", "0")) >= 2, name


def test_each_service_connects_as_its_own_database_role(project: dict[str, Any]) -> None:
    services = _services(project)
    for name in APP_SERVICES:
        env = services[name]["environment"]
        urls = {k: v for k, v in env.items() if k.endswith("DATABASE_URL")}
        assert list(urls) == [f"APL_{name.upper()}_DATABASE_URL"], name
        assert urls[f"APL_{name.upper()}_DATABASE_URL"].startswith(f"postgresql://{name}:"), name
    init = services["init"]["environment"]
    for name in APP_SERVICES:
        assert init[f"APL_{name.upper()}_DATABASE_URL"].startswith(f"postgresql://{name}:")
    assert not [n for n, s in services.items() if "APL_DATABASE_URL" in s["environment"]]
    postgres = services["postgres"]
    assert {f"{n}_db_password" for n in APP_SERVICES} <= set(postgres["secrets"])
    assert any(v.endswith("init-roles.sh") for v in postgres["volumes"])
    script = (ROOT / "deploy" / "postgres" / "init-roles.sh").read_text()
    for name in APP_SERVICES:
        assert name in script
    assert "AUTHORIZATION" in script


def test_each_service_connects_to_kafka_as_its_own_principal(project: dict[str, Any]) -> None:
    services = _services(project)
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["APL_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
        assert env["APL_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["APL_KAFKA_INSTANCE_ID"] == "@hostname", name  # one per container
        assert env[f"APL_{name.upper()}_KAFKA_USERNAME"] == name
        secret = f"{name}_kafka_password"
        assert env[f"APL_{name.upper()}_KAFKA_PASSWORD_FILE"] == f"/run/secrets/{secret}"
        assert services[name]["secrets"] == [secret], "no other principal's password"
        # what the service reads (APL_*) names no other principal and no password inline
        read = [k for k in env if k.startswith("APL_") and "KAFKA" in k]
        assert sorted(read) == sorted(
            [
                "APL_KAFKA_BOOTSTRAP",
                "APL_KAFKA_INSTANCE_ID",  # "@hostname": static group membership
                "APL_KAFKA_SECURITY_PROTOCOL",
                "APL_KAFKA_SASL_MECHANISM",
                f"APL_{name.upper()}_KAFKA_USERNAME",
                f"APL_{name.upper()}_KAFKA_PASSWORD_FILE",
            ]
        ), name
    init = services["init"]
    assert init["environment"]["APL_KAFKA_ADMIN_USERNAME"] == "admin"
    assert init["environment"]["APL_KAFKA_ADMIN_PASSWORD_FILE"] == (
        "/run/secrets/kafka_admin_password"
    )
    assert init["secrets"] == ["kafka_admin_password"]
    users = services["kafka-users"]
    assert set(users["secrets"]) == {
        "kafka_admin_password",
        *(f"{n}_kafka_password" for n in APP_SERVICES),
    }
    script = (ROOT / "deploy" / "kafka" / "users.sh").read_text()
    assert all(name in script for name in APP_SERVICES)
    kafka = services["kafka"]
    assert set(kafka["secrets"]) == {"kafka_admin_password", "kafka_controller_password"}
    assert kafka["command"] == ["bash", "/opt/apl/start.sh"]
    assert any(v.endswith("/deploy/kafka") for v in kafka["volumes"])


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def test_compose_kafka_is_secured_as_the_local_broker() -> None:
    """deploy/kafka/start.sh (compose, testcontainers) and `apl infra up` (devtools/localinfra.py)
    write the same listeners, mechanisms and authorisation: no PLAINTEXT listener anywhere."""
    from devtools import localinfra

    paths = localinfra.Paths(ROOT)
    passwords = dict.fromkeys((*localinfra.KAFKA_USERS, localinfra.KAFKA_CONTROLLER), "x")
    local = _properties(localinfra._kafka_properties(paths, 9092, 9093, passwords))
    script = (ROOT / "deploy" / "kafka" / "start.sh").read_text()
    heredoc = script.split("<<PROPERTIES\n", 1)[1].split("\nPROPERTIES", 1)[0]
    compose = _properties(heredoc)
    security = [
        "listener.security.protocol.map",
        "controller.listener.names",
        "inter.broker.listener.name",
        "listener.name.client.sasl.enabled.mechanisms",
        "listener.name.controller.sasl.enabled.mechanisms",
        "sasl.mechanism.inter.broker.protocol",
        "sasl.mechanism.controller.protocol",
        "authorizer.class.name",
        "allow.everyone.if.no.acl.found",
        "super.users",
        "auto.create.topics.enable",
    ]
    assert {k: compose.get(k) for k in security} == {k: local.get(k) for k in security}
    assert local["allow.everyone.if.no.acl.found"] == "false"
    assert local["authorizer.class.name"].endswith("StandardAuthorizer")
    for props in (local, compose):
        protocols = props["listener.security.protocol.map"]
        assert "PLAINTEXT" not in protocols.replace("SASL_PLAINTEXT", "")
        assert "PLAINTEXT://" not in props["listeners"]
        assert "CONTROLLER://127.0.0.1:" in props["listeners"]  # loopback only
    assert "--add-scram" in script
    assert "name=admin" in script


def test_postgresql_is_the_same_major_version_as_local_development(
    project: dict[str, Any],
) -> None:
    from devtools import localinfra

    image = _services(project)["postgres"]["image"]
    name, _, tag = image.partition(":")
    assert name == "postgres"
    local_major = localinfra.pg_bin().parent.name  # /usr/lib/postgresql/<major>/bin
    assert tag.split("@")[0].split(".")[0].split("-")[0] == local_major == "15"


DIGEST = re.compile(r"^[^\s@]+:[^\s@]+@sha256:[0-9a-f]{64}$")


def test_every_pulled_image_is_pinned_by_tag_and_digest(local: dict[str, Any]) -> None:
    images = {s["name"]: s.get("image", "") for s in local["services"]}
    built = {
        name for name, image in images.items() if image == "apl-match:local"
    }  # deploy/Dockerfile
    assert built == APP_SERVICES | {"init"}
    pulled = {name: image for name, image in images.items() if name not in built}
    assert {"kafka", "postgres", "keycloak", "prometheus", "grafana", "mailpit"} <= set(pulled)
    assert {name: image for name, image in pulled.items() if not DIGEST.match(image)} == {}
    bases = [
        line.split()[1]
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert len(bases) == 2
    assert [base for base in bases if not DIGEST.match(base)] == []


def test_prometheus_and_grafana_mount_the_repository_configuration(
    project: dict[str, Any],
) -> None:
    services = _services(project)
    assert any(v.endswith("/deploy/prometheus") for v in services["prometheus"]["volumes"])
    grafana = services["grafana"]["volumes"]
    assert any(v.endswith("/deploy/grafana/provisioning") for v in grafana)
    assert any(v.endswith("/deploy/grafana/dashboards") for v in grafana)
    assert "volume:prometheus-data" in services["prometheus"]["volumes"]


def test_services_wait_for_healthy_dependencies(project: dict[str, Any]) -> None:
    services = _services(project)
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps.get("init") == "service_completed_successfully", name
        assert all(
            cond in {"service_healthy", "service_completed_successfully"} for cond in deps.values()
        ), name
    assert services["init"]["depends_on"] == {
        "kafka": "service_healthy",
        "kafka-users": "service_completed_successfully",
        "postgres": "service_healthy",
    }
    assert services["kafka-users"]["depends_on"] == {"kafka": "service_healthy"}


def test_scaled_services_publish_no_host_port(project: dict[str, Any]) -> None:
    services = _services(project)
    for name in SCALED:
        assert not services[name]["published_ports"], f"{name} could not be scaled"
    assert services["placements"]["published_ports"] == ["8000"]
    assert services["grafana"]["published_ports"] == ["3000"]
    assert services["prometheus"]["published_ports"] == ["9090"]


def test_named_volumes_and_secrets(project: dict[str, Any]) -> None:
    assert set(project["volumes"]) == {"kafka-data", "pg-data", "prometheus-data", "grafana-data"}
    services = _services(project)
    assert "postgres_password" in services["postgres"]["secrets"]
    assert "volume:pg-data" in services["postgres"]["volumes"]
    assert "volume:kafka-data" in services["kafka"]["volumes"]


def test_a_broken_compose_file_is_refused(compose_check: Path, tmp_path: Path) -> None:
    text = (ROOT / "docker-compose.yml").read_text().replace("healthcheck:", "healthchek:", 1)
    result = _load(compose_check, tmp_path, text)
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_env_example_names_every_required_variable() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", compose))
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert required <= defined
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_image_runs_as_non_root_and_installs_dependencies_before_source() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copy_lock = next(i for i, line in enumerate(lines) if line.startswith("COPY requirements"))
    install = next(i for i, line in enumerate(lines) if "pip install" in line and "lock" in line)
    copy_source = next(i for i, line in enumerate(lines) if line.startswith("COPY shared"))
    assert copy_lock < install < copy_source
    user = [line for line in lines if line.startswith("USER ")]
    assert user
    assert not user[-1].split()[1].startswith(("root", "0"))


def test_image_installs_hashed_dependencies_and_ships_no_dev_tools() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    install = next(line for line in lines if "pip install" in line and "lock" in line)
    assert "--require-hashes" in install.split()
    copied = [line.split()[1] for line in lines if line.startswith("COPY ")]
    assert not [src for src in copied if src.startswith(("devtools", "tests", "bench", "."))]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"devtools", "tests", "bench"} <= set(ignored)


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_requirement_is_pinned_with_hashes(lock: str) -> None:
    # A requirement starts at column 0; its `--hash` continuation lines follow, indented.
    entries = re.split(r"^(?=[^\s#])", (ROOT / lock).read_text(), flags=re.MULTILINE)[1:]
    assert entries
    unpinned = [e.split()[0] for e in entries if "==" not in e.split()[0]]
    unhashed = [e.split()[0] for e in entries if "--hash=sha256:" not in e]
    assert (unpinned, unhashed) == ([], [])
