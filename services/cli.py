"""The `apl` command: one entry point whose subcommands live with the code they drive.

`match`, `init`, `serve` and `dlt` are the runtime's (they are in the image); `infra`, `auth`,
`demo`, `browser` and `screenshots` are tools from the `devtools` package, which only a
checkout has (`make setup`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.util import find_spec

DEV_PACKAGE = "devtools"
ENDS_AT_ONCE = frozenset({"match"})
"""Subcommands whose process ends without freeing its objects (when run as `apl`)."""

# subcommand -> (module, help). Modules are imported only when their subcommand runs, so
# `apl match` never loads Kafka or database code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "match": ("services.matching.cli", "solve a matching round offline from files"),
    "infra": (
        "devtools.localinfra",
        "start, stop or inspect local Kafka, PostgreSQL and Keycloak (dev)",
    ),
    "auth": ("devtools.auth", "print an access token for a user of the local dev realm (dev)"),
    "init": ("services.init", "create topics and apply every service's migrations"),
    "serve": ("services.serve", "run one of the services (placements, matching, notifications)"),
    "dlt": (
        "services.dlt",
        "list a dead-letter topic, or replay its records to their original topic",
    ),
    "demo": ("devtools.demo", "run the sample round end to end (dev)"),
    "browser": ("devtools.browser", "find or install the Chromium the browser tests drive (dev)"),
    "screenshots": (
        "devtools.screenshots",
        "write screenshots of the main pages of a running demo to docs/screenshots (dev)",
    ),
}


def _usage() -> str:
    lines = ["usage: apl <command> [options]", "", "commands:"]
    width = max(map(len, SUBCOMMANDS))
    lines += [f"  {name:<{width}} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines.append("\nRun 'apl <command> --help' for a command's options.")
    return "\n".join(lines)


def _dev_only(module: str) -> bool:
    """A development command whose package is not installed here (the image has none)."""
    return module.split(".", 1)[0] == DEV_PACKAGE and find_spec(DEV_PACKAGE) is None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"apl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = SUBCOMMANDS[name][0]
    if _dev_only(module_name):
        print(
            f"apl {name}: a dev-only command, not in this installation; "
            "use a checkout with `make setup`",
            file=sys.stderr,
        )
        return 2
    module = import_module(module_name)
    run: Callable[[list[str]], int] = module.main
    code = run(rest)
    if name in ENDS_AT_ONCE and argv is None:
        # A national run ends with hundreds of thousands of records alive, and freeing them
        # one by one takes longer than writing the output did. Everything it writes is
        # written (outputs fsynced) and is flushed here, so the process ends without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
