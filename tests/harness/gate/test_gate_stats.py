"""Statistics and continuous verdicts on synthetic samples with a known shift."""

from __future__ import annotations

import numpy as np
import pytest
from gate_synthetic import tpot_samples

from harness.gate.config import load_config
from harness.gate.stats import dersimonian_laird, median_ratio
from harness.gate.verdicts import continuous_verdict

CONFIG = load_config()
RULE = CONFIG.rule("tpot_ms")


def _verdict(base: np.ndarray, head: np.ndarray, seed: int = 1) -> str:
    est = median_ratio([base], [head], resamples=1000, confidence=0.95, seed=seed)
    return continuous_verdict(est, RULE, CONFIG)[0]


@pytest.mark.parametrize(("scale", "expected"), [(1.10, "regression"), (1.05, "regression"),
                                                 (0.95, "improvement"), (1.0, "no_change"),
                                                 (1.005, "no_change")])
def test_known_shift_gives_expected_verdict(scale: float, expected: str) -> None:
    rng = np.random.default_rng(7)
    base, head = tpot_samples(rng, 60), tpot_samples(rng, 60, scale=scale)
    assert _verdict(base, head) == expected


def test_ratio_interval_covers_true_shift() -> None:
    # Coverage of the 95% interval over independent trials: the interval is honest, not just narrow.
    rng = np.random.default_rng(11)
    hits = 0
    trials = 200
    for i in range(trials):
        base, head = tpot_samples(rng, 40), tpot_samples(rng, 40, scale=1.03)
        est = median_ratio([base], [head], resamples=500, confidence=0.95, seed=i)
        hits += est.ci_low <= 1.03 <= est.ci_high
    assert hits / trials >= 0.90


def test_false_alarm_rate_on_aa_pairs_is_below_one_percent() -> None:
    rng = np.random.default_rng(13)
    verdicts = [_verdict(tpot_samples(rng, 30), tpot_samples(rng, 30), seed=i) for i in range(300)]
    assert verdicts.count("regression") / len(verdicts) <= 0.01
    assert verdicts.count("no_change") / len(verdicts) >= 0.95


def test_too_few_samples_is_inconclusive() -> None:
    rng = np.random.default_rng(3)
    est = median_ratio([tpot_samples(rng, 4)], [tpot_samples(rng, 4, scale=1.5)], resamples=500,
                       confidence=0.95, seed=0)
    verdict, reason = continuous_verdict(est, RULE, CONFIG)
    assert verdict == "inconclusive"
    assert "too few samples" in reason


def test_noisy_samples_are_inconclusive_not_no_change() -> None:
    rng = np.random.default_rng(5)
    base, head = tpot_samples(rng, 12, sigma=0.3), tpot_samples(rng, 12, sigma=0.3)
    est = median_ratio([base], [head], resamples=1000, confidence=0.95, seed=0)
    verdict, reason = continuous_verdict(est, RULE, CONFIG)
    assert est.ci_width > RULE.max_ci_width
    assert verdict == "inconclusive"
    assert "too noisy" in reason


def test_seeded_bootstrap_is_deterministic_and_scale_free() -> None:
    rng = np.random.default_rng(9)
    base, head = tpot_samples(rng, 25), tpot_samples(rng, 25, scale=1.02)
    a = median_ratio([base], [head], resamples=800, confidence=0.95, seed=42)
    b = median_ratio([base], [head], resamples=800, confidence=0.95, seed=42)
    c = median_ratio([base * 1000], [head * 1000], resamples=800, confidence=0.95, seed=42)
    assert a == b
    assert c.ci_low == pytest.approx(a.ci_low) and c.ci_high == pytest.approx(a.ci_high)
    assert a.ci_low < a.ratio < a.ci_high


def test_rounds_are_resampled_within_round() -> None:
    # Two rounds per side with a drift that hits both sides alike (interleaving): no regression.
    rng = np.random.default_rng(17)
    base = [tpot_samples(rng, 20), tpot_samples(rng, 20, scale=1.08)]
    head = [tpot_samples(rng, 20), tpot_samples(rng, 20, scale=1.08)]
    est = median_ratio(base, head, resamples=1000, confidence=0.95, seed=0)
    assert est.n_base == 40 and est.n_head == 40
    assert continuous_verdict(est, RULE, CONFIG)[0] != "regression"


def _rounds(rng: np.random.Generator, k: int, n: int, scale: float, level_sigma: float) -> list[np.ndarray]:
    # Every server start sits at its own level: the variation a request-level bootstrap cannot see.
    return [tpot_samples(rng, n, scale=scale * rng.lognormal(0, level_sigma)) for _ in range(k)]


def test_round_pairs_carry_server_start_variation() -> None:
    rng = np.random.default_rng(23)
    paired = pooled = 0
    trials = 150
    for i in range(trials):
        base, head = _rounds(rng, 5, 12, 1.0, 0.03), _rounds(rng, 5, 12, 1.0, 0.03)
        est = median_ratio(base, head, resamples=500, confidence=0.95, seed=i)
        assert est.rounds == 5
        paired += continuous_verdict(est, RULE, CONFIG)[0] == "regression"
        flat = median_ratio([np.concatenate(base)], [np.concatenate(head)], resamples=500, confidence=0.95, seed=i)
        pooled += continuous_verdict(flat, RULE, CONFIG)[0] == "regression"
    assert paired / trials <= 0.02
    assert pooled > 2 * max(paired, 1)  # pooling the rounds would cry wolf


def test_round_pairs_still_detect_a_clear_slowdown() -> None:
    rng = np.random.default_rng(29)
    base, head = _rounds(rng, 3, 30, 1.0, 0.005), _rounds(rng, 3, 30, 1.08, 0.005)
    est = median_ratio(base, head, resamples=1000, confidence=0.95, seed=0)
    assert continuous_verdict(est, RULE, CONFIG)[0] == "regression"


def test_start_pairs_that_sit_apart_by_the_calibrated_sd_keep_a_normal_interval() -> None:
    """Offsets drawn with the calibrated between-start SD: coverage holds, and two pairs are not a t(1) blow-up."""
    rng = np.random.default_rng(11)
    floor_sd, within = 0.0182, np.full(2, 0.0015 ** 2)  # the H100's TPOT start_sd; within-pair SD 0.15%
    misses, halves = 0, []
    for _ in range(2000):
        y = rng.normal(0.0, floor_sd, 2)
        pooled = dersimonian_laird(y, within, 0.95, tau2_floor=floor_sd ** 2)
        misses += not (pooled.low <= 0.0 <= pooled.high)
        halves.append((pooled.high - pooled.low) / 2)
    assert misses / 2000 <= 0.06
    # With t at 1 df the half-width would be 12.7 x the standard error; with the floor trusted it is ~1.96 x.
    assert np.median(halves) < 3 * 1.96 * floor_sd / np.sqrt(2)


def test_start_pairs_far_beyond_the_calibrated_sd_still_get_student_t() -> None:
    """Pairs 10 SDs apart contradict the calibration: the interval falls back to t with k-1 df."""
    y, v = np.array([-0.10, 0.10]), np.full(2, 0.0015 ** 2)
    pooled = dersimonian_laird(y, v, 0.95, tau2_floor=0.01 ** 2)
    normal_half = 1.96 * np.sqrt((0.02 + v[0]) / 2)  # tau^2 from the pairs themselves is ~0.02
    assert pooled.heterogeneous and (pooled.high - pooled.low) / 2 > 5 * normal_half
    agreeing = dersimonian_laird(np.array([-0.01, 0.01]), v, 0.95, tau2_floor=0.01 ** 2)
    assert not agreeing.heterogeneous
