"""`apl browser check|install`: the Chromium the browser tests and the screenshot script drive.

Playwright drives Debian's Chromium (package `chromium`) through its executable path; Playwright's
own browser downloads are never used. The executable is, in order: `APL_CHROMIUM`,
`/usr/bin/chromium`, `chromium` on the PATH. `ensure_chromium()` installs the package with
apt-get where it is missing and it can (as root, with apt-get there), and otherwise fails with a
message that says what to install; `make test` calls it (`make browser`) before the suite.

    .venv/bin/apl browser check     # where it is, and its version (exit 1: not found)
    .venv/bin/apl browser install   # install it unless it is there

`sign_in` is the real sign-in through the identity provider's form, shared by the browser tests
and `apl screenshots`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from playwright.async_api import Page

ENV: Final = "APL_CHROMIUM"
PACKAGE: Final = "chromium"
DEFAULT: Final = Path("/usr/bin/chromium")
DEV_PASSWORD: Final = "apl-dev"  # every dev user's password (deploy/keycloak/dev/users.json)
NO_LISTS: Final = (
    "unable to locate package",
    "has no installation candidate",
    "apt-get update",
)
"""What apt-get says when its package lists are missing or stale (then: update, and again)."""

Echo = Callable[[str], None]


class ChromiumMissing(RuntimeError):
    """No Chromium here, and it could not be installed (the message says what to do)."""


class SignInFailed(RuntimeError):
    """The identity provider did not send the browser back to the application."""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_chromium() -> Path | None:
    """The Chromium executable, or None. A given `APL_CHROMIUM` that is not one is an error
    (the caller asked for that one, not for another)."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        if not _executable(path):
            raise ChromiumMissing(f"{ENV}={given} is not an executable file")
        return path
    if _executable(DEFAULT):
        return DEFAULT
    found = shutil.which(PACKAGE)
    return Path(found) if found else None


def _how_to_get_it() -> str:
    return (
        f"Chromium is needed for the browser tests and was not found ({ENV}, {DEFAULT}, "
        f"`{PACKAGE}` on the PATH). Install Debian's package `{PACKAGE}` "
        f"(as root: apt-get install -y {PACKAGE}; or run `make browser` as root), "
        f"or set {ENV} to a Chromium executable."
    )


def can_install() -> bool:
    """Whether `install` may run here: as root, with apt-get."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt(args: list[str], echo: Echo) -> tuple[int, str]:
    """Run apt-get, echoing its output as it comes; (exit status, the output)."""
    command = ["apt-get", *args]
    echo(f"running: DEBIAN_FRONTEND=noninteractive {' '.join(command)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lines: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout or ():
            lines.append(line)
            echo("  " + line.rstrip("\n"))
    return proc.returncode, "".join(lines)


def install(echo: Echo = print) -> None:
    """`apt-get install -y chromium`; when that fails for lack of package lists, `apt-get
    update` first and once more. `ChromiumMissing` when it cannot be installed."""
    if not can_install():
        raise ChromiumMissing(_how_to_get_it())
    echo(f"Chromium is missing: installing Debian's package `{PACKAGE}` with apt-get")
    status, output = _apt(["install", "-y", PACKAGE], echo)
    if status != 0 and any(sign in output.lower() for sign in NO_LISTS):
        echo("the package lists are missing or stale: updating them first")
        status, _ = _apt(["update"], echo)
        if status == 0:
            status, output = _apt(["install", "-y", PACKAGE], echo)
    if status != 0:
        raise ChromiumMissing(f"apt-get install -y {PACKAGE} failed ({status}). {_how_to_get_it()}")


def ensure_chromium(echo: Echo = print) -> Path:
    """The Chromium executable, installed first where it is missing and can be."""
    found = find_chromium()
    if found is not None:
        return found
    install(echo)
    found = find_chromium()
    if found is None:
        raise ChromiumMissing(f"`{PACKAGE}` was installed but is not found. {_how_to_get_it()}")
    echo(f"Chromium installed: {found}")
    return found


def require_chromium() -> Path:
    """The Chromium executable, or `ChromiumMissing` saying how to get it (installs nothing)."""
    found = find_chromium()
    if found is None:
        raise ChromiumMissing(_how_to_get_it())
    return found


def version(path: Path) -> str:
    """`chromium --version` (its first line), or the reason it did not answer."""
    try:
        done = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"did not answer --version: {error}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[0] if lines else f"no version (exit {done.returncode})"


def launch_args() -> list[str]:
    """Chromium's flags for the tests: no sandbox as root (Chromium refuses it there)."""
    return ["--no-sandbox"] if os.geteuid() == 0 else []


async def sign_in(page: Page, base_url: str, username: str, password: str = DEV_PASSWORD) -> str:
    """Sign in to the application at `base_url` through the identity provider's real form;
    returns the URL the application lands on afterwards (`SignInFailed`, with what the form
    said, when it does not return)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    base = base_url.rstrip("/")
    await page.goto(f"{base}/login")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(password)
    await page.locator("#kc-login").click()
    try:
        await page.wait_for_url(
            lambda url: url.startswith(base + "/") and "/auth/callback" not in url,
            wait_until="load",
        )
    except PlaywrightTimeout as error:
        said = page.locator("#input-error, #kc-error-message, .kc-feedback-text")
        reason = " ".join((await said.first.inner_text()).split()) if await said.count() else ""
        raise SignInFailed(
            f"signing in as {username} did not return to {base}; the browser is at "
            f"{page.url.split('?', 1)[0]}" + (f": {reason}" if reason else "")
        ) from error
    return page.url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="apl browser",
        description="The Chromium that the browser tests drive (Debian's package `chromium`).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="say where Chromium is and its version (exit 1: missing)")
    commands.add_parser("install", help="install Debian's `chromium` unless it is there (root)")
    args = parser.parse_args(argv)
    try:
        path = ensure_chromium() if args.command == "install" else require_chromium()
    except ChromiumMissing as error:
        print(f"apl browser {args.command}: {error}", file=sys.stderr)
        return 1
    print(f"Chromium: {path} ({version(path)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
