"""`harness history RESULTS_DIR`: nightly results in commit order, change points per scenario and metric.

Every RESULTS_DIR/**/<scenario>/result.json is one point. Where a night also compared the commit with
the control build (`harness nightly`: RUN_DIR/control/<scenario>/control.json and the gate's
verdict.json), the ratio to the control is a second series per scenario and metric; the results of
those comparisons' own sides are not points of the absolute series. Commit order comes from a commits
file (oldest first, e.g. `git rev-list --reverse main > commits.txt`, given with --commits or found as
RESULTS_DIR/commits.txt), else from target.commit_time, else from the run's started_at.
Several results of one commit (re-runs) are merged into their median.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from harness.errors import entry_point
from harness.gate import plots
from harness.gate.config import load_config
from harness.gate.control_points import Comparison, comparison_dirs, load_comparison
from harness.gate.errors import GateInputError
from harness.gate.load import ScenarioRun, load_result
from harness.measure.changepoints import ChangePointConfig, Step, exact_changes, find_steps
from harness.store.atomic import atomic_write_json, atomic_write_text
from harness.store.result import RESULT_FILE

COMMITS_FILE = "commits.txt"
EXACT_METRICS = ("workspace_bytes",)
ABSOLUTE, RATIO_TO_CONTROL = "absolute", "ratio_to_control"


@dataclass(frozen=True)
class Series:
    """One scenario's metric across commits (oldest first) and the steps found in it."""

    scenario: str
    metric: str
    commits: tuple[str, ...]
    values: tuple[float, ...]
    steps: tuple[Step, ...]
    kind: str = ABSOLUTE  # or RATIO_TO_CONTROL: the commit over the control build, measured the same night
    intervals: tuple[tuple[float, float], ...] = ()  # ratio series: the gate's interval per commit
    order_keys: tuple[float, ...] = ()  # each commit's sort key, so series of one scenario share an axis

    def first_commits(self) -> list[str]:
        return [self.commits[s.index] for s in self.steps]

    @property
    def label(self) -> str:
        return self.metric if self.kind == ABSOLUTE else f"{self.metric} ÷ control"


class Ordered(Protocol):
    """What commit_order needs of a point: its commit, a time to order by, and a file to name."""

    @property
    def commit(self) -> str | None: ...

    @property
    def order_time(self) -> float | None: ...

    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class HistoryOptions:
    """Inputs and knobs of one `harness history` invocation."""

    results: Path
    commits_file: Path | None
    config: Path | None  # thresholds TOML: metrics and their practical thresholds
    out: Path
    beta: float
    min_size: int
    plots: bool


@entry_point("harness history")
def main(argv: list[str]) -> int:
    """Entry point; 0 when the history was analysed, 2 on missing or bad input."""
    if argv and argv[0] == "history":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    options = HistoryOptions(results=args.results_dir, commits_file=args.commits, config=args.config,
                             out=args.out or
                             args.results_dir / "history", beta=args.beta, min_size=args.min_size,
                             plots=not args.no_plots)
    series = analyse(options)
    print(write_history_report(series, options), end="")
    return 0


def analyse(options: HistoryOptions) -> list[Series]:
    """Load, order and scan every (scenario, metric) series."""
    if options.beta <= 0 or options.min_size < 1:
        raise GateInputError(f"--beta must be > 0 and --min-size >= 1, got {options.beta} and {options.min_size}")
    rules = load_config(options.config).metrics
    metrics = tuple(r.name for r in rules)
    runs = load_history(options.results, metrics)
    comparisons = load_comparisons(options.results, metrics)
    order = commit_order([*runs, *comparisons], options.commits_file or _default_commits_file(options.results))
    series = []
    for scenario in sorted({r.result.scenario for r in runs} | {c.scenario for c in comparisons}):
        mine = [r for r in runs if r.result.scenario == scenario and r.result.status == "ok"]
        controlled = [c for c in comparisons if c.scenario == scenario]
        for rule in rules:
            cfg = ChangePointConfig(beta=options.beta, min_size=options.min_size, min_rel_step=rule.threshold)
            commits, values = _per_commit(mine, order, lambda r, m=rule.name: _median(r.values(m)))
            if commits:
                series.append(Series(scenario, rule.name, commits, values, tuple(find_steps(np.array(values), cfg)),
                                     order_keys=tuple(order[c] for c in commits)))
            ratio = _ratio_series(scenario, rule.name, controlled, order, cfg)
            if ratio is not None:
                series.append(ratio)
        commits, values = _per_commit(mine, order, lambda r: r.result.workspace_bytes)
        if commits:
            series.append(Series(scenario, "workspace_bytes", commits, values,
                                 tuple(exact_changes(np.array(values))), order_keys=tuple(order[c] for c in commits)))
    return series


def _ratio_series(scenario: str, metric: str, comparisons: list[Comparison], order: dict[str, float],
                  cfg: ChangePointConfig) -> Series | None:
    """The ratio to the control across commits; several comparisons of one commit merged into their median."""
    by_commit: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for comparison in comparisons:
        ratio = comparison.ratio(metric)
        if ratio is not None:
            by_commit[comparison.commit].append((ratio.ratio, ratio.ci_low, ratio.ci_high))
    if not by_commit:
        return None
    commits = tuple(sorted(by_commit, key=lambda c: (order[c], c)))
    merged = [np.median(np.array(by_commit[c]), axis=0) for c in commits]
    values = tuple(float(m[0]) for m in merged)
    return Series(scenario, metric, commits, values, tuple(find_steps(np.array(values), cfg)), kind=RATIO_TO_CONTROL,
                  intervals=tuple((float(m[1]), float(m[2])) for m in merged),
                  order_keys=tuple(order[c] for c in commits))


def load_history(results: Path, metrics: tuple[str, ...]) -> list[ScenarioRun]:
    if not results.is_dir():
        raise GateInputError(f"{results}: results directory not found")
    # A comparison's own sides (the control's runs, the head's before it was stored per commit) are
    # read through its verdict, never as points of the commit's absolute series.
    inside = set(comparison_dirs(results))
    paths = sorted(p for p in results.glob(f"**/{RESULT_FILE}") if inside.isdisjoint(p.parents))
    if not paths:
        raise GateInputError(f"{results}: no {RESULT_FILE} found")
    runs = [load_result(p, metrics) for p in paths]
    for run in runs:
        if not run.commit:
            raise GateInputError(f"{run.path}: target.commit: missing; history orders results by commit")
    return runs


def load_comparisons(results: Path, metrics: tuple[str, ...]) -> list[Comparison]:
    """Every comparison with the control build under `results` (none: no ratio series)."""
    return [load_comparison(d, metrics) for d in comparison_dirs(results)]


def commit_order(runs: Sequence[Ordered], commits_file: Path | None) -> dict[str, float]:
    """Commit -> sort key: position in the commits file, else the earliest time seen for it."""
    if commits_file is not None:
        try:
            listed = [c.strip() for c in commits_file.read_text(encoding="utf-8").split() if c.strip()]
        except OSError as exc:
            raise GateInputError(f"{commits_file}: cannot read commits file: {exc.strerror}") from exc
        order: dict[str, float] = {}
        for run in runs:
            pos = _position(run.commit or "", listed)
            if pos is None:
                raise GateInputError(f"{run.path}: target.commit {run.commit} is not in {commits_file}")
            order[run.commit or ""] = pos
        return order
    times: dict[str, float] = {}
    for run in runs:
        if run.order_time is None:
            raise GateInputError(f"{run.path}: no target.commit_time or started_at to order it by; "
                                 f"add one or give --commits FILE (oldest first)")
        commit = run.commit or ""
        times[commit] = min(times.get(commit, run.order_time), run.order_time)
    seen: dict[float, str] = {}
    for commit, t in times.items():
        if t in seen:
            raise GateInputError(f"commits {seen[t]} and {commit} have the same order time {t}; "
                                 "give --commits FILE (oldest first) to order them")
        seen[t] = commit
    return times


def _position(commit: str, listed: list[str]) -> int | None:
    # Either side may be abbreviated: match by prefix.
    for i, c in enumerate(listed):
        if c.startswith(commit) or commit.startswith(c):
            return i
    return None


def _per_commit(runs: list[ScenarioRun], order: dict[str, float],
                value_of: Callable[[ScenarioRun], float | None]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    by_commit: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        value = value_of(run)
        if value is not None:
            by_commit[run.result.commit or ""].append(float(value))
    commits = sorted(by_commit, key=lambda c: (order[c], c))
    return tuple(commits), tuple(float(np.median(by_commit[c])) for c in commits)


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def write_history_report(series: list[Series], options: HistoryOptions) -> str:
    """history.md, history.json and one PNG per scenario and metric (absolute and ratio-to-control panels)."""
    lines = ["## Nightly history: change points", "",
             f"penalty {options.beta} x log(n) (noise-normalised kernel CPD, linear kernel), "
             f"min segment {options.min_size} commits; steps smaller than the metric's gate threshold "
             "are merged; workspace bytes: every change.", ""]
    if any(s.kind == RATIO_TO_CONTROL for s in series):
        lines += ["`METRIC ÷ control`: the commit over the pinned control build measured side by side the same "
                  "night (the paired gate's head/base estimate), so a machine-wide shift cancels in it.", ""]
    lines += ["| scenario | metric | commits | first commit of step | before | after | change |",
              "|---|---|---|---|---|---|---|"]
    plotted = _plots(series, options) if options.plots else {}
    records = []
    for s in series:
        plot = plotted.get((s.scenario, s.metric))
        for st, commit in zip(s.steps, s.first_commits(), strict=True):
            lines.append(f"| {s.scenario} | {s.label} | {len(s.values)} | `{commit}` | {st.before:.4g} | "
                         f"{st.after:.4g} | {st.relative:+.2%} |")
        if not s.steps:
            lines.append(f"| {s.scenario} | {s.label} | {len(s.values)} | none | - | - | - |")
        record = {"scenario": s.scenario, "metric": s.metric, "kind": s.kind, "label": s.label,
                  "commits": list(s.commits), "values": list(s.values), "plot": plot.name if plot else None,
                  "steps": [{**asdict(st), "commit": c, "relative": st.relative}
                            for st, c in zip(s.steps, s.first_commits(), strict=True)]}
        if s.intervals:
            record["intervals"] = [list(i) for i in s.intervals]
        records.append(record)
    text = "\n".join(lines) + "\n"
    atomic_write_text(options.out / "history.md", text)
    atomic_write_json(options.out / "history.json", {"schema_version": 1, "beta": options.beta,
                                                     "min_size": options.min_size, "series": records})
    return text


def _plots(series: list[Series], options: HistoryOptions) -> dict[tuple[str, str], Path]:
    """One PNG per scenario and metric: the absolute series above, the ratio to the control below."""
    groups: dict[tuple[str, str], list[Series]] = defaultdict(list)
    for s in series:
        groups[(s.scenario, s.metric)].append(s)
    paths = {}
    for (scenario, metric), group in groups.items():
        if max(len(s.values) for s in group) < 2:
            continue
        keys = sorted({(k, c) for s in group for k, c in zip(s.order_keys, s.commits, strict=True)})
        axis = [c for _, c in keys]
        panels = [_panel(s, axis) for s in sorted(group, key=lambda s: s.kind != ABSOLUTE)]
        paths[(scenario, metric)] = plots.history_panels(options.out / f"{scenario}-{metric}.png",
                                                         f"{scenario}: {metric}", axis, panels)
    return paths


def _panel(s: Series, axis: list[str]) -> plots.HistoryPanel:
    where = {c: i for i, c in enumerate(axis)}
    x = np.array([where[c] for c in s.commits])
    ratio = s.kind == RATIO_TO_CONTROL
    bands = np.array(s.intervals) if s.intervals else None
    return plots.HistoryPanel(ylabel=s.label, x=x, values=np.array(s.values),
                              change_points=tuple(int(x[st.index]) for st in s.steps),
                              low=bands[:, 0] if bands is not None else None,
                              high=bands[:, 1] if bands is not None else None,
                              reference=1.0 if ratio else None)


def _default_commits_file(results: Path) -> Path | None:
    path = results / COMMITS_FILE
    return path if path.is_file() else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness history", description=__doc__.splitlines()[0])
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="directory of nightly run directories")
    p.add_argument("--commits", type=Path, default=None, help="commit order, oldest first, one per line")
    p.add_argument("--out", type=Path, default=None, help="report directory (default RESULTS_DIR/history)")
    p.add_argument("--beta", type=float, default=ChangePointConfig.beta,
                   help="penalty per change point, times log(n), in noise-variance units (default 4)")
    p.add_argument("--min-size", type=int, default=ChangePointConfig.min_size,
                   help="fewest commits in a segment (default 2)")
    p.add_argument("--config", type=Path, default=None, help="thresholds TOML (default: the packaged one)")
    p.add_argument("--no-plots", action="store_true")
    return p
