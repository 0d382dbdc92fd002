"""Calibration of the gate: false alarm and detection rates from pools of live per-request samples.

A pool holds, for one condition (A/A, or head slowed by an injected decode delay), the per-request
TPOT of several interleaved rounds, each round one base and one head server start. A trial is one
gate decision on a subsample: `rounds` paired rounds drawn without replacement, `n // rounds`
requests drawn without replacement from each, exactly the shape of `harness gate --rounds`.
Trials share the pool's server starts, so the rates' intervals are somewhat optimistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.gate.config import GateConfig
from harness.gate.stats import median_ratio
from harness.gate.verdicts import continuous_verdict

METRIC = "tpot_ms"


@dataclass(frozen=True)
class Pool:
    """Live samples of one condition: per round, the base and the head requests."""

    slowdown: float  # nominal injected slowdown as a fraction of base TPOT; 0 = A/A
    delay_us: int
    base: tuple[np.ndarray, ...]
    head: tuple[np.ndarray, ...]

    def measured_ratio(self) -> float:
        return float(np.median(np.concatenate(self.head)) / np.median(np.concatenate(self.base)))


@dataclass(frozen=True)
class TrialPlan:
    """How many decisions to simulate and of what shape."""

    request_counts: tuple[int, ...]  # per side, split evenly across rounds
    rounds: int
    trials: int
    seed: int


@dataclass(frozen=True)
class Rate:
    """How often a verdict came out among trials, with a Wilson 95% interval."""

    slowdown: float
    requests: int
    threshold: float
    regressions: int
    inconclusive: int
    trials: int

    @property
    def rate(self) -> float:
        return self.regressions / self.trials

    def interval(self) -> tuple[float, float]:
        return wilson(self.regressions, self.trials)


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound at 0 and near 1%)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(pools: list[Pool], plan: TrialPlan, config: GateConfig, thresholds: tuple[float, ...]) -> list[Rate]:
    """Rates for every pool x request count x threshold; the trials are shared across thresholds."""
    rng = np.random.default_rng(plan.seed)
    rates = []
    for pool in pools:
        if len(pool.base) < plan.rounds or len(pool.head) < plan.rounds:
            raise ValueError(f"pool at slowdown {pool.slowdown} has {len(pool.base)} rounds, plan needs {plan.rounds}")
        for n in plan.request_counts:
            counts = {t: [0, 0] for t in thresholds}
            for trial in range(plan.trials):
                base, head = _draw(pool, n, plan.rounds, rng)
                est = median_ratio(base, head, resamples=config.bootstrap_resamples, confidence=config.confidence,
                                   seed=config.seed + trial)
                for t in thresholds:
                    verdict, _ = continuous_verdict(est, config.with_threshold(METRIC, t).rule(METRIC), config)
                    counts[t][0] += verdict == "regression"
                    counts[t][1] += verdict == "inconclusive"
            rates += [Rate(pool.slowdown, n, t, c[0], c[1], plan.trials) for t, c in counts.items()]
    return rates


def _draw(pool: Pool, n: int, rounds: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    chosen = rng.choice(len(pool.base), size=rounds, replace=False)
    per_round = max(1, n // rounds)
    base = [_subsample(pool.base[k], per_round, rng) for k in chosen]
    head = [_subsample(pool.head[k], per_round, rng) for k in chosen]
    return base, head


def _subsample(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if k >= values.size:
        return values
    return rng.choice(values, size=k, replace=False)


def markdown_table(rates: list[Rate], pools: list[Pool], threshold: float) -> str:
    """Rows: slowdown (0 = A/A false alarms); columns: requests per side; cells: rate [95% CI]."""
    counts = sorted({r.requests for r in rates})
    by_key = {(r.slowdown, r.requests): r for r in rates if r.threshold == threshold}
    lines = [f"| injected slowdown (measured) | delay us | {' | '.join(f'n={n}' for n in counts)} |",
             "|---|---|" + "---|" * len(counts)]
    for pool in pools:
        label = "A/A" if pool.slowdown == 0 else f"+{pool.slowdown:.0%}"
        cells = []
        for n in counts:
            r = by_key[(pool.slowdown, n)]
            lo, hi = r.interval()
            cells.append(f"{r.rate:.1%} [{lo:.1%}, {hi:.1%}]")
        lines.append(f"| {label} ({pool.measured_ratio() - 1:+.2%}) | {pool.delay_us} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
