"""The save-time SSRF guard in the placements handlers: a webhook URL whose host resolves to a
refused address is a 422 naming the field and nothing is stored; the operator's allow-list
admits it. Against the in-memory fake and (marked infra) real PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from services.placements import handlers
from services.placements.domain.commands import SetCompanyChannel
from services.placements.domain.errors import Invalid
from services.placements.domain.rules import Channel
from shared.netguard import WebhookGuard
from tests.handlers.placements.test_handlers import post
from tests.handlers.placements.tiers import InMemoryTier, PostgresTier

NAMES = {"hr.internal.test": ["10.1.2.3"], "hr.public.test": ["93.184.215.14"]}


async def resolve(host: str, port: int) -> Sequence[str]:
    if host not in NAMES:
        raise OSError(host)
    return NAMES[host]


class GuardContract:
    @pytest.fixture
    def uow(self) -> Any:
        raise NotImplementedError

    async def channel_of(self, uow: Any, company: str) -> Channel | None:
        async with uow:
            found: Channel | None = await uow.companies.channel(company)
        return found

    async def test_a_name_resolving_to_a_private_address_is_refused(self, uow: Any) -> None:
        guard = WebhookGuard(resolver=resolve)
        hook = Channel("webhook", "https://hr.internal.test/apl")
        with pytest.raises(Invalid) as caught:
            await handlers.set_company_channel(SetCompanyChannel("c-1", hook), uow, webhooks=guard)
        [error] = caught.value.errors
        assert (error.field, error.message) == (
            "webhook_url",
            "resolves to 10.1.2.3, a private address",
        )
        with pytest.raises(Invalid) as caught:
            await handlers.post_placement(post("p-1", channel=hook), uow, webhooks=guard)
        assert [e.field for e in caught.value.errors] == ["notification.webhook_url"]
        assert await self.channel_of(uow, "c-1") is None
        public = Channel("webhook", "https://hr.public.test/apl")
        await handlers.set_company_channel(SetCompanyChannel("c-1", public), uow, webhooks=guard)
        assert await self.channel_of(uow, "c-1") == public

    async def test_the_allow_list_admits_a_named_host(self, uow: Any) -> None:
        guard = WebhookGuard.of("hr.internal.test", resolver=resolve)
        hook = Channel("webhook", "https://hr.internal.test/apl")
        await handlers.set_company_channel(SetCompanyChannel("c-1", hook), uow, webhooks=guard)
        assert await self.channel_of(uow, "c-1") == hook


class TestInMemory(InMemoryTier, GuardContract):
    pass


@pytest.mark.infra
class TestPostgres(PostgresTier, GuardContract):
    pass
