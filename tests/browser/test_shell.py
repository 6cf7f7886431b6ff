"""The shell of the web application in a real browser: the start page in each language and at a
phone's width, each kind of dev user signing in through the real Keycloak page and landing on
their first page, signing out (here and at the issuer), and the API documents rendering with
nothing fetched from elsewhere. axe-core checks each page (WCAG 2.1 A and AA)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from services.placements.entrypoints import web
from services.placements.entrypoints.web import i18n
from tests.support.browser import OpenPage, aliased, assert_accessible, sign_in, watch

pytestmark = pytest.mark.infra

HEADLINE = "Work placements for vocational students"  # the start page's h1 (msgid)
FIRST_PAGES = {
    "student": "/students/s-000001",
    "company": "/companies/c-000001",
    "coordinator": "/regions/SE-AB",  # the first of their regions, SE-AB and SE-O
    "operator": "/operations",
}
"""Where each kind of dev user lands after signing in (deploy/keycloak/dev/users.json)."""
SWAGGER_UI = {
    "color-contrast": "Swagger UI 5's own theme (grey on white in the operation summaries)",
    "nested-interactive": "Swagger UI 5 puts the copy and lock buttons inside its summary button",
}
"""What axe-core finds in Swagger UI's own markup on /docs (the page around it must pass)."""
ASYNCAPI_COMPONENT = {
    "color-contrast": "the AsyncAPI React component's own theme (white on its tag colours)",
}
"""What axe-core finds in the AsyncAPI component's own markup on /docs/asyncapi."""
PAGE_MODULES = (
    web.signin,
    web.student,
    web.company,
    web.outcomes,
    web.coordinator,
    web.operations,
)


def page_route_exists(path: str) -> bool:
    """Whether the web application has a GET page at `path` (its routes, not a guess)."""
    for module in PAGE_MODULES:
        for route in module.router.routes:
            methods = getattr(route, "methods", None) or set()
            regex = getattr(route, "path_regex", None)
            if "GET" in methods and regex is not None and regex.match(path):
                return True
    return False


async def test_the_start_page_in_swedish_finnish_and_english(page: Page, base_url: str) -> None:
    seen = watch(page)
    response = await page.goto("/")
    assert response is not None
    assert response.status == 200
    html, h1 = page.locator("html"), page.locator("h1")
    await expect(h1).to_have_count(1)
    for lang in ("sv", "fi", "en"):
        await page.locator(f"nav.langs a[hreflang={lang}]").click()
        await page.wait_for_url(f"{base_url}/?lang={lang}")
        await expect(html).to_have_attribute("lang", lang)
        await expect(page.locator(f"a[hreflang={lang}]")).to_have_attribute("aria-current", "true")
        await expect(h1).to_have_text(i18n.translations(lang).gettext(HEADLINE))
        # The choice is remembered: the start page without ?lang= keeps it.
        await page.goto("/")
        await expect(html).to_have_attribute("lang", lang)
        await assert_accessible(page)
    await expect(page.get_by_role("link", name="Sign in").first).to_be_visible()
    assert seen.errors == [], seen.errors
    assert seen.off_site() == [], seen.off_site()


async def test_the_start_page_fits_a_phone(open_page: OpenPage) -> None:
    page = await open_page(phone=True)
    await page.goto("/")
    await expect(page.locator("h1")).to_be_visible()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"the start page scrolls sideways at 360 px: {width} px wide"
    await assert_accessible(page)


@pytest.mark.parametrize("user", sorted(FIRST_PAGES))
async def test_each_kind_of_user_signs_in_and_lands_on_their_first_page(
    page: Page, base_url: str, user: str
) -> None:
    landed = await sign_in(page, base_url, user)
    first = FIRST_PAGES[user]
    assert landed == f"{base_url}{first}", f"{user} landed on {landed}, not {first}"
    # Signed in: the start page sends them on to it again.
    await page.goto("/")
    await page.wait_for_url(f"{base_url}{first}")
    if page_route_exists(first):
        response = await page.reload()
        assert response is not None
        assert response.status == 200, f"{user}'s first page {first} answers {response.status}"
        await expect(page.locator("h1")).to_have_count(1)
        await expect(page.get_by_role("link", name="Back to the start page")).to_have_count(0)
        await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        await assert_accessible(page)


async def test_signing_out_ends_the_session_here_and_at_the_issuer(
    page: Page, base_url: str
) -> None:
    await sign_in(page, base_url, "operator")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{base_url}/?signed_out=1")
    await expect(page.get_by_role("status")).to_have_text("You have signed out.")
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    # No session here, none at Keycloak: the operations page asks for the password again.
    await page.goto("/operations")
    await expect(page.locator("#username")).to_be_visible()
    assert not page.url.startswith(base_url), page.url


async def test_the_operations_page_is_accessible(page: Page, base_url: str) -> None:
    await sign_in(page, base_url, "operator")
    seen = watch(page)
    response = await page.goto("/operations")
    assert response is not None
    assert response.status == 200
    await expect(page.locator("h1")).to_have_count(1)
    await assert_accessible(page)
    assert seen.errors == [], seen.errors


async def test_swagger_ui_renders_offline(page: Page, base_url: str) -> None:
    seen = watch(page)
    # Under a name that is not a loopback name, as a deployment's /docs is.
    await page.goto(aliased(f"{base_url}/docs"))
    await expect(page.locator(".swagger-ui").first).to_be_visible()
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    await page.wait_for_load_state("networkidle")
    assert seen.requests, "the page made no requests"
    assert seen.off_site() == [], f"requests left this machine: {seen.off_site()}"
    await assert_accessible(page, allow=SWAGGER_UI)


async def test_the_asyncapi_document_renders_offline(page: Page, base_url: str) -> None:
    seen = watch(page)
    await page.goto(aliased(f"{base_url}/docs/asyncapi"))
    # The component renders the whole document in the browser: seconds on a busy machine.
    await expect(page.locator("#asyncapi .aui-root")).to_be_visible(timeout=60_000)
    await expect(page.locator("#introduction")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    assert seen.off_site() == [], f"requests left this machine: {seen.off_site()}"
    await assert_accessible(page, allow=ASYNCAPI_COMPONENT)
