from __future__ import annotations

import socket
from typing import Any

import pytest
from pydantic import ValidationError

from services.matching.settings import MatchingSettings
from services.notifications.settings import NotificationsSettings
from services.placements.settings import PlacementsSettings
from shared.contracts.topics import PLACEMENTS, ROUND_REQUESTS
from shared.runtime import subscriber_options


def test_service_prefix_wins_over_shared_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APL_DATABASE_URL", "postgresql://shared/apl")
    monkeypatch.setenv("APL_MATCHING_DATABASE_URL", "postgresql://matching/apl")
    monkeypatch.setenv("APL_KAFKA_BOOTSTRAP", "k:1")
    assert MatchingSettings().database_url == "postgresql://matching/apl"
    assert PlacementsSettings().database_url == "postgresql://shared/apl"
    assert PlacementsSettings().kafka_bootstrap == "k:1"


def test_each_service_reads_only_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APL_MATCHING_HTTP_PORT", "9101")
    assert MatchingSettings().http_port == 9101
    assert PlacementsSettings().http_port == 8000


def test_placeholder_secret_refused_in_production() -> None:
    issuer = "https://id.example.se/realms/apl"
    with pytest.raises(ValidationError, match="action_link_secret"):
        PlacementsSettings(environment="production", auth_issuer=issuer)
    with pytest.raises(ValidationError, match="session_secret"):
        PlacementsSettings(
            environment="production", action_link_secret="a-real-secret", auth_issuer=issuer
        )
    with pytest.raises(ValidationError, match="auth_issuer"):
        PlacementsSettings(
            environment="production", action_link_secret="a-real-secret", session_secret="s-s"
        )
    with pytest.raises(ValidationError, match="oauth_client_secret"):
        NotificationsSettings(environment="production", webhook_secret="s3cret-long-enough")
    # .env.example's values are placeholders too: every one begins with change-me.
    with pytest.raises(ValidationError, match="session_secret"):
        PlacementsSettings(
            environment="production",
            action_link_secret="a-real-secret",
            session_secret="change-me-session-secret",
            auth_issuer=issuer,
        )
    PlacementsSettings(
        environment="production",
        action_link_secret="a-real-secret",
        session_secret="another-real-secret",
        auth_issuer=issuer,
    )


def test_auth_settings_are_shared_and_a_service_prefix_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APL_AUTH_ISSUER", "https://id.example.se/realms/apl")
    monkeypatch.setenv("APL_MATCHING_AUTH_ISSUER", "https://other.example.se/realms/x")
    monkeypatch.setenv("APL_AUTH_ROLES_CLAIM", "roles")
    placements = PlacementsSettings()
    assert (placements.auth_issuer, placements.auth_audience, placements.auth_roles_claim) == (
        "https://id.example.se/realms/apl",
        "apl-api",
        "roles",
    )
    assert MatchingSettings().auth_issuer == "https://other.example.se/realms/x"
    assert placements.token_url == "https://id.example.se/realms/apl/protocol/openid-connect/token"


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    env = tmp_path / "apl.env"
    env.write_text("APL_KAFKA_BOOTSTRAP=file:9\n")
    monkeypatch.delenv("APL_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("APL_ENV_FILE", str(env))
    assert MatchingSettings.load().kafka_bootstrap == "file:9"
    monkeypatch.setenv("APL_KAFKA_BOOTSTRAP", "env:1")
    assert MatchingSettings.load().kafka_bootstrap == "env:1"


def test_every_consumer_group_carries_the_topic_prefix_and_schema_defaults_to_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APL_TOPIC_PREFIX", "t1.")
    for cls in (PlacementsSettings, MatchingSettings, NotificationsSettings):
        settings = cls()
        assert settings.group_id == f"t1.{cls.service}"
        assert settings.schema_name == cls.service
    monkeypatch.setenv("APL_MATCHING_SCHEMA_NAME", "matching_b")
    monkeypatch.setenv("APL_MATCHING_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("APL_MATCHING_CONSUMER_BATCH", "50")
    settings = MatchingSettings()
    assert (settings.schema_name, settings.max_attempts, settings.consumer_batch) == (
        "matching_b",
        3,
        50,
    )


def test_notifications_take_their_client_credentials_and_share_the_link_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APL_ACTION_LINK_SECRET", "shared-link-secret")
    monkeypatch.setenv("APL_NOTIFICATIONS_CLIENT_SECRET", "client-secret")
    monkeypatch.setenv("APL_PLACEMENTS_PUBLIC_URL", "https://apl.example.se")
    monkeypatch.setenv("APL_NOTIFICATIONS_PLACEMENTS_URL", "http://placements:8000")
    notifications, placements = NotificationsSettings(), PlacementsSettings()
    assert notifications.action_link_secret.get_secret_value() == "shared-link-secret"
    assert placements.action_link_secret.get_secret_value() == "shared-link-secret"
    assert (
        notifications.oauth_client_id,
        notifications.oauth_client_secret.get_secret_value(),
    ) == (
        "apl-notifications",
        "client-secret",
    )
    assert notifications.action_link_base == "https://apl.example.se"
    assert not hasattr(notifications, "placements_token")
    monkeypatch.setenv("APL_PLACEMENTS_ACTION_LINK_SECRET", "own")
    monkeypatch.delenv("APL_PLACEMENTS_PUBLIC_URL")
    assert PlacementsSettings().action_link_secret.get_secret_value() == "own"
    assert NotificationsSettings().action_link_base == "http://placements:8000"

    issuer = "https://id.example.se/realms/apl"
    real: dict[str, Any] = {
        "webhook_secret": "w",
        "oauth_client_secret": "c",
        "action_link_secret": "l",
    }
    with pytest.raises(ValidationError, match="auth_issuer"):
        NotificationsSettings(environment="production", **real)
    for name in real:
        with pytest.raises(ValidationError, match=name):
            NotificationsSettings(
                environment="production", auth_issuer=issuer, **{**real, name: "change-me"}
            )
    NotificationsSettings(environment="production", auth_issuer=issuer, **real)


def test_each_subscriber_has_a_group_of_its_own_and_a_replica_may_be_a_static_member(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APL_TOPIC_PREFIX", "t1.")
    options = subscriber_options(MatchingSettings(), ROUND_REQUESTS)
    assert options["group_id"] == "t1.matching.round-requests"
    assert options["group_instance_id"] is None  # dynamic membership unless named
    monkeypatch.setenv("APL_KAFKA_INSTANCE_ID", "matching-2")
    assert subscriber_options(MatchingSettings(), PLACEMENTS)["group_instance_id"] == "matching-2"
    monkeypatch.setenv("APL_KAFKA_INSTANCE_ID", "@hostname")
    assert NotificationsSettings().instance_id == socket.gethostname()
