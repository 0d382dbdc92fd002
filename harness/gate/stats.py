"""Median ratio head/base with a seeded bootstrap interval, plus Mann-Whitney U.

One round per side: a percentile bootstrap of the ratio of medians, resampling requests.
The same number (>= 2) of interleaved rounds on both sides: base round k and head round k form a
pair whose log median ratio cancels drift both saw; the pairs are combined by a DerSimonian-Laird
random-effects mean (each pair's variance from a bootstrap of its two medians), so variation from
server start to server start beyond request noise (tau^2) widens the interval instead of raising
false alarms; when Cochran's Q says the pairs disagree beyond the calibrated between-start SD (the
floor), the interval uses Student t (k-1 df).
Measured rates: docs/gate.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

HETEROGENEITY_ALPHA = 0.10  # Cochran's Q test level above which round pairs count as disagreeing


@dataclass(frozen=True)
class RatioEstimate:
    """Point estimate and interval of median(head) / median(base) for one metric."""

    n_base: int
    n_head: int
    base_median: float
    head_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float  # Mann-Whitney U on the pooled requests; paired: the interval's own two-sided test
    rounds: int     # round pairs combined (0: request-level bootstrap, or one paired server-start pair)
    design: str = "unpaired"  # "paired": matched request pairs (harness.gate.paired_stats)
    block_length: int = 0     # paired: moving-block bootstrap block length (largest over start pairs)
    start_bound: bool = False  # paired: the calibrated between-start SD outweighs the within-pair noise,
    # so more request pairs on the same servers cannot narrow the interval; more server-start pairs can
    heterogeneous: bool = False  # several start pairs disagree beyond the calibrated between-start SD

    @property
    def ci_width(self) -> float:
        return self.ci_high - self.ci_low


def median_ratio(base: Sequence[np.ndarray], head: Sequence[np.ndarray], *, resamples: int,
                 confidence: float, seed: int) -> RatioEstimate:
    """Compare per-request samples, each side given as one array per round."""
    # Pairs need every round of both sides measured; otherwise only the request-level bootstrap applies.
    pairs = len(base) if len(base) == len(head) >= 2 and all(
        g.size and np.median(g) > 0 for g in (*base, *head)) else 0
    base = [g for g in base if g.size]
    head = [g for g in head if g.size]
    if not base or not head:
        raise ValueError("both sides need at least one sample")
    base_all, head_all = np.concatenate(base), np.concatenate(head)
    base_median, head_median = float(np.median(base_all)), float(np.median(head_all))
    if base_median <= 0:
        raise ValueError("base median is not positive; a ratio is undefined")
    rng = np.random.default_rng(seed)
    if pairs:
        low, high = _random_effects_interval(base, head, resamples, confidence, rng)
    else:
        base_boot = _stratified_medians(base, resamples, rng)
        head_boot = _stratified_medians(head, resamples, rng)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = head_boot / base_boot
        tail = (1.0 - confidence) / 2.0
        low, high = (float(q) for q in np.quantile(ratios, [tail, 1.0 - tail]))
    if base_all.size > 1 or head_all.size > 1:
        p_value = float(stats.mannwhitneyu(head_all, base_all, alternative="two-sided").pvalue)
    else:
        p_value = 1.0
    return RatioEstimate(
        n_base=int(base_all.size), n_head=int(head_all.size),
        base_median=base_median, head_median=head_median, ratio=head_median / base_median,
        ci_low=low, ci_high=high, p_value=p_value, rounds=pairs,
    )


def _stratified_medians(groups: Sequence[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    # Requests resampled within each round, so every replicate keeps the rounds' sizes.
    drawn = [g[rng.integers(0, g.size, size=(resamples, g.size))] for g in groups]
    return np.median(np.concatenate(drawn, axis=1), axis=1)


def _random_effects_interval(base: Sequence[np.ndarray], head: Sequence[np.ndarray], resamples: int,
                             confidence: float, rng: np.random.Generator) -> tuple[float, float]:
    """DerSimonian-Laird interval of the mean log(median head_k / median base_k) over round pairs k."""
    logs, variances = [], []
    for b, h in zip(base, head, strict=True):
        logs.append(np.log(np.median(h) / np.median(b)))
        variances.append(_log_median_variance(b, resamples, rng) + _log_median_variance(h, resamples, rng))
    pooled = dersimonian_laird(np.array(logs), np.array(variances), confidence)
    return float(np.exp(pooled.low)), float(np.exp(pooled.high))


@dataclass(frozen=True)
class Pooled:
    """A random-effects mean of per-pair log ratios: centre, interval, two-sided p of centre = 0."""

    centre: float
    low: float
    high: float
    p_value: float
    heterogeneous: bool  # Cochran's Q says the pairs disagree beyond the floor: Student t was used


def dersimonian_laird(y: np.ndarray, v: np.ndarray, confidence: float, tau2_floor: float = 0.0) -> Pooled:
    """Random-effects mean of estimates y with variances v.

    `tau2_floor`: a between-pair variance known from calibration; tau^2 is never taken below it."""
    v = np.maximum(v, 1e-12)  # a constant round has no variance
    w = 1.0 / v
    mean_fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - mean_fixed) ** 2))
    tau2 = max(tau2_floor, (q - (y.size - 1)) / float(np.sum(w) - np.sum(w * w) / np.sum(w)))
    w_star = 1.0 / (v + tau2)
    centre = float(np.sum(w_star * y) / np.sum(w_star))
    # When the pairs clearly disagree (Cochran's Q), tau^2 itself rests on only k pairs: a Student t
    # with k-1 degrees of freedom keeps false alarms down (normal quantile: 5% at tau 9%, 3 rounds).
    # Disagreement is judged against the calibrated floor: pairs that sit apart by about the between-start
    # SD the calibration measured confirm it, and t with 1 df on two such pairs made a useless interval
    # (real sglang, H100: TPOT [-85%, +546%]).
    level = 0.5 + confidence / 2.0
    w_floor = 1.0 / (v + tau2_floor)
    mean_floor = float(np.sum(w_floor * y) / np.sum(w_floor))
    q_floor = float(np.sum(w_floor * (y - mean_floor) ** 2))
    heterogeneous = stats.chi2.sf(q_floor, df=y.size - 1) < HETEROGENEITY_ALPHA
    dist = stats.t(df=y.size - 1) if heterogeneous else stats.norm()
    se = 1.0 / float(np.sqrt(np.sum(w_star)))
    half = float(dist.ppf(level)) * se
    return Pooled(centre, centre - half, centre + half, float(2 * dist.sf(abs(centre) / se)), bool(heterogeneous))


def _log_median_variance(values: np.ndarray, resamples: int, rng: np.random.Generator) -> float:
    medians = np.median(values[rng.integers(0, values.size, size=(resamples, values.size))], axis=1)
    return float(np.var(np.log(medians)))
