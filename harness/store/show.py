"""`harness show RESULT`: print stored results (a result.json, a scenario directory or a run directory)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.store.manifest import result_paths
from harness.store.report import explain, summary_table
from harness.store.result import ResultError
from harness.store.results import load_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness show", description="Print stored results.")
    parser.add_argument("result", type=Path, metavar="RESULT", help="result.json, scenario dir or run dir")
    parser.add_argument("--json", action="store_true", help="print the validated JSON instead of tables")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results: list[dict[str, Any]] = [load_result(path) for path in result_paths(args.result)]
    except ResultError as exc:
        print(f"harness show: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    console = Console()
    console.print(summary_table(results, title=str(args.result)))
    for result in results:
        explain(result, console)
    return 0
