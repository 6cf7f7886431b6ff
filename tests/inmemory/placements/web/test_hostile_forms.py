"""Pages refuse what the API refuses: a webhook to a private address and a NUL character in a
form or an address show the error page naming the field (never a 500), and nothing is saved."""

from __future__ import annotations

from tests.inmemory.placements.web.conftest import Site
from tests.inmemory.placements.web.test_company_pages import error_of, seed_placement


async def test_a_webhook_to_a_private_address_is_refused_on_the_page(site: Site) -> None:
    seed_placement(site)
    browser = site.open("company", company_id="c-1")
    for url, words in (
        ("http://127.0.0.1:15432/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.7/hook", "private"),
    ):
        form = {"channel": "webhook", "webhook_url": url}
        r = await browser.post("/companies/c-1/channel", form)
        assert r.status_code == 422, url
        assert words in error_of(r.text, "webhook_url")
    assert "c-1" not in site.fake.company_channels


async def test_a_nul_character_in_a_form_or_an_address_is_named(site: Site) -> None:
    seed_placement(site)
    browser = site.open("company", company_id="c-1")
    form = {"channel": "webhook", "webhook_url": "https://hr.example.se/h\x00ook"}
    r = await browser.post("/companies/c-1/channel", form)
    assert r.status_code == 422
    assert "NUL" in r.text
    assert "c-1" not in site.fake.company_channels
    r = await browser.get("/companies/c%00-1")
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"]
