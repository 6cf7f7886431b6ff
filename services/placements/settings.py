"""The placements service's settings (`APL_PLACEMENTS_` prefix; shared fields in
`shared.settings.ServiceSettings`)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PLACEHOLDER_SECRET, ServiceSettings, refuse_placeholder


class PlacementsSettings(ServiceSettings):
    service: ClassVar[str] = "placements"
    model_config = SettingsConfigDict(env_prefix="APL_PLACEMENTS_", extra="ignore")

    http_port: int = 8000
    internal_token: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    max_body_bytes: int = 1_000_000

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        refuse_placeholder(self, "internal_token")
        return self
