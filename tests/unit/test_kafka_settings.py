"""Which settings name a Kafka principal: each service its own, the admin its own, passwords from
files, placeholders refused in production; and the local broker's principals (`apl infra up`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faststream.security import SASLScram512
from pydantic import ValidationError

from devtools import localinfra
from services.matching.settings import MatchingSettings
from services.notifications.settings import NotificationsSettings
from services.placements.settings import PlacementsSettings
from shared.kafka import make_broker
from shared.settings import KafkaAdminSettings


def test_each_service_is_its_own_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APL_KAFKA_BOOTSTRAP", "k:9092")
    monkeypatch.setenv("APL_MATCHING_KAFKA_PASSWORD", "m-secret")
    monkeypatch.setenv("APL_PLACEMENTS_KAFKA_USERNAME", "apl-placements")
    monkeypatch.setenv("APL_PLACEMENTS_KAFKA_PASSWORD", "p-secret")
    matching, placements = MatchingSettings().kafka, PlacementsSettings().kafka
    assert (matching.username, matching.password.get_secret_value()) == ("matching", "m-secret")
    assert (placements.username, placements.password.get_secret_value()) == (
        "apl-placements",
        "p-secret",
    )
    notifications = NotificationsSettings().kafka  # no password of its own: none borrowed
    assert (notifications.username, notifications.password.get_secret_value()) == (
        "notifications",
        "",
    )
    assert {matching.bootstrap, matching.security_protocol, matching.sasl_mechanism} == {
        "k:9092",
        "SASL_PLAINTEXT",
        "SCRAM-SHA-512",
    }


def test_the_admin_is_named_by_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APL_KAFKA_ADMIN_PASSWORD", "a-secret")
    monkeypatch.setenv("APL_MATCHING_KAFKA_PASSWORD", "m-secret")
    admin = KafkaAdminSettings().kafka
    assert (admin.username, admin.password.get_secret_value()) == ("admin", "a-secret")


def test_a_password_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "matching_kafka_password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("APL_MATCHING_KAFKA_PASSWORD_FILE", str(secret))
    assert MatchingSettings().kafka.password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("APL_MATCHING_KAFKA_PASSWORD", "given")  # a given password wins
    assert MatchingSettings().kafka.password.get_secret_value() == "given"


def test_production_refuses_a_placeholder_password_and_plaintext() -> None:
    for password in ("", "change-me-matching-kafka"):
        settings = MatchingSettings(environment="production", kafka_password=password)
        with pytest.raises(ValueError, match="Kafka password of 'matching'"):
            _ = settings.kafka
    assert MatchingSettings(environment="production", kafka_password="a-real-one").kafka
    with pytest.raises(ValidationError, match="PLAINTEXT"):
        MatchingSettings(environment="production", kafka_security_protocol="PLAINTEXT")
    assert MatchingSettings(kafka_security_protocol="PLAINTEXT").kafka.sasl is False


def test_a_service_broker_connects_as_its_principal() -> None:
    settings = MatchingSettings(kafka_password="pw")
    security = make_broker(settings.kafka, "test").specification.security
    assert isinstance(security, SASLScram512)  # and so in the AsyncAPI document
    assert (security.username, security.password) == ("matching", "pw")


def test_local_passwords_are_generated_once_and_private(tmp_path: Path) -> None:
    paths = localinfra.Paths(tmp_path)
    first = localinfra.kafka_passwords(paths)
    assert set(first) == {*localinfra.KAFKA_USERS, localinfra.KAFKA_CONTROLLER}
    assert localinfra.kafka_passwords(paths) == first
    assert paths.kafka_users.stat().st_mode & 0o077 == 0


def test_a_cluster_formatted_without_these_users_is_not_taken_as_ready(tmp_path: Path) -> None:
    paths = localinfra.Paths(tmp_path)
    passwords = localinfra.kafka_passwords(paths)
    assert not localinfra._sasl_ready(paths, passwords)  # an older `up` wrote no marker
    paths.kafka_formatted.write_text(localinfra._users_fingerprint(passwords) + "\n")
    assert localinfra._sasl_ready(paths, passwords)
    assert not localinfra._sasl_ready(paths, {**passwords, "matching": "another"})


def test_env_lines_give_each_service_its_own_principal() -> None:
    passwords = {u: f"{u}-pw" for u in (*localinfra.KAFKA_USERS, localinfra.KAFKA_CONTROLLER)}
    lines = dict(
        line.split("=", 1)
        for line in localinfra.env_lines(
            "127.0.0.1:1", "postgresql://x", local_pg=False, kafka_passwords=passwords
        )
    )
    admin, services = localinfra.kafka_from(lines)
    assert admin.password.get_secret_value() == "admin-pw"
    assert {s: (c.username, c.password.get_secret_value()) for s, c in services.items()} == {
        s: (s, f"{s}-pw") for s in localinfra.SERVICES
    }
    assert "controller-pw" not in lines.values()
    assert lines["APL_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
