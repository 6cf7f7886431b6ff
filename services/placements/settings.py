"""The placements service's settings (`APL_PLACEMENTS_` prefix; shared fields in
`shared.settings.ServiceSettings`, the identity ones `auth_*` among them)."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PLACEHOLDER_SECRET, ServiceSettings, refuse_placeholder


class PlacementsSettings(ServiceSettings):
    service: ClassVar[str] = "placements"
    model_config = SettingsConfigDict(env_prefix="APL_PLACEMENTS_", extra="ignore")

    http_port: int = 8000
    max_body_bytes: int = 1_000_000
    action_link_secret: SecretStr = Field(
        default=SecretStr(PLACEHOLDER_SECRET),
        validation_alias=AliasChoices(
            "APL_PLACEMENTS_ACTION_LINK_SECRET", "APL_ACTION_LINK_SECRET"
        ),
    )
    """The HMAC key of the supervisors' action links (`APL_ACTION_LINK_SECRET`): the same value
    as the notifications service's, which signs them."""
    docs_client_id: str = "apl-docs"
    """The public OAuth client `/docs` signs in with (authorization code + PKCE)."""
    auth_authorization_url: str = ""
    """The issuer's authorization endpoint for `/docs`; empty: Keycloak's, under the issuer."""
    auth_token_url: str = ""
    """The issuer's token endpoint for `/docs`; empty: Keycloak's, under the issuer."""
    auth_logout_url: str = ""
    """The issuer's end-session endpoint (the web application's sign-out); empty: Keycloak's."""

    # The web application (entrypoints/web): OIDC authorization code + PKCE, a session cookie.
    web_client_id: str = Field(
        default="apl-web", validation_alias=AliasChoices("APL_WEB_CLIENT_ID")
    )
    web_client_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("APL_WEB_CLIENT_SECRET")
    )
    """The web client's secret (a confidential client; empty: a public client, PKCE alone)."""
    session_secret: SecretStr = Field(
        default=SecretStr(PLACEHOLDER_SECRET),
        validation_alias=AliasChoices("APL_SESSION_SECRET"),
    )
    """The key that signs the session cookie (`APL_SESSION_SECRET`)."""
    session_hours: float = 8.0
    """How long a browser session lasts without sign-in (the issuer may end it sooner)."""
    webhook_allowlist: str = Field(
        default="",
        validation_alias=AliasChoices("APL_PLACEMENTS_WEBHOOK_ALLOWLIST", "APL_WEBHOOK_ALLOWLIST"),
    )
    """Webhook targets a company may name although they are not public
    (`APL_WEBHOOK_ALLOWLIST`: IP addresses, CIDR networks and host names, comma-separated); every
    other loopback, private, link-local, multicast or reserved address is refused at save time
    (`shared/netguard.py`), and in production so is http://."""
    public_url: str = Field(default="", validation_alias=AliasChoices("APL_PUBLIC_URL"))
    """The application's address as browsers see it (`https://apl.example.se`), for the sign-in
    redirect; empty: the address each request came to."""

    @property
    def authorization_url(self) -> str:
        issuer = self.auth_issuer.rstrip("/")
        return self.auth_authorization_url or f"{issuer}/protocol/openid-connect/auth"

    @property
    def token_url(self) -> str:
        issuer = self.auth_issuer.rstrip("/")
        return self.auth_token_url or f"{issuer}/protocol/openid-connect/token"

    @property
    def logout_url(self) -> str:
        issuer = self.auth_issuer.rstrip("/")
        return self.auth_logout_url or f"{issuer}/protocol/openid-connect/logout"

    @property
    def secure_cookies(self) -> bool:
        """Session cookies only over HTTPS: wherever the public address is https."""
        return self.public_url.startswith("https://")

    @model_validator(mode="after")
    def _action_link_secret(self) -> Self:
        refuse_placeholder(self, "action_link_secret", "session_secret")
        return self

    @model_validator(mode="after")
    def _issuer(self) -> Self:
        if self.environment == "production" and not self.auth_issuer:
            raise ValueError("auth_issuer: an OIDC issuer (APL_AUTH_ISSUER) is required")
        return self
