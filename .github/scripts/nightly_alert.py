"""Decide whether tonight's nightly needs an issue: a change point starting at tonight's commit, or an
oracle failure in tonight's runs. Prints `alert=true|false` (a step output) and writes the issue body.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _store_result() -> ModuleType:
    """harness/store/result.py (stdlib only), loaded by path so this step needs no installed harness."""
    spec = importlib.util.spec_from_file_location("_harness_store_result", ROOT / "harness/store/result.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


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
    store = _store_result()
    lines = []
    for path in sorted(runs.glob(f"*/{store.RESULT_FILE}")):
        # passed null: not observable on this target, never a failure (Result.failed_checks).
        for check in store.read_result(path).failed_checks:
            lines.append(f"- `{path.parent.name}`: {check.name}: expected `{check.expected}`, "
                         f"observed `{check.observed}`")
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
