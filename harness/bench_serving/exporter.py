"""`harness export RESULT`: write results as sglang.bench_serving JSONL lines (one per result).

RESULT is a result.json, a scenario directory or a run directory (as for `harness show`). An imported
result gives its original line back; a harness run gets bench_serving's aggregates computed its way
from the samples (TPOT with the [DONE] chunk, numpy's population std) plus the per-request details.
With --out the lines are appended, as bench_serving appends to its --output-file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.bench_serving.convert import to_line
from harness.store.manifest import result_paths
from harness.store.result import ResultError
from harness.store.results import load_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness export", description="Export results as bench_serving JSONL.")
    parser.add_argument("result", type=Path, metavar="RESULT", help="result.json, scenario dir or run dir")
    parser.add_argument("--out", type=Path, metavar="FILE.jsonl", help="append here (default: standard output)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = [load_result(path) for path in result_paths(args.result)]
    except ResultError as exc:
        print(f"harness export: error: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(f"harness export: error: {args.result}: no result.json found", file=sys.stderr)
        return 2
    # json.dumps writes inf as Infinity, exactly as bench_serving writes its request_rate.
    text = "".join(json.dumps(to_line(result)) + "\n" for result in results)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        with args.out.open("a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        print(f"harness export: error: {args.out}: cannot write: {exc}", file=sys.stderr)
        return 74
    print(f"{args.out}: {len(results)} line(s) appended")
    return 0
