"""The soak (`bench/soak.py`) at a tenth of the demo's size: 700 students in 13 regions, the
three services as processes, people answering while the rounds run; nothing may be lost.

It runs `python -m bench.soak --scale 0.1` as a process on the tests' Kafka, PostgreSQL and the
local Keycloak (the soak's people are accounts in its dev realm), and reads the figures it
writes with `--json`. Behaviour only: no time is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.infra import ROOT, SERVICES, Infra

pytestmark = pytest.mark.infra


def _environment(infra: Infra) -> dict[str, str]:
    """The soak's process on the tests' infrastructure: the admin's Kafka principal and each
    service's, the admin database URL and the issuer (`localinfra.up` then starts nothing)."""
    env = {
        **os.environ,
        **infra.kafka.environment(),
        "APL_DATABASE_URL": infra.database_url,
        "APL_AUTH_ISSUER": infra.auth_issuer,
    }
    for service in SERVICES:
        env.update(infra.kafka_env(service))
    return env


@pytest.mark.timeout(1800)
def test_a_small_soak_loses_nothing(infra: Infra, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--scale", "0.1", "--json", str(out)],
        cwd=ROOT,
        env=_environment(infra),
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert out.exists(), f"no figures; stderr:\n{done.stderr[-4000:]}\nstdout:\n{done.stdout}"
    figures = json.loads(out.read_text())
    report = done.stdout[-6000:]
    assert figures["verdict"] == {"lost": 0, "duplicated": 0, "violations": 0, "ok": True}, report
    assert done.returncode == 0, report
    assert "lost=0 duplicated=0 violations=0" in done.stdout

    # It did what a soak is for: every region, a round each and follow-ups, answers and notices.
    assert figures["students"] == 700
    assert figures["regions"] == 13
    kinds = {r["kind"] for r in figures["rounds"]}
    assert kinds == {"first", "second", "supplementary"}
    assert sum(r["kind"] == "first" for r in figures["rounds"]) == 13
    answers = figures["answers"]
    for answer in ("student accept 200", "student decline 200", "company accept 200"):
        assert answers.get(answer, 0) > 0, answers
    assert sum(figures["reranks"].values()) == figures["reranks"].get("200")
    notices = figures["notices"]
    assert notices["planned"] > 2 * 400  # a proposal tells two people; most are placed
    assert notices["at_sink"] == notices["distinct_at_sink"] == notices["planned"]
    assert notices["delivered_events"] == notices["planned"]
    assert figures["dead_letters"] == 0
    # every lost/duplicated/violation check ran and found nothing
    for table in ("lost", "duplicated", "violations"):
        assert figures[table], table
        assert all(n == 0 for n in figures[table].values()), (table, figures[table])
