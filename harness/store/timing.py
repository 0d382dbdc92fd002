"""Time to verdict: where a scenario's wall time goes, from `harness run` to its result.

Each result's `timing` holds startup_s (launch -> /health 200; 0 when it reused a server), warmup_s,
measure_s, stop_s, check_s (records, oracle, writing) and total_s; `startup.milestones` holds the
startup lines the harness saw appear (weights, KV pool, each graph capture, ready). This splits
startup into weights, KV pool, each capture (the line's own elapsed=) and the rest.

    harness timing RUN_DIR... [--install-s S]      (a Markdown table)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.store.manifest import result_paths
from harness.store.result import ResultError
from harness.store.results import load_result


@dataclass(frozen=True)
class StartupSplit:
    """Startup seconds by phase; `other_s` is what no milestone accounts for (imports, init, HTTP)."""

    total_s: float | None
    weights_s: float | None
    kv_pool_s: float | None
    captures: tuple[tuple[str, float], ...]
    other_s: float | None


def startup_split(startup: dict[str, Any] | None) -> StartupSplit:
    """Split a result's startup by its milestones (empty when the server was reused or not observed)."""
    if not startup or startup.get("reused_from") or startup.get("observed") is False:
        return StartupSplit(None, None, None, (), None)
    total = float(startup["elapsed_s"])
    marks = {m["name"]: m for m in startup.get("milestones") or []}
    weights = _span(marks, "weights loading", "weights loaded")
    kv_pool = None
    if "KV pool allocated" in marks and "weights loaded" in marks:
        kv_pool = marks["KV pool allocated"]["at_s"] - marks["weights loaded"]["at_s"]
    captures = []
    for name, mark in marks.items():
        if name.startswith("capture ") and name.endswith(" end"):
            label = name[len("capture "):-len(" end")]
            captures.append((label, float(mark["elapsed_s"]) if mark.get("elapsed_s") is not None
                             else _span(marks, f"capture {label} begin", name) or 0.0))
    known = sum(x for x in (weights, kv_pool, *(c for _n, c in captures)) if x is not None)
    return StartupSplit(total, weights, kv_pool, tuple(captures), max(total - known, 0.0))


def _span(marks: dict[str, dict[str, Any]], begin: str, end: str) -> float | None:
    if end not in marks:
        return None
    if marks[end].get("elapsed_s") is not None:  # the line's own measurement beats the poll clock
        return float(marks[end]["elapsed_s"])
    return marks[end]["at_s"] - marks[begin]["at_s"] if begin in marks else None


def row(result: dict[str, Any], install_s: float | None = None) -> dict[str, Any]:
    """One table row: the scenario's time to verdict and its parts (None where not recorded)."""
    timing = result.get("timing") or {}
    split = startup_split(result.get("startup"))
    total = timing.get("total_s")
    return {
        "scenario": result["scenario"],
        "status": result["status"],
        "install_s": install_s,
        "startup_s": timing.get("startup_s"),
        "weights_s": split.weights_s,
        "kv_pool_s": split.kv_pool_s,
        "captures": split.captures,
        "startup_other_s": split.other_s,
        "warmup_s": timing.get("warmup_s"),
        "measure_s": timing.get("measure_s"),
        "stop_check_s": _sum(timing.get("stop_s"), timing.get("check_s")),
        "total_s": total,
        "verdict_s": _sum(install_s, total),
        "reused_from": timing.get("server_reused_from"),
    }


def _sum(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def markdown(rows: list[dict[str, Any]]) -> str:
    """The per-scenario time-to-verdict table (seconds)."""
    head = ("| scenario | status | install | startup | weights | KV pool | graph captures | other startup "
            "| warm-up | measure | stop+check | harness run | time to verdict | server |")
    lines = [head, "|" + " --- |" * 14]
    for r in rows:
        captures = ", ".join(f"{name} {s:.1f}" for name, s in r["captures"]) or "-"
        server = f"reused from {r['reused_from']}" if r["reused_from"] else "own"
        cells = [r["scenario"], r["status"], *(_s(r[k]) for k in ("install_s", "startup_s", "weights_s",
                 "kv_pool_s")), captures, *(_s(r[k]) for k in ("startup_other_s", "warmup_s", "measure_s",
                 "stop_check_s", "total_s", "verdict_s")), server]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness timing", description="Time to verdict per scenario.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run dirs, scenario dirs or result.json")
    parser.add_argument("--install-s", type=float, metavar="S",
                        help="seconds spent installing sglang before the run (added to every scenario's verdict time)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = [load_result(p) for run in args.runs for p in result_paths(run)]
    except ResultError as exc:
        print(f"harness timing: error: {exc}", file=sys.stderr)
        return 2
    print(markdown([row(r, args.install_s) for r in results]), end="")
    return 0
