"""The demo's progress lines off a terminal (CI logs, `make demo > file`)."""

from __future__ import annotations

import pytest

from devtools.demo.run import Progress


def test_off_a_terminal_the_finished_line_is_printed_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = Progress("students registered", 10)
    for n in range(1, 11):
        done.update(n)
    done.finish()
    short = Progress("rounds completed", 3)
    short.update(1)
    short.finish()
    lines = capsys.readouterr().err.splitlines()
    # updates within 5 s of the last line print nothing until the total; finish() adds no
    # second line of it
    assert [line.split()[3] for line in lines] == ["10/10", "3/3"]
