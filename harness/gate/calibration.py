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
from harness.gate.stats import RatioEstimate, median_ratio
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
                _tally(est, thresholds, config, counts)
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


def markdown_table(rates: list[Rate], pools: list[Pool] | None, threshold: float) -> str:
    """Rows: slowdown (0 = A/A false alarms); columns: requests per side; cells: rate [95% CI].

    With pools the rows also show the measured slowdown and the injected delay; without (projections)
    only the slowdown.
    """
    counts = sorted({r.requests for r in rates})
    by_key = {(r.slowdown, r.requests): r for r in rates if r.threshold == threshold}
    if pools is None:
        rows = [(s, f"{'A/A' if s == 0 else f'+{s:.0%}'}") for s in sorted({r.slowdown for r in rates})]
        lines = [f"| slowdown | {' | '.join(f'n={n}' for n in counts)} |", "|---|" + "---|" * len(counts)]
    else:
        rows = [(p.slowdown, f"{'A/A' if p.slowdown == 0 else f'+{p.slowdown:.0%}'} ({p.measured_ratio() - 1:+.2%}) "
                             f"| {p.delay_us}") for p in pools]
        lines = [f"| injected slowdown (measured) | delay us | {' | '.join(f'n={n}' for n in counts)} |",
                 "|---|---|" + "---|" * len(counts)]
    for slowdown, label in rows:
        cells = []
        for n in counts:
            r = by_key[(slowdown, n)]
            lo, hi = r.interval()
            cells.append(f"{r.rate:.1%} [{lo:.1%}, {hi:.1%}]")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NoiseModel:
    """Measured noise of one machine: per-request relative residuals and the pair-level spread tau."""

    residuals: np.ndarray  # request / its round's median, pooled over every round of every pool
    tau: float             # sd of log(head/base) between round pairs beyond request noise (A/A pools)


def noise_model(pools: list[Pool], config: GateConfig, seed: int) -> NoiseModel:
    """Residuals from all pools; tau from the A/A pool by the DerSimonian-Laird moment estimate."""
    residuals = np.concatenate([r / np.median(r) for p in pools for r in (*p.base, *p.head)])
    aa = next(p for p in pools if p.slowdown == 0.0)
    rng = np.random.default_rng(seed)
    logs = np.log([np.median(h) / np.median(b) for b, h in zip(aa.base, aa.head, strict=True)])
    var = np.array([_log_median_var(b, config.bootstrap_resamples, rng) + _log_median_var(h, config.bootstrap_resamples, rng)
                    for b, h in zip(aa.base, aa.head, strict=True)])
    w = 1.0 / np.maximum(var, 1e-12)
    mean = np.sum(w * logs) / np.sum(w)
    q = float(np.sum(w * (logs - mean) ** 2))
    tau2 = max(0.0, (q - (logs.size - 1)) / float(np.sum(w) - np.sum(w * w) / np.sum(w))) if logs.size > 1 else 0.0
    return NoiseModel(residuals=residuals, tau=float(np.sqrt(tau2)))


def project(model: NoiseModel, slowdowns: tuple[float, ...], plan: TrialPlan, config: GateConfig,
            thresholds: tuple[float, ...]) -> list[Rate]:
    """Rates for decisions larger than the pools allow, drawing requests from the measured residuals."""
    rng = np.random.default_rng(plan.seed)
    rates = []
    for slowdown in (0.0, *slowdowns):
        for n in plan.request_counts:
            per_round = max(1, n // plan.rounds)
            counts = {t: [0, 0] for t in thresholds}
            for trial in range(plan.trials):
                shifts = rng.normal(0.0, model.tau, size=plan.rounds)
                base = [rng.choice(model.residuals, per_round) for _ in range(plan.rounds)]
                head = [(1 + slowdown) * np.exp(s) * rng.choice(model.residuals, per_round) for s in shifts]
                est = median_ratio(base, head, resamples=config.bootstrap_resamples, confidence=config.confidence,
                                   seed=config.seed + trial)
                _tally(est, thresholds, config, counts)
            rates += [Rate(slowdown, n, t, c[0], c[1], plan.trials) for t, c in counts.items()]
    return rates


def _log_median_var(values: np.ndarray, resamples: int, rng: np.random.Generator) -> float:
    medians = np.median(values[rng.integers(0, values.size, size=(resamples, values.size))], axis=1)
    return float(np.var(np.log(medians)))


def _tally(est: RatioEstimate, thresholds: tuple[float, ...], config: GateConfig,
           counts: dict[float, list[int]]) -> None:
    """Count one simulated decision per threshold: [regressions, inconclusives]."""
    for t in thresholds:
        verdict, _ = continuous_verdict(est, config.with_threshold(METRIC, t).rule(METRIC), config)
        counts[t][0] += verdict == "regression"
        counts[t][1] += verdict == "inconclusive"
