"""The matching service's settings (`APL_MATCHING_` prefix; shared fields, the schema name among
them, in `shared.settings.ServiceSettings`).

- `AUTO_REGIONS`: regions in automatic mode, a comma list (`SE-AB,SE-O`) or `*` for all. In
  automatic mode a round runs by itself `AUTO_ROUND_DELAY_SECONDS` after the region's input last
  changed. Empty (the default) means rounds run only when requested.
- `INPUT_WAIT_SECONDS`: how long a requested round waits for the inputs its request counts
  before the request is handled again.
- `ROUND_CONCURRENCY`: how many requested rounds (of different regions) run at once; a region's
  rounds always run one after another, in the order requested.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class MatchingSettings(ServiceSettings):
    service: ClassVar[str] = "matching"
    model_config = SettingsConfigDict(env_prefix="APL_MATCHING_", extra="ignore")

    http_port: int = 8001
    auto_regions: str = ""
    auto_round_delay_seconds: float = 5.0
    input_wait_seconds: float = 120.0
    input_deadline_seconds: float = Field(default=300.0, gt=0)
    """How long after it was requested (`occurred_at`) a round may wait for the inputs its
    request counts (`APL_MATCHING_INPUT_DEADLINE_SECONDS`): past it, the round completes
    without running, with status `inputs_missing` (`handlers.handle_round_request`)."""
    round_concurrency: int = Field(default=4, ge=1, le=64)
    consumer_batch: int = 1000
    """Placement and student records per poll, applied in one transaction with one offset
    commit (`APL_MATCHING_CONSUMER_BATCH`; the other services keep 200): each poll costs about
    30 ms besides its records (the offset commit, the transaction's round trips), so larger
    polls took the read model's ingest from 3,100-3,500 (three runs) to 3,300-7,200 events a second
    here (twelve runs; bench/pipeline.py on 2026-12-03, which moves by ±40 % between runs)."""

    def is_automatic(self, region: str) -> bool:
        """Whether `region` runs rounds by itself after its input changed."""
        names = {r.strip() for r in self.auto_regions.split(",") if r.strip()}
        return "*" in names or region in names

    @property
    def any_automatic(self) -> bool:
        return bool(self.auto_regions.strip())
