"""Median ratio head/base with a seeded, round-stratified percentile bootstrap, plus Mann-Whitney U."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


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
    p_value: float  # Mann-Whitney U, two-sided

    @property
    def ci_width(self) -> float:
        return self.ci_high - self.ci_low


def median_ratio(base: Sequence[np.ndarray], head: Sequence[np.ndarray], *, resamples: int,
                 confidence: float, seed: int) -> RatioEstimate:
    """Compare per-request samples, each side given as one array per round.

    The bootstrap resamples requests within each round so every replicate keeps the rounds'
    sizes: interleaved A B A B rounds then contribute to both sides as they did when measured.
    """
    base_all, head_all = np.concatenate(base), np.concatenate(head)
    if base_all.size == 0 or head_all.size == 0:
        raise ValueError("both sides need at least one sample")
    base_median, head_median = float(np.median(base_all)), float(np.median(head_all))
    if base_median <= 0:
        raise ValueError("base median is not positive; a ratio is undefined")
    rng = np.random.default_rng(seed)
    base_boot = _bootstrap_medians(base, resamples, rng)
    head_boot = _bootstrap_medians(head, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = head_boot / base_boot
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    if base_all.size > 1 or head_all.size > 1:
        p_value = float(stats.mannwhitneyu(head_all, base_all, alternative="two-sided").pvalue)
    else:
        p_value = 1.0
    return RatioEstimate(
        n_base=int(base_all.size), n_head=int(head_all.size),
        base_median=base_median, head_median=head_median, ratio=head_median / base_median,
        ci_low=float(low), ci_high=float(high), p_value=p_value,
    )


def _bootstrap_medians(groups: Sequence[np.ndarray], resamples: int, rng: np.random.Generator) -> np.ndarray:
    drawn = [g[rng.integers(0, g.size, size=(resamples, g.size))] for g in groups if g.size]
    return np.median(np.concatenate(drawn, axis=1), axis=1)
