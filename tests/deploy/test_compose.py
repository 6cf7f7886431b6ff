"""The compose file, loaded by compose-go (the library behind `docker compose`), and the image.

No Docker engine is needed: `deploy/compose-check` is a small Go program that loads the file the
way `docker compose` does (schema, interpolation, references) and prints what it found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"placements", "matching", "notifications"}
SCALED = {"matching", "notifications"}


@pytest.fixture(scope="module")
def compose_check() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build deploy/compose-check (the Compose loader)")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "apl-match"
    binary = cache / "compose-check"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ROOT / "deploy" / "compose-check",
        check=True,
        capture_output=True,
        timeout=600,
    )
    return binary


def _load(binary: Path, folder: Path, compose_text: str) -> subprocess.CompletedProcess[str]:
    (folder / "docker-compose.yml").write_text(compose_text)
    (folder / ".env").write_text((ROOT / ".env.example").read_text())
    return subprocess.run(
        [str(binary), "-env-file", str(folder / ".env"), str(folder / "docker-compose.yml")],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project(compose_check: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("compose")
    result = _load(compose_check, folder, (ROOT / "docker-compose.yml").read_text())
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def test_compose_file_loads_and_every_service_has_a_healthcheck(project: dict[str, Any]) -> None:
    services = {s["name"]: s for s in project["services"]}
    assert {"kafka", "postgres", "init", "mailpit", *APP_SERVICES} <= set(services)
    missing = [name for name, s in services.items() if not s["healthcheck"]]
    assert missing == []


def test_services_wait_for_healthy_dependencies(project: dict[str, Any]) -> None:
    services = {s["name"]: s for s in project["services"]}
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps.get("init") == "service_completed_successfully", name
        assert all(
            cond in {"service_healthy", "service_completed_successfully"} for cond in deps.values()
        ), name
    assert services["init"]["depends_on"] == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
    }


def test_scaled_services_publish_no_host_port(project: dict[str, Any]) -> None:
    services = {s["name"]: s for s in project["services"]}
    for name in SCALED:
        assert not services[name]["published_ports"], f"{name} could not be scaled"
    assert services["placements"]["published_ports"] == ["8000"]
    assert services["mailpit"]["published_ports"] == ["8025"]


def test_named_volumes_and_secrets(project: dict[str, Any]) -> None:
    assert set(project["volumes"]) == {"kafka-data", "pg-data"}
    services = {s["name"]: s for s in project["services"]}
    assert services["postgres"]["secrets"] == ["postgres_password"]
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
