"""The `apl` command: runtime subcommands from services, dev-only ones from devtools."""

from __future__ import annotations

import importlib.util

import pytest

from services import cli


def test_runtime_commands_come_from_services_and_dev_commands_from_devtools() -> None:
    package = {name: module.split(".")[0] for name, (module, _) in cli.SUBCOMMANDS.items()}
    assert {n for n, p in package.items() if p == "services"} == {"match", "init", "serve", "dlt"}
    assert {n for n, p in package.items() if p == "devtools"} == {
        "infra",
        "auth",
        "demo",
        "browser",
        "screenshots",
    }


@pytest.mark.parametrize("command", ["infra", "auth", "demo", "browser", "screenshots"])
def test_dev_commands_without_devtools_say_so_in_one_line_and_exit_2(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        cli, "find_spec", lambda name, *a: None if name == "devtools" else real(name, *a)
    )
    assert cli.main([command, "status"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert f"apl {command}: a dev-only command" in err
    assert "make setup" in err


def test_dev_commands_run_in_a_checkout(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["infra", "--help"])
    assert exit_.value.code == 0
    assert "apl infra" in capsys.readouterr().out


def test_dlt_is_in_the_image_without_devtools(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        cli, "find_spec", lambda name, *a: None if name == "devtools" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exited:
        cli.main(["dlt", "--help"])
    assert exited.value.code == 0
    assert "replay" in capsys.readouterr().out
