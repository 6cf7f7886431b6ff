"""`apl browser` (devtools/browser.py): which Chromium, and installing Debian's when it is missing
(apt-get is replaced here by a recorder of the commands it would have run)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from devtools import browser


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The apt-get commands run (as root, with apt-get there); `answering` says what they give."""
    calls: list[list[str]] = []
    monkeypatch.setattr(browser, "can_install", lambda: True)
    return calls


def answering(
    monkeypatch: pytest.MonkeyPatch, calls: list[list[str]], answers: list[tuple[int, str]]
) -> None:
    def fake(args: list[str], echo: browser.Echo) -> tuple[int, str]:
        calls.append(args)
        return answers.pop(0)

    monkeypatch.setattr(browser, "_apt", fake)


def test_a_given_chromium_that_is_not_an_executable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(browser.ENV, str(tmp_path / "nothing"))
    with pytest.raises(browser.ChromiumMissing, match=r"APL_CHROMIUM=.*not an executable"):
        browser.find_chromium()


def test_a_given_chromium_is_the_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    executable = tmp_path / "chromium"
    executable.write_text("#!/bin/sh\necho 'Chromium 1.2.3'\n")
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(browser.ENV, str(executable))
    assert browser.find_chromium() == executable
    assert browser.version(executable) == "Chromium 1.2.3"


def test_missing_and_not_installable_names_the_package_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setattr(browser, "can_install", lambda: False)
    with pytest.raises(browser.ChromiumMissing) as refused:
        browser.ensure_chromium(echo=lambda _: None)
    assert "`chromium`" in str(refused.value)
    assert "APL_CHROMIUM" in str(refused.value)


def test_install_updates_the_lists_only_when_apt_lacks_them(
    monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]
) -> None:
    found = iter([None, Path("/usr/bin/chromium")])
    monkeypatch.setattr(browser, "find_chromium", lambda: next(found))
    answering(
        monkeypatch,
        apt,
        [(100, "E: Unable to locate package chromium\n"), (0, ""), (0, "")],
    )
    said: list[str] = []
    assert browser.ensure_chromium(echo=said.append) == Path("/usr/bin/chromium")
    assert apt == [["install", "-y", "chromium"], ["update"], ["install", "-y", "chromium"]]
    assert any("installing Debian's package `chromium`" in line for line in said)


def test_install_without_trouble_does_not_update(
    monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]
) -> None:
    answering(monkeypatch, apt, [(0, "Setting up chromium ...\n")])
    browser.install(echo=lambda _: None)
    assert apt == [["install", "-y", "chromium"]]


def test_another_failure_is_not_retried_and_says_what_failed(
    monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]
) -> None:
    answering(monkeypatch, apt, [(100, "E: dpkg was interrupted\n")])
    with pytest.raises(browser.ChromiumMissing, match=r"apt-get install -y chromium failed"):
        browser.install(echo=lambda _: None)
    assert apt == [["install", "-y", "chromium"]]


def test_chromium_runs_without_its_sandbox_only_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert browser.launch_args() == ["--no-sandbox"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert browser.launch_args() == []
