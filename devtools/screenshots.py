"""`apl screenshots`: pictures of the web application's main pages, from a running demo.

Against the demo's placements service (`make demo`; http://127.0.0.1:8000 unless told), it signs
in as each role through the real Keycloak page in Chromium (`devtools/browser.py`) and writes a
PNG of each main page into `docs/screenshots/`:

    start.png               the start page, signed out
    student-placement.png   the student's placement (`student`)
    student-choices.png     the student's choices
    company-placements.png  the company's placements (`company`)
    coordinator-region.png  the coordinator's region (`coordinator-se-ab`)
    round-report.png        a round's report (`--round`, else the region page's first round)
    supervisor-action.png   a supervisor's action page (only with `--action-link`)

A page the application does not have (yet), or that answers an error, is skipped with a line
saying so; the others are still written.

    .venv/bin/apl screenshots
    .venv/bin/apl screenshots --base-url http://127.0.0.1:8000 --lang sv \\
        --action-link "http://127.0.0.1:8000/actions/..."
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from devtools import browser, localinfra

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

DEFAULT_URL = "http://127.0.0.1:8000"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
ROUND_LINK = re.compile(r"^/rounds/[0-9a-fA-F-]{36}$")


@dataclass
class Shots:
    """Where the pictures go, and what was written or skipped."""

    out: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def skip(self, name: str, why: str) -> None:
        self.skipped.append(name)
        print(f"skipped {name}: {why}")

    async def take(self, page: Page, name: str, path: str) -> bool:
        """Open `path` and write `<name>.png`; False (and a line) when the page is not there."""
        response = await page.goto(path)
        status = response.status if response is not None else 0
        if status == 404:
            self.skip(name, f"{path} answers 404 (the application has no such page yet)")
            return False
        if status >= 400 or status == 0:
            self.skip(name, f"{path} answers {status or 'nothing'}")
            return False
        await page.wait_for_load_state("networkidle")
        target = self.out / f"{name}.png"
        await page.screenshot(path=str(target), full_page=True)
        self.written.append(target)
        print(f"wrote {target} ({page.url})")
        return True


async def _signed_in(
    chromium: Browser, base_url: str, user: str, password: str, lang: str
) -> tuple[Page, str] | None:
    """A page signed in as `user`, and the path it landed on; None (and a line) if refused."""
    context = await chromium.new_context(base_url=base_url, viewport=VIEWPORT, locale=lang)
    page = await context.new_page()
    try:
        landed = await browser.sign_in(page, base_url, user, password)
    except browser.SignInFailed as error:
        print(f"could not sign in as {user}: {error}")
        await context.close()
        return None
    return page, landed.removeprefix(base_url.rstrip("/")).split("?", 1)[0]


async def _round_path(page: Page, given: str | None) -> str | None:
    if given:
        return f"/rounds/{given}"
    for href in await page.locator("a[href^='/rounds/']").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    ):
        if isinstance(href, str) and ROUND_LINK.match(href):
            return href
    return None


async def take_all(args: argparse.Namespace) -> Shots:
    from playwright.async_api import async_playwright

    base = args.base_url.rstrip("/")
    shots = Shots(Path(args.out))
    shots.out.mkdir(parents=True, exist_ok=True)
    executable = browser.ensure_chromium()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=browser.launch_args()
        )
        try:
            context = await chromium.new_context(base_url=base, viewport=VIEWPORT, locale=args.lang)
            await shots.take(await context.new_page(), "start", f"/?lang={args.lang}")
            await context.close()

            student = await _signed_in(chromium, base, args.student, args.password, args.lang)
            if student is None:
                shots.skip("student-placement, student-choices", f"{args.student} not signed in")
            else:
                page, landed = student
                await shots.take(page, "student-placement", landed)
                await shots.take(page, "student-choices", f"{landed}/choices")

            company = await _signed_in(chromium, base, args.company, args.password, args.lang)
            if company is None:
                shots.skip("company-placements", f"{args.company} not signed in")
            else:
                await shots.take(company[0], "company-placements", company[1])

            coordinator = await _signed_in(
                chromium, base, args.coordinator, args.password, args.lang
            )
            if coordinator is None:
                shots.skip("coordinator-region, round-report", f"{args.coordinator} not signed in")
            else:
                page, landed = coordinator
                region = await shots.take(page, "coordinator-region", landed)
                round_path = await _round_path(page, args.round) if region else None
                if round_path is None:
                    shots.skip("round-report", "no round given (--round) or linked from the region")
                else:
                    await shots.take(page, "round-report", round_path)

            if args.action_link:
                context = await chromium.new_context(viewport=VIEWPORT, locale=args.lang)
                await shots.take(await context.new_page(), "supervisor-action", args.action_link)
            else:
                shots.skip("supervisor-action", "no --action-link given (a supervisor's e-mail)")
        finally:
            await chromium.close()
    return shots


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="apl screenshots",
        description="Screenshots of the web application's main pages from a running demo.",
    )
    parser.add_argument("--base-url", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")
    parser.add_argument("--student", default="student", help="the student to sign in as")
    parser.add_argument("--company", default="company", help="the company staff to sign in as")
    parser.add_argument(
        "--coordinator", default="coordinator-se-ab", help="the coordinator to sign in as"
    )
    parser.add_argument("--password", default=browser.DEV_PASSWORD, help="the users' password")
    parser.add_argument("--round", help="the round id of the round report (default: the first)")
    parser.add_argument("--action-link", help="a supervisor's action link from a notice")
    parser.add_argument("--lang", default="en", choices=("sv", "fi", "en"))
    parser.add_argument(
        "--out",
        default=str(localinfra.project_root() / "docs" / "screenshots"),
        help="where the PNGs go (default docs/screenshots)",
    )
    args = parser.parse_args(argv)
    try:
        httpx.get(f"{args.base_url.rstrip('/')}/readyz", timeout=5).raise_for_status()
    except httpx.HTTPError as error:
        print(
            f"apl screenshots: no running application at {args.base_url} ({error}); "
            "start the demo with `make demo`, or give --base-url",
            file=sys.stderr,
        )
        return 1
    try:
        shots = asyncio.run(take_all(args))
    except browser.ChromiumMissing as error:
        print(f"apl screenshots: {error}", file=sys.stderr)
        return 1
    print(f"{len(shots.written)} screenshots written to {shots.out}, {len(shots.skipped)} skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
