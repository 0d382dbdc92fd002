"""Decide whether tonight's nightly needs an issue: a change point starting at tonight's commit, or an
oracle failure in tonight's runs. Prints `alert=true|false` (a step output) and writes the issue body.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def new_steps(history: dict, commit: str) -> list[str]:
    """Table rows for the change points whose first commit is `commit`."""
    rows = []
    for series in history.get("series", []):
        for step in series.get("steps", []):
            if step.get("commit") == commit:
                # label: "tpot_ms ÷ control" for a ratio-to-control series (absent in older history.json).
                label = series.get("label", series["metric"])
                rows.append(f"| {series['scenario']} | {label} | {step['before']:.4g} | "
                            f"{step['after']:.4g} | {step['relative']:+.2%} |")
    return rows


def oracle_failures(runs: Path) -> list[str]:
    """One line per failed oracle verdict in the run directory's result.json files."""
    lines = []
    for path in sorted(runs.glob("*/result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        for verdict in (result.get("oracle") or {}).get("verdicts") or []:
            # passed null: not observable on this target, never a failure (harness/store/result.py's oracle_failures).
            if verdict.get("passed") is False:
                lines.append(f"- `{path.parent.name}`: {verdict.get('name')}: expected "
                             f"`{verdict.get('expected')}`, observed `{verdict.get('observed')}`")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Nightly alert decision.")
    parser.add_argument("--history", type=Path, required=True, help="history.json of `harness history`")
    parser.add_argument("--runs", type=Path, required=True, help="tonight's run directory")
    parser.add_argument("--commit", required=True, help="tonight's sglang commit")
    parser.add_argument("--body", type=Path, required=True, help="where to write the issue body")
    args = parser.parse_args(argv)
    history = json.loads(args.history.read_text(encoding="utf-8"))
    steps, failures = new_steps(history, args.commit), oracle_failures(args.runs)
    body = [f"## sglang `{args.commit}`", ""]
    if steps:
        body += ["### Change points starting at this commit", "",
                 "| scenario | metric | before | after | change |", "|---|---|---|---|---|", *steps, ""]
    if failures:
        body += ["### Oracle failures", "", *failures, ""]
    args.body.parent.mkdir(parents=True, exist_ok=True)
    args.body.write_text("\n".join(body) + "\n", encoding="utf-8")
    print(f"alert={'true' if steps or failures else 'false'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
