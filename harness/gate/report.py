"""Render a gate outcome as a PR-comment Markdown table and a machine-readable verdict JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from harness.gate.compare import GateOutcome
from harness.gate.config import GateConfig
from harness.gate.load import Side
from harness.gate.sampling_report import sampling_json, sampling_lines
from harness.gate.sequential import Sampling
from harness.measure.regimes import describe, find_regimes

JSON_SCHEMA_VERSION = 1
ICON = {"regression": "🔴", "improvement": "🟢", "no_change": "⚪", "inconclusive": "🟡", "skipped": "⏭️"}


def markdown(outcome: GateOutcome, config: GateConfig, *, base: str, head: str,
             artifacts: dict[str, str], regimes: Sequence[str] = (), sampling: Sampling | None = None) -> str:
    """The PR comment: overall verdict, one table line per scenario and metric, then links."""
    thresholds = ", ".join(f"{r.name} ±{r.threshold:.0%}" for r in config.metrics)
    paired = any(r.estimate is not None and r.estimate.design == "paired" for r in outcome.rows)
    statistic = (f"paired: trimmed mean of the per-pair log ratios head/base with a {config.confidence:.2%} "
                 f"moving-block bootstrap interval (random effects over server-start pairs)" if paired else
                 f"median ratio head/base with a {config.confidence:.0%} interval (request bootstrap, or "
                 f"random-effects over interleaved round pairs) and Mann-Whitney U")
    lines = [
        f"## Performance gate: **{outcome.verdict}** (exit {outcome.exit_code})",
        "",
        f"base `{base}` vs head `{head}`; {statistic}; thresholds {thresholds}; exact comparison for bytes, "
        f"OOM, oracle.",
        "",
        "| scenario | metric | base | head | change [CI] | verdict | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in outcome.rows:
        lines.append(f"| {r.scenario} | {r.metric} | {r.base} | {r.head} | {r.change} | "
                     f"{ICON[r.verdict]} {r.verdict} | {_cell(r.reason)} |")
    if regimes:
        lines += ["", "### Regimes inside runs", "",
                  "Change points inside one server's request series (the level moved while it ran); "
                  "request indices in brackets.", ""]
        lines += [f"- {_cell(line)}" for line in regimes]
    if sampling is not None:
        lines += sampling_lines(outcome, config, sampling)
    if outcome.problems:
        lines += ["", "### Infrastructure problems", ""]
        lines += [f"- {_cell(p)}" for p in outcome.problems]
    if artifacts:
        lines += ["", "### Artifacts", ""]
        lines += [f"- [{label}]({link})" for label, link in artifacts.items()]
    return "\n".join(lines) + "\n"


def verdict_json(outcome: GateOutcome, config: GateConfig, *, base: str, head: str,
                 artifacts: dict[str, str], sampling: Sampling | None = None) -> dict[str, Any]:
    rows = []
    for r in outcome.rows:
        row: dict[str, Any] = {k: v for k, v in asdict(r).items() if k != "estimate"}
        row["estimate"] = asdict(r.estimate) if r.estimate else None
        rows.append(row)
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "verdict": outcome.verdict,
        "exit_code": outcome.exit_code,
        "design": sampling.design if sampling is not None else None,
        "base": base,
        "head": head,
        "config": asdict(config),
        "rows": rows,
        "problems": list(outcome.problems),
        "artifacts": artifacts,
        "sampling": sampling_json(outcome, config, sampling) if sampling is not None else None,
    }


def regime_lines(base: Side, head: Side, metrics: Sequence[str]) -> list[str]:
    """One line per side and scenario whose runs hold more than one regime of a gated metric."""
    lines = []
    for scenario in sorted(base.runs):
        for label, side in (("base", base), ("head", head)):
            found = []
            for round_index, run in enumerate(side.runs.get(scenario, ())):
                for metric in metrics:
                    regimes = find_regimes(run.values(metric))
                    if len(regimes) > 1:
                        where = f"round {round_index} " if len(side.runs[scenario]) > 1 else ""
                        found.append(where + describe(metric, regimes))
            if found:
                lines.append(f"{scenario}, {label}: " + "; ".join(found))
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
