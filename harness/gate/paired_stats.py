"""Paired head/base statistic: per-pair log ratios, a moving-block bootstrap, random effects over server starts.

One co-resident server pair gives a series of request pairs in time order; d_i = log(head_i / base_i).
The estimate is the interquartile mean of d (the 25%-trimmed mean: a pair hit by a stall on one
side lands in the tails; ~90% as efficient as the mean on normal noise). Its standard error comes
from a circular moving-block bootstrap over consecutive pairs, so autocorrelated regimes widen it;
the block length is Politis & White's automatic choice (with Patton, Politis & White's 2009
correction), at most n/3, and 1 when the dependence is net negative. The interval is est ± t * SE with t on (n / b - 1) degrees of freedom,
since n pairs in blocks of b carry about n / b independent pieces. The ABBA order keeps a cost of
switching servers (the second request of a pair meeting a colder cache) from biasing the estimate:
it adds to half the pairs and takes from the other half. Several server-start pairs are combined by
the DerSimonian-Laird random-effects mean of their per-start estimates (harness.gate.stats). Why
and how well: docs/gate.md, Paired design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.gate.stats import RatioEstimate, dersimonian_laird

TRIM = 0.25  # share cut from each end of the sorted log ratios before averaging (interquartile mean)


@dataclass(frozen=True)
class PairedSeries:
    """One server-start pair's matched requests in pair order: base[i] and head[i] form one pair."""

    base: np.ndarray
    head: np.ndarray

    def log_ratios(self) -> np.ndarray:
        return np.log(self.head / self.base)


@dataclass(frozen=True)
class StartEstimate:
    """One server-start pair: trimmed-mean log ratio, its block-bootstrap variance and block length."""

    log_ratio: float
    variance: float
    pairs: int
    block_length: int


def block_length(d: np.ndarray) -> int:
    """Politis-White automatic block length for the circular bootstrap, between 1 and n/3."""
    if d.size < 8:
        return 1
    return int(min(max(round(politis_white(d)), 1), max(1, d.size // 3)))


def politis_white(x: np.ndarray) -> float:
    """Politis & White (2004) optimal block length for the circular block bootstrap (PPW 2009 constant)."""
    n = x.size
    e = x - x.mean()
    # K_n and the significance bound of the autocorrelation scan, as in the paper.
    kn = max(5, int(np.ceil(np.sqrt(np.log10(n)))))
    m_max = min(int(np.ceil(np.sqrt(n))) + kn, n - 1)
    acov = np.array([e[k:] @ e[:n - k] / n for k in range(m_max + 1)])
    if acov[0] <= 0:
        return 1.0
    rho = np.abs(acov / acov[0])
    bound = 2.0 * np.sqrt(np.log10(n) / n)
    m_hat = m_max
    for m in range(m_max - kn + 1):
        if np.all(rho[m + 1:m + kn + 1] < bound):
            m_hat = m
            break
    big_m = min(2 * max(m_hat, 1), m_max)
    k = np.arange(1, big_m + 1)
    flat_top = np.where(k / big_m <= 0.5, 1.0, 2.0 * (1.0 - k / big_m))
    g = 2.0 * np.sum(flat_top * k * acov[k])
    spectrum0 = acov[0] + 2.0 * np.sum(flat_top * acov[k])
    # Net negative dependence (e.g. ABBA's switching cost alternating in sign): resampling single
    # pairs overstates the variance, the safe side, and keeps every degree of freedom.
    if spectrum0 <= acov[0] or g == 0:
        return 1.0
    d_cb = 4.0 / 3.0 * spectrum0 ** 2
    b = (2.0 * g ** 2 / d_cb) ** (1 / 3) * n ** (1 / 3)
    return float(min(b, np.ceil(min(3 * np.sqrt(n), n / 3))))


def trimmed_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(stats.trim_mean(values, TRIM, axis=axis))


def block_bootstrap(d: np.ndarray, block: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Trimmed means of circular moving-block resamples of d (blocks of consecutive pairs)."""
    n = d.size
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(resamples, blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(resamples, -1)[:, :n] % n
    return trimmed_mean(d[index], axis=1)


def start_estimate(series: PairedSeries, resamples: int, rng: np.random.Generator) -> StartEstimate:
    d = series.log_ratios()
    block = block_length(d)
    boot = block_bootstrap(d, block, resamples, rng)
    return StartEstimate(float(trimmed_mean(d)), float(np.var(boot, ddof=1)), int(d.size), block)


def paired_ratio(starts: Sequence[PairedSeries], *, resamples: int, confidence: float, seed: int,
                 start_sd: float = 0.0) -> RatioEstimate:
    """Ratio head/base from matched request pairs of one or more server-start pairs.

    `start_sd`: the calibrated between-start SD of the log ratio (MetricRule.start_sd_for): added to a
    single start pair's variance and a floor under the random-effects tau^2 of several."""
    for s in starts:
        if s.base.shape != s.head.shape:
            raise ValueError("paired series differ in length")
        if np.any(s.base <= 0) or np.any(s.head <= 0):
            raise ValueError("a paired value is not positive; a log ratio is undefined")
    starts = [s for s in starts if s.base.size]
    if not starts:
        raise ValueError("no request pair has a value on both sides")
    rng = np.random.default_rng(seed)
    per_start = [start_estimate(s, resamples, rng) for s in starts]
    level = 0.5 + confidence / 2.0
    heterogeneous = False
    if len(per_start) == 1:
        only = per_start[0]
        df = max(1, only.pairs // only.block_length - 1)
        variance = only.variance + start_sd ** 2
        half = float(stats.t.ppf(level, df)) * np.sqrt(variance)
        centre = only.log_ratio
        low, high = centre - half, centre + half
        if variance > 0:
            p_value = float(2 * stats.t.sf(abs(centre) / np.sqrt(variance), df))
        else:  # every pair the same ratio
            p_value = 1.0 if centre == 0 else 0.0
    else:
        y = np.array([s.log_ratio for s in per_start])
        v = np.array([s.variance for s in per_start])
        pooled = dersimonian_laird(y, v, confidence, tau2_floor=start_sd ** 2)
        centre, low, high, p_value = pooled.centre, pooled.low, pooled.high, pooled.p_value
        heterogeneous = pooled.heterogeneous
    base_all = np.concatenate([s.base for s in starts])
    head_all = np.concatenate([s.head for s in starts])
    return RatioEstimate(
        n_base=int(base_all.size), n_head=int(head_all.size),
        base_median=float(np.median(base_all)), head_median=float(np.median(head_all)),
        ratio=float(np.exp(centre)), ci_low=float(np.exp(low)), ci_high=float(np.exp(high)),
        p_value=p_value, rounds=len(per_start) if len(per_start) > 1 else 0,
        design="paired", block_length=max(s.block_length for s in per_start),
        start_bound=start_sd ** 2 > float(np.mean([s.variance for s in per_start])),
        heterogeneous=heterogeneous,
    )


def matched_pairs(base: dict[int, float], head: dict[int, float]) -> PairedSeries:
    """The pairs measured on both sides (pair index -> value), in pair order."""
    both = sorted(set(base) & set(head))
    return PairedSeries(np.array([base[k] for k in both], dtype=float), np.array([head[k] for k in both], dtype=float))
