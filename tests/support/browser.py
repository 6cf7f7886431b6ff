"""A real browser for the tests: Playwright (its async API, on the session's event loop) driving
Debian's Chromium (`devtools/browser.py` finds it; Playwright's own downloads are never used).

One Chromium per test session (per xdist worker), headless; each test gets pages in contexts of
its own (cookies, storage), at a desktop size or a phone's (360x740). A directory's conftest
provides `base_url`, the address of the application under test, and imports the fixtures:

    from tests.support.browser import browser, open_page, page  # noqa: F401

    async def test_x(page: Page) -> None:
        await sign_in(page, base_url, "student")
        await assert_accessible(page)

`axe(page)` runs axe-core (the project's npm package, `node_modules/axe-core`) on the page with
the WCAG 2.1 A and AA rules and returns its violations; `assert_accessible(page)` fails with the
serious and critical ones listed. The pages keep their Content-Security-Policy (`script-src
'self'`), which refuses axe as an inline `<script>`: it is evaluated through the DevTools protocol
instead, as Playwright evaluates any expression, which a page's CSP does not govern.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    ViewportSize,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

from devtools import browser as chromium
from devtools.browser import DEV_PASSWORD
from devtools.browser import sign_in as _sign_in
from shared.assets import assets_dir

__all__ = [
    "ALIAS",
    "DESKTOP",
    "PHONE",
    "OpenPage",
    "Watched",
    "aliased",
    "assert_accessible",
    "axe",
    "browser",
    "local",
    "open_page",
    "page",
    "sign_in",
    "watch",
]

DESKTOP: Final = ViewportSize(width=1280, height=800)
PHONE: Final = ViewportSize(width=360, height=740)
AXE_TAGS: Final = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
"""The axe-core rule tags of WCAG 2.1 level A and AA."""
BLOCKING: Final = ("serious", "critical")
"""The impacts `assert_accessible` fails on."""
ALIAS: Final = "apl.test"
"""A name of this machine that is not a loopback name (Chromium resolves it to 127.0.0.1): pages
opened under it behave as under a deployment's name (Swagger UI, for one, decides whether to
show its online validator's badge, an image from validator.swagger.io, by whether the spec is on
localhost or 127.0.0.1)."""
LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "::1", ALIAS})
TIMEOUT_MS: Final = 15_000
"""How long an action or an `expect` waits (the suite runs beside other process-heavy tests)."""

expect.set_options(timeout=TIMEOUT_MS)


class OpenPage(Protocol):
    def __call__(self, *, phone: bool = False, **options: Any) -> Awaitable[Page]: ...


@cache
def axe_source() -> str:
    """axe-core's browser bundle from the project's front-end packages (`npm ci`)."""
    path = assets_dir() / "axe-core" / "axe.min.js"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make setup` (npm ci installs axe-core)")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session (each xdist worker has its own)."""
    try:
        executable = chromium.require_chromium()
    except chromium.ChromiumMissing as error:
        pytest.fail(f"{error} (`make browser` installs it)", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(executable),
            headless=True,
            args=[*chromium.launch_args(), f"--host-resolver-rules=MAP {ALIAS} 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def open_page(browser: Browser, base_url: str) -> AsyncIterator[OpenPage]:
    """`await open_page(phone=False, **context_options)`: a page in a new context of its own,
    with relative addresses resolved against `base_url`; closed after the test."""
    contexts: list[BrowserContext] = []

    async def open_(*, phone: bool = False, **options: Any) -> Page:
        context = await browser.new_context(
            base_url=base_url,
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            **options,
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return await context.new_page()

    yield open_
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(open_page: OpenPage) -> Page:
    """A desktop-sized page of a new context."""
    return await open_page()


async def sign_in(page: Page, base_url: str, username: str, password: str = DEV_PASSWORD) -> str:
    """Sign in as a dev user through the identity provider's real form (fields #username and
    #password, button #kc-login), back on the application; returns where it landed."""
    return await _sign_in(page, base_url, username, password)


@dataclass
class Watched:
    """What a page asked for and what went wrong in it, from the moment `watch` was called."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def off_site(self) -> list[str]:
        """The requests that left this machine."""
        return [url for url in self.requests if not local(url)]


def aliased(url: str) -> str:
    """`url` (of this machine) under the name ALIAS instead of 127.0.0.1 or localhost."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{ALIAS}{port}").geturl()


def local(url: str) -> bool:
    """Whether `url` is served from this machine (or is data the page made itself)."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "about"}:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


def watch(page: Page) -> Watched:
    """Record the page's requests, its uncaught script errors and its console errors (a CSP
    refusal is one)."""
    seen = Watched()

    def on_request(request: Request) -> None:
        seen.requests.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        # Chromium asks every site for /favicon.ico by itself; no page of ours asked for it.
        if message.type == "error" and urlsplit(where).path != "/favicon.ico":
            seen.errors.append(f"console: {message.text} ({where})")

    def on_error(error: PlaywrightError) -> None:
        seen.errors.append(f"script: {error.message}")

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", on_error)
    return seen


async def axe(page: Page, tags: tuple[str, ...] = AXE_TAGS) -> list[dict[str, Any]]:
    """axe-core's violations of the rules tagged `tags` on the page as it is now."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    result: dict[str, Any] = await page.evaluate(
        "tags => axe.run(document, "
        "{runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        list(tags),
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe(violations: list[dict[str, Any]], nodes: int = 3) -> str:
    """The violations, one a paragraph: rule id, impact, help, the first nodes' targets."""
    lines: list[str] = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:nodes]:
            lines.append(f"    {' '.join(map(str, node['target']))}")
        more = len(violation["nodes"]) - nodes
        if more > 0:
            lines.append(f"    ... and {more} more")
    return "\n".join(lines)


async def assert_accessible(
    page: Page, tags: tuple[str, ...] = AXE_TAGS, *, allow: Mapping[str, str] | None = None
) -> None:
    """Fail with a readable list of the page's serious and critical axe-core violations.

    `allow` names rules (id -> why) not to fail on: for the pages of third-party components
    alone (Swagger UI, the AsyncAPI component), whose own markup the project does not write."""
    allowed = allow or {}
    violations = [
        v for v in await axe(page, tags) if v.get("impact") in BLOCKING and v["id"] not in allowed
    ]
    assert not violations, f"axe-core on {page.url}:\n{describe(violations)}"
