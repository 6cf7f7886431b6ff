"""The matching service's settings: the shared `MatchingSettings` plus what only this service reads.

Extra variables (all `APL_MATCHING_`-prefixed):

- `SCHEMA_NAME`: the Postgres schema of the read model (default `matching`).
- `AUTO_REGIONS`: regions in automatic mode, a comma list (`SE-AB,SE-O`) or `*` for all. In
  automatic mode a round runs by itself `AUTO_ROUND_DELAY_SECONDS` after the region's input last
  changed. Empty (the default) means rounds run only when requested.
- `TEST_PAUSE_AFTER_COMMIT_SECONDS`: TEST ONLY. After a requested round's transaction committed,
  wait this long before the offset is committed, so a test can kill the process at exactly that
  moment. 0 (the default) disables it; refused when `APL_ENVIRONMENT=production`.
- `TEST_PAUSE_BEFORE_COMMIT_SECONDS`: TEST ONLY, likewise: wait inside a requested round's
  transaction, after everything is written and before the commit.
"""

from __future__ import annotations

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import MatchingSettings


class MatchingServiceSettings(MatchingSettings):
    model_config = SettingsConfigDict(env_prefix="APL_MATCHING_", extra="ignore")

    schema_name: str = "matching"
    auto_regions: str = ""
    test_pause_after_commit_seconds: float = 0.0
    test_pause_before_commit_seconds: float = 0.0

    @model_validator(mode="after")
    def _test_hooks(self) -> MatchingServiceSettings:
        for name in ("test_pause_after_commit_seconds", "test_pause_before_commit_seconds"):
            if self.environment == "production" and getattr(self, name):
                raise ValueError(f"{name}: a test-only hook, refused in production")
        return self

    def is_automatic(self, region: str) -> bool:
        """Whether `region` runs rounds by itself after its input changed."""
        names = {r.strip() for r in self.auto_regions.split(",") if r.strip()}
        return "*" in names or region in names

    @property
    def db_schema(self) -> str:
        """The read model's schema (`APL_MATCHING_SCHEMA_NAME`; tests and benchmarks vary it)."""
        return self.schema_name

    @property
    def group_id(self) -> str:
        """The consumer group; includes the topic prefix so test runs never share a group."""
        return f"{self.topic_prefix}matching"
