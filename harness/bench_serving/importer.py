"""`harness import FILE.jsonl`: store sglang.bench_serving output as harness runs (show, gate, asv read them).

One line -> one run directory (OUT/manifest.json, OUT/<scenario>/result.json). Several lines (bench_serving
appends one per invocation) -> OUT/line-NN/ each, which `harness gate` reads as interleaved rounds.
Every line is checked before anything is written: bad input exits 2 with FILE:LINE: field: reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

from harness.bench_serving.convert import BenchServingError, Line, read_jsonl, to_result
from harness.errors import entry_point
from harness.provenance import harness_identity
from harness.store.atomic import ResultWriteError
from harness.store.manifest import MANIFEST_FILE, Manifest
from harness.store.result import ResultError
from harness.store.results import validate, write_result

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def import_lines(lines: list[Line], out: Path, scenario: str, argv: list[str]) -> list[Path]:
    """Convert and validate every line, then write the run directories; returns the result paths."""
    harness = harness_identity()
    results = []
    for line in lines:
        result = to_result(line, scenario, harness)
        try:
            validate(result, source=line.where)
        except ResultError as exc:  # a converter bug must not write half a run
            raise BenchServingError(str(exc)) from None
        results.append(result)
    written = []
    for index, result in enumerate(results, start=1):
        run_dir = out if len(results) == 1 else out / f"line-{lines[index - 1].number:02d}"
        manifest = Manifest.start(run_dir, result["target"]["kind"], argv, [scenario])
        written.append(write_result(run_dir / scenario, result))
        manifest.mark_done(scenario, result["status"])
    return written


@entry_point("harness import: error")
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="harness import", description="Import sglang.bench_serving JSONL output.")
    parser.add_argument("jsonl", type=Path, metavar="FILE.jsonl", help="bench_serving --output-file (ideally with --output-details)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default runs/import-<UTC time>)")
    parser.add_argument("--scenario", default="bench-serving",
                        help="scenario name to file the results under (a catalog name lets asv track it; default bench-serving)")
    parser.add_argument("--line", type=int, action="append", metavar="N", help="import only line N (repeatable)")
    args = parser.parse_args(argv)
    if not _NAME.match(args.scenario):
        print(f"harness import: error: --scenario: expected letters, digits, '.', '_' or '-', got {args.scenario!r}",
              file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"import-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"
    if (out / MANIFEST_FILE).exists() or (out.is_dir() and any(out.glob(f"line-*/{MANIFEST_FILE}"))):
        print(f"harness import: error: --out: {out} already holds a run; choose a new directory", file=sys.stderr)
        return 2
    try:
        lines = read_jsonl(args.jsonl)
        if args.line:
            known = {line.number for line in lines}
            missing = sorted(set(args.line) - known)
            if missing:
                raise BenchServingError(f"{args.jsonl}: --line {missing[0]}: no such benchmark line "
                                        f"(lines: {', '.join(map(str, sorted(known)))})")
            lines = [line for line in lines if line.number in args.line]
        paths = import_lines(lines, out, args.scenario, ["harness", "import", *argv])
    except ResultWriteError as exc:
        print(f"harness import: error: {exc}", file=sys.stderr)
        return 74
    for path in paths:
        print(path)
    if any(not (line.data.get("ttfts") and line.data.get("itls")) for line in lines):
        print("harness import: note: a line without --output-details has no per-request samples; "
              "show and asv read its aggregates, harness gate needs samples", file=sys.stderr)
    return 0
