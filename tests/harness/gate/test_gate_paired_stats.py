"""Paired statistic on synthetic series with fixed seeds: regimes, block length, random effects, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gate_synthetic import regime_series

from harness.gate.config import load_config
from harness.gate.paired_stats import (
    PairedSeries,
    block_bootstrap,
    block_length,
    matched_pairs,
    paired_ratio,
    politis_white,
)
from harness.gate.stats import median_ratio
from harness.gate.verdicts import continuous_verdict

CONFIG = load_config()
RULE = CONFIG.rule("tpot_ms")


def _paired_verdict(series: list[PairedSeries], seed: int = 1) -> tuple[str, float, float]:
    est = paired_ratio(series, resamples=500, confidence=0.95, seed=seed)
    return continuous_verdict(est, RULE, CONFIG)[0], est.ci_low, est.ci_high


def test_aa_interval_covers_one_and_is_narrow_under_regimes() -> None:
    verdict, low, high = _paired_verdict([regime_series(3, 30, 1.0)])
    assert low < 1.0 < high
    assert high - low < 0.06  # the 60% regime swings cancel inside the pairs (unpaired: > 20% wide)
    assert verdict == "no_change"


def test_ten_percent_is_caught_where_the_unpaired_statistic_cannot_tell() -> None:
    # 60 regime series of 30 pairs, +10% on head: the paired interval catches every one; the same requests
    # compared as two unpaired samples (median ratio, request bootstrap) miss about half (measured: 29 of
    # 60 caught, the rest inconclusive), because the regime mix of each side swamps the 10%.
    paired, unpaired = 0, 0
    for seed in range(60):
        series = regime_series(seed, 30, 1.10)
        paired += _paired_verdict([series], seed)[0] == "regression"
        est = median_ratio([series.base], [series.head], resamples=500, confidence=0.95, seed=seed)
        unpaired += continuous_verdict(est, RULE, CONFIG)[0] == "regression"
    assert paired == 60
    assert unpaired <= 40


def test_aa_false_alarms_and_coverage_over_many_regime_series() -> None:
    # 200 A/A series of 30 pairs: no regression verdict, and the 95% interval holds 1 at least 90% of the time.
    covered, regressions = 0, 0
    for seed in range(200):
        est = paired_ratio([regime_series(1000 + seed, 30, 1.0)], resamples=500, confidence=0.95, seed=seed)
        covered += est.ci_low <= 1.0 <= est.ci_high
        regressions += continuous_verdict(est, RULE, CONFIG)[0] == "regression"
    assert covered / 200 >= 0.90
    assert regressions == 0


def test_block_length_grows_with_autocorrelation() -> None:
    rng = np.random.default_rng(5)
    white = rng.normal(0, 1, 200)
    ar = np.zeros(200)
    for i in range(1, 200):
        ar[i] = 0.8 * ar[i - 1] + rng.normal(0, 1)
    assert politis_white(white) < 2.0
    assert politis_white(ar) > 4.0
    assert block_length(white) == 1
    assert block_length(ar) == round(politis_white(ar))
    assert block_length(np.ones(30)) == 1  # a constant series
    assert block_length(np.arange(5.0)) == 1  # too short to estimate
    assert 5 <= block_length(np.repeat([0.0, 1.0], 15)) <= 10  # two long regimes: long blocks, at most n / 3


def test_block_bootstrap_keeps_blocks_of_consecutive_pairs() -> None:
    d = np.arange(12.0)
    rng = np.random.default_rng(0)
    # With the trim at 0 a block of 12 in a series of 12 is the series rotated: its mean never changes.
    means = block_bootstrap(d, 12, 50, rng)
    np.testing.assert_allclose(means, np.full(50, np.mean(d[2:-2])), rtol=0, atol=1e-12)


def test_same_seed_same_interval_and_scale_free() -> None:
    series = regime_series(7, 30, 1.03)
    a = paired_ratio([series], resamples=800, confidence=0.95, seed=42)
    b = paired_ratio([series], resamples=800, confidence=0.95, seed=42)
    c = paired_ratio([PairedSeries(series.base * 1000, series.head * 1000)], resamples=800, confidence=0.95,
                     seed=42)
    assert a == b
    assert (a.ratio, a.ci_low, a.ci_high) == pytest.approx((c.ratio, c.ci_low, c.ci_high), rel=1e-12)


def test_server_start_pairs_combine_by_random_effects() -> None:
    # Three server pairs, each with its own process-level ratio (+0%, +6%, -5%): the combined interval
    # must be wider than any single pair's, and hold all of them.
    starts = [regime_series(10 + i, 30, effect) for i, effect in enumerate((1.0, 1.06, 0.95))]
    one = paired_ratio(starts[:1], resamples=1000, confidence=0.95, seed=0)
    combined = paired_ratio(starts, resamples=1000, confidence=0.95, seed=0)
    assert combined.rounds == 3 and one.rounds == 0
    assert combined.ci_width > one.ci_width
    assert combined.ci_low < 0.95 * 1.02 and combined.ci_high > 1.06 * 0.98
    assert combined.n_base == 90 and combined.design == "paired"


def test_pairs_are_matched_by_index() -> None:
    series = matched_pairs({0: 10.0, 1: 11.0, 3: 12.0}, {3: 13.0, 0: 20.0, 2: 5.0})
    assert series.base.tolist() == [10.0, 12.0] and series.head.tolist() == [20.0, 13.0]


@pytest.mark.parametrize(("series", "message"), [
    ([], "no request pair"),
    ([PairedSeries(np.array([1.0, 2.0]), np.array([1.0]))], "differ in length"),
    ([PairedSeries(np.array([1.0, 0.0]), np.array([1.0, 1.0]))], "not positive"),
])
def test_bad_series_raise(series: list[PairedSeries], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_ratio(series, resamples=100, confidence=0.95, seed=0)


def test_calibrated_start_sd_keeps_a_per_process_offset_from_a_false_alarm() -> None:
    # Real sglang on an H200: two servers of one build sat +0.91% apart in decode_gpu_ms while one pair's
    # own interval was a few hundredths of a percent wide (results/gate/2026-12-07-h200-sglang). Here: an
    # A/A with a +0.9% process offset and 0.05% request noise. Without the calibrated between-start SD the
    # interval excludes 1 by far; with start_sd 0.63% it covers 1 and says more request pairs cannot help.
    rng = np.random.default_rng(3)
    base = 0.267 * rng.lognormal(0.0, 0.0005, 150)
    series = [PairedSeries(base, base * 1.009 * rng.lognormal(0.0, 0.0005, 150))]
    naive = paired_ratio(series, resamples=500, confidence=0.95, seed=0)
    floored = paired_ratio(series, resamples=500, confidence=0.95, seed=0, start_sd=0.0063)
    assert naive.ci_low > 1.008 and not naive.start_bound
    assert floored.ci_low < 1.0 < floored.ci_high and floored.start_bound
    # Several start pairs that happen to agree (+0.9% each): the floor holds tau^2 up, so the interval
    # narrows as 1/sqrt(3) and not to the within-pair width, and +0.9% stays short of a +1% regression.
    agreeing = [PairedSeries(base, base * 1.009 * rng.lognormal(0.0, 0.0005, 150)) for _ in range(3)]
    three = paired_ratio(agreeing, resamples=500, confidence=0.95, seed=0, start_sd=0.0063)
    assert three.rounds == 3 and three.ci_width == pytest.approx(floored.ci_width / np.sqrt(3), rel=0.25)
    assert continuous_verdict(three, CONFIG.rule("decode_gpu_ms"), CONFIG)[0] == "no_change"
    # A real +4% change is still caught from 3 server-start pairs with the floor.
    slower = [PairedSeries(base, base * 1.04 * (1 + 0.006 * s) * rng.lognormal(0.0, 0.0005, 150))
              for s in (-1, 0, 1)]
    caught = paired_ratio(slower, resamples=500, confidence=0.95, seed=0, start_sd=0.0063)
    assert continuous_verdict(caught, CONFIG.rule("decode_gpu_ms"), CONFIG)[0] == "regression"
