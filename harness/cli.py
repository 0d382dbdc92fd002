"""`harness` command: dispatches each subcommand to its module's main(argv) -> int, imported lazily."""

from __future__ import annotations

import importlib
import sys

# Subcommand -> module exposing main(argv) -> int. Imported on use so a missing module only breaks
# its own subcommand, with a clear message, and startup stays fast.
COMMANDS = {
    "list": ("harness.scenarios.listing", "list the scenario catalog"),
    "run": ("harness.run", "run scenarios (default: baseline on the reference engine, CPU)"),
    "show": ("harness.store.show", "print a stored result, scenario directory or run directory"),
    "import": ("harness.bench_serving.importer", "store sglang.bench_serving JSONL output as harness runs"),
    "export": ("harness.bench_serving.exporter", "write results as sglang.bench_serving JSONL"),
    "timing": ("harness.store.timing", "time-to-verdict table (install, startup phases, warm-up, measurement) of runs"),
    "sweep": ("harness.sweep", "run a parameter sweep"),
    "gate": ("harness.gate.cli", "PR performance gate"),
    "history": ("harness.gate.history", "result history and change points"),
    "nightly": ("harness.gate.nightly", "the commit under test side by side with a pinned control build (paired)"),
    "wheelhouse": ("harness.wheelhouse", "offline wheels for a GPU box"),
    "sglang-check": ("harness.upstream.cli", "the five fixes in sglang's own source: differential + revert proofs"),
    "sglang-compat": ("harness.upstream.compat", "per sglang release: hook targets and fixes present"),
}


def usage() -> str:
    lines = ["usage: harness COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {help_text}" for name, (_module, help_text) in COMMANDS.items()]
    lines += ["", "harness COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"harness: unknown command {command!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"harness: command {command!r} is not available in this checkout ({module_name} is missing)",
                  file=sys.stderr)
            return 2
        raise
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
