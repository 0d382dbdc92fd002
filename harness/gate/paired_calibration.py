"""Calibration of the paired gate: false alarm and detection rates from pools of co-resident request pairs.

A pool is one condition (A/A, or the head slowed by a run-time injected delay, GPU-side or host-side)
measured on one co-resident server pair: per metric, the base and head value of every request pair in
time order. A trial is one gate decision on `n` CONSECUTIVE pairs from a random start, exactly what a
gate with `--requests n` sees, regimes and all; its verdict comes from harness.gate.paired_stats and
the gate's own verdict rule. Windows of one pool overlap, so the Wilson intervals are optimistic: the
report says how many disjoint windows the pool holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from harness.gate.calibration import wilson
from harness.gate.config import GateConfig
from harness.gate.paired_stats import PairedSeries, paired_ratio
from harness.gate.verdicts import continuous_verdict


@dataclass(frozen=True)
class PairedPool:
    """One condition's request pairs on one server pair: metric -> (base, head) values in pair order."""

    kind: str          # "aa", "gpu" or "host"
    slowdown: float    # nominal injected slowdown as a fraction of the base TPOT; 0 for A/A
    delay_us: int
    base: dict[str, np.ndarray]
    head: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        return "A/A" if self.kind == "aa" else f"+{self.slowdown:.0%} {self.kind}"

    def pairs(self, metric: str) -> int:
        return int(self.base[metric].size) if metric in self.base else 0

    def measured_ratio(self, metric: str) -> float:
        """Median per-pair ratio head/base over the whole pool."""
        return float(np.median(self.head[metric] / self.base[metric]))


@dataclass(frozen=True)
class PairedTrialPlan:
    """Decisions to simulate: window sizes (request pairs), trials per cell, seed."""

    pair_counts: tuple[int, ...]
    trials: int
    seed: int


@dataclass(frozen=True)
class PairedRate:
    """Verdict counts of one pool x metric x window size, and the median interval width."""

    label: str
    kind: str
    slowdown: float
    metric: str
    pairs: int
    regressions: int
    inconclusive: int
    trials: int
    disjoint_windows: int
    median_ci_width: float

    @property
    def rate(self) -> float:
        return self.regressions / self.trials

    def interval(self) -> tuple[float, float]:
        return wilson(self.regressions, self.trials)


def evaluate_paired(pools: list[PairedPool], plan: PairedTrialPlan, config: GateConfig,
                    metrics: tuple[str, ...]) -> list[PairedRate]:
    """Rates for every pool x metric x window size the pool is long enough for."""
    rng = np.random.default_rng(plan.seed)
    rates = []
    for pool in pools:
        for metric in metrics:
            total = pool.pairs(metric)
            rule = config.rule(metric)
            for n in plan.pair_counts:
                if n > total or n < 8:
                    continue
                starts = rng.integers(0, total - n + 1, size=plan.trials)
                verdicts, widths = [], []
                for k, start in enumerate(starts):
                    series = PairedSeries(pool.base[metric][start:start + n], pool.head[metric][start:start + n])
                    est = paired_ratio([series], resamples=config.bootstrap_resamples,
                                       confidence=config.confidence, seed=plan.seed + k)
                    verdicts.append(continuous_verdict(est, rule, config)[0])
                    widths.append(est.ci_width)
                rates.append(PairedRate(pool.label, pool.kind, pool.slowdown, metric, n,
                                        verdicts.count("regression"), verdicts.count("inconclusive"),
                                        plan.trials, total // n, float(np.median(widths))))
    return rates


def fast_config(config: GateConfig, resamples: int) -> GateConfig:
    """The gate config with fewer bootstrap resamples (thousands of simulated decisions)."""
    return replace(config, bootstrap_resamples=resamples)


def markdown_table(rates: list[PairedRate], metric: str, seconds_per_pair: float | None) -> str:
    """One row per pool, one column per window size: share called `regression` [Wilson 95%]."""
    mine = [r for r in rates if r.metric == metric]
    counts = sorted({r.pairs for r in mine})
    head = "| condition | " + " | ".join(_count_label(n, seconds_per_pair) for n in counts) + " |"
    lines = [head, "|---|" + "---|" * len(counts)]
    for label in dict.fromkeys(r.label for r in mine):
        cells = []
        by = {r.pairs: r for r in mine if r.label == label}
        for n in counts:
            r = by.get(n)
            if r is None:
                cells.append("-")
                continue
            lo, hi = r.interval()
            cells.append(f"{r.rate:.1%} [{lo:.1%}, {hi:.1%}] w={r.median_ci_width:.2%}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _count_label(n: int, seconds_per_pair: float | None) -> str:
    return f"n={n}" if seconds_per_pair is None else f"n={n} ({n * seconds_per_pair:.0f} s)"
