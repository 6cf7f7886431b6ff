"""What every page shares: the start page, sign-in redirects, languages, CSRF, error pages."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.inmemory.placements.web.conftest import Site


async def test_the_start_page_offers_sign_in_in_the_browsers_language(site: Site) -> None:
    browser = site.open()
    r = await browser.client.get("/", headers={"accept-language": "fi-FI,fi;q=0.9,en;q=0.5"})
    assert r.status_code == 200
    assert '<html lang="fi">' in r.text
    r = await browser.client.get("/?lang=sv", headers={"accept-language": "fi"})
    assert '<html lang="sv">' in r.text
    assert r.cookies.get("apl_lang") == "sv"
    r = await browser.client.get("/", headers={"accept-language": "fi"})
    assert '<html lang="sv">' in r.text  # the chosen language is remembered


async def test_sign_in_sends_the_browser_to_the_issuer_with_pkce(site: Site) -> None:
    browser = site.open()
    r = await browser.client.get("/login", params={"next": "/regions/SE-AB"})
    assert r.status_code == 303
    target = urlsplit(r.headers["location"])
    query = parse_qs(target.query)
    assert r.headers["location"].startswith(site.settings.authorization_url)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["http://placements/auth/callback"]
    assert query["state"][0]


async def test_a_page_without_a_session_asks_to_sign_in(site: Site) -> None:
    browser = site.open()
    r = await browser.get("/operations")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Foperations"
    r = await browser.client.get("/operations", headers={"hx-request": "true"})
    assert r.headers["hx-redirect"] == "/login?next=%2Foperations"


async def test_a_callback_that_was_not_started_here_gets_a_page(site: Site) -> None:
    r = await site.open().get("/auth/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 400
    assert "Sign-in did not complete" in r.text


async def test_a_signed_in_person_goes_to_their_first_page(site: Site) -> None:
    r = await site.open("operator").get("/")
    assert (r.status_code, r.headers["location"]) == (303, "/operations")
    r = await site.open("coordinator", regions=["SE-O", "SE-AB"]).get("/")
    assert r.headers["location"] == "/regions/SE-AB"


async def test_a_page_of_another_role_is_refused_with_a_page(site: Site) -> None:
    r = await site.open("student", student_id="s-1").get("/operations")
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "You may not do this" in r.text


async def test_forms_without_the_csrf_token_are_refused(site: Site) -> None:
    browser = site.open("operator")
    r = await browser.client.post("/logout", data={}, headers={"accept": "text/html"})
    assert r.status_code == 403
    assert "The form has expired" in r.text
    r = await browser.post("/logout")
    assert r.status_code == 303


async def test_unknown_addresses_get_a_page_for_browsers_and_json_for_scripts(site: Site) -> None:
    browser = site.open()
    r = await browser.get("/no-such-page")
    assert (r.status_code, r.headers["content-type"][:9]) == (404, "text/html")
    r = await browser.client.get("/v1/no-such-route")
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_docs_are_served_without_a_cdn(site: Site) -> None:
    browser = site.open()
    r = await browser.client.get("/docs")
    assert r.status_code == 200
    assert "cdn." not in r.text
    assert "unpkg" not in r.text
    assert "/assets/vendor/swagger-ui-bundle.js" in r.text
    assert "usePkceWithAuthorizationCodeGrant" in r.text
    r = await browser.client.get("/assets/vendor/swagger-ui-bundle.js")
    assert (r.status_code, r.headers["content-type"][:15]) == (200, "text/javascript")
    r = await browser.client.get("/docs/asyncapi")
    assert "/assets/vendor/asyncapi.js" in r.text
    r = await browser.client.get("/assets/vendor/../../package.json")
    assert r.status_code == 404
