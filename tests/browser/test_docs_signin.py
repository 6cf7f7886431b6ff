"""Signing in on /docs: Swagger UI's "Authorize" with the public client `apl-docs`
(authorization code with PKCE, `swagger_ui_init_oauth`) through the real Keycloak page in a
popup, then "Try it out" on an operation that needs a token answers 200.

The page is opened on 127.0.0.1, not under tests/support/browser.py's ALIAS: the dev realm lets
`apl-docs` return to http://127.0.0.1/* and http://localhost/* only (deploy/keycloak/dev/
clients.json; Keycloak answers any port of these loopback names). Swagger UI exchanges the code
in the browser, a cross-origin request from the service's own origin (with its port), which the
token endpoint must admit as a web origin of the client; when it does not, the test says what
the endpoint answered.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, Request, expect

from devtools.browser import DEV_PASSWORD
from tests.support.browser import watch

from .conftest import REGION

pytestmark = pytest.mark.infra

CLIENT_ID = "apl-docs"  # services/placements/settings.py docs_client_id
AUDIT = "/v1/regions/{region}/audit"  # a GET of the coordinators (rule coordinator-region)


async def test_docs_signs_in_with_pkce_and_tries_an_authorised_get(
    page: Page, base_url: str
) -> None:
    seen = watch(page)
    await page.goto(f"{base_url}/docs")
    operation = page.locator(".opblock-get").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{AUDIT}"]')
    )
    await expect(operation).to_have_count(1)

    await page.locator(".auth-wrapper .btn.authorize").click()
    dialog = page.locator(".modal-ux")
    await expect(dialog).to_be_visible()
    client_id = dialog.locator("input[data-name=clientId]")
    await expect(client_id).to_have_value(CLIENT_ID)
    # A public client: the secret Swagger UI offers a field for stays empty.
    await expect(dialog.locator("input[data-name=clientSecret]")).to_have_value("")

    asked: list[Request] = []
    page.context.on(
        "request", lambda r: asked.append(r) if "/protocol/openid-connect/" in r.url else None
    )
    async with page.expect_popup() as popup_info:
        await dialog.get_by_role("button", name="Apply given OAuth2 credentials").click()
    popup = await popup_info.value
    await expect(popup.locator("#username")).to_be_visible()
    query = parse_qs(urlsplit(popup.url).query)
    assert query["client_id"] == [CLIENT_ID], popup.url
    assert query["response_type"] == ["code"], popup.url
    assert query["code_challenge_method"] == ["S256"], popup.url
    assert query["redirect_uri"] == [f"{base_url}/docs/oauth2-redirect"], popup.url
    await popup.locator("#username").fill("coordinator")
    await popup.locator("#password").fill(DEV_PASSWORD)
    async with popup.expect_event("close"):
        await popup.locator("#kc-login").click()

    # Back in the dialog: the code was exchanged with its verifier, and the scheme is authorised.
    signed_out = dialog.get_by_role("button", name="Remove authorization")
    errors = dialog.locator(".errors")
    await expect(signed_out.or_(errors).first).to_be_visible()
    token = [r for r in asked if r.url.endswith("/protocol/openid-connect/token")]
    assert token, [r.url for r in asked]
    if await errors.count():
        said = " ".join((await errors.inner_text()).split())
        # The browser hides a refused cross-origin answer: the same request again, from here,
        # says what the token endpoint answered.
        request = token[0]
        async with httpx.AsyncClient(timeout=15) as http:
            again = await http.post(
                request.url,
                content=request.post_data or "",
                headers={"Origin": base_url, "Content-Type": "application/x-www-form-urlencoded"},
            )
        pytest.fail(
            f"Swagger UI did not sign in: {said} ({request.failure}); the token endpoint answers "
            f"the code exchange from {base_url}: {again.status_code} {again.text}; "
            f"page errors: {seen.errors}"
        )
    await expect(signed_out).to_be_visible()
    await expect(dialog.get_by_text("Authorized", exact=True).first).to_be_visible()
    sent = token[0].post_data or ""
    form = parse_qs(sent)
    assert form["grant_type"] == ["authorization_code"], sent
    assert form["client_id"] == [CLIENT_ID], sent
    assert form.get("code_verifier"), f"no PKCE verifier in the code exchange: {sent}"
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_have_count(0)

    # Try it out: the audit trail of the coordinator's region, with the token.
    await operation.locator(".opblock-summary-control").click()
    await operation.get_by_role("button", name=re.compile(r"^Try it out")).click()
    await operation.locator("tr[data-param-name=region] input").fill(REGION)
    async with page.expect_response(
        lambda r: urlsplit(r.url).path == f"/v1/regions/{REGION}/audit"
    ) as answer:
        await operation.get_by_role("button", name="Execute").click()
    response = await answer.value
    assert response.status == 200, await response.text()
    assert (await response.request.all_headers()).get("authorization", "").startswith("Bearer ")
    status = operation.locator(".live-responses-table .response .response-col_status")
    await expect(status.first).to_have_text("200")
    assert seen.errors == [], seen.errors
