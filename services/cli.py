"""The `apl` command: one entry point whose subcommands live with the code they drive."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import import_module

# subcommand -> (module, help). Modules are imported only when their subcommand runs, so
# `apl match` never loads Kafka or database code.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "match": ("services.matching.cli", "solve a matching round offline from files"),
    "infra": ("shared.localinfra", "start, stop or inspect local Kafka and PostgreSQL"),
    "init": ("services.init", "create topics and apply every service's migrations"),
    "serve": ("services.serve", "run one of the services (placements, matching, notifications)"),
    "demo": ("services.demo", "run the sample round end to end"),
}


def _usage() -> str:
    lines = ["usage: apl <command> [options]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines.append("\nRun 'apl <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"apl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = import_module(SUBCOMMANDS[name][0])
    run: Callable[[list[str]], int] = module.main
    return run(rest)


if __name__ == "__main__":
    raise SystemExit(main())
