from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.matching.settings import MatchingSettings
from services.notifications.settings import NotificationsSettings
from services.placements.settings import PlacementsSettings


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
    with pytest.raises(ValidationError, match="internal_token"):
        PlacementsSettings(environment="production")
    with pytest.raises(ValidationError, match="placements_token"):
        NotificationsSettings(environment="production", webhook_secret="s3cret-long-enough")
    PlacementsSettings(environment="production", internal_token="a-real-token")


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
