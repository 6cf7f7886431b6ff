"""The Go programs the deploy tests drive, built once per test session (and worker) from
`deploy/<name>` with the machine's Go: `compose-check` (compose-go, the loader behind `docker
compose`) and `rules-check` (Prometheus's own rule-file checker, as `promtool check rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def go_tool(name: str, folder: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail(f"Go is needed to build deploy/{name}")
    binary = folder / name
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ROOT / "deploy" / name,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


@pytest.fixture(scope="session")
def compose_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return go_tool("compose-check", tmp_path_factory.mktemp("bin"))


@pytest.fixture(scope="session")
def rules_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return go_tool("rules-check", tmp_path_factory.mktemp("bin"))
