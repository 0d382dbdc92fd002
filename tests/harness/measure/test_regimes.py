"""Regimes inside one run's per-request series: synthetic series with fixed seeds, exact expectations."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure.regimes import (
    Regime,
    describe,
    find_regimes,
    request_series,
    run_regimes,
    stored_or_found,
)


def _noisy(level: float, n: int, rel_sd: float, rng: np.random.Generator) -> np.ndarray:
    return level * (1.0 + rel_sd * rng.standard_normal(n))


@pytest.mark.parametrize("seed", range(5))
def test_two_regimes_are_split_at_the_right_request(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([_noisy(1.2, 40, 0.03, rng), _noisy(1.8, 60, 0.03, rng)])
    regimes = find_regimes(values)
    assert len(regimes) == 2
    assert abs(regimes[1].start - 40) <= 2
    assert regimes[0].start == 0 and regimes[-1].end == 99
    assert regimes[0].end + 1 == regimes[1].start
    assert regimes[0].median == pytest.approx(1.2, rel=0.03)
    assert regimes[1].median == pytest.approx(1.8, rel=0.03)


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_is_one_regime(seed):
    rng = np.random.default_rng(100 + seed)
    values = _noisy(1.5, 200, 0.05, rng)
    (regime,) = find_regimes(values)
    assert (regime.start, regime.end, regime.n) == (0, 199, 200)
    assert regime.median == pytest.approx(float(np.median(values)))


def test_lone_slow_requests_are_not_regimes():
    # Heavy tail: a handful of single requests 20x the noise above the level (a GC pause, a page fault).
    rng = np.random.default_rng(7)
    values = _noisy(1.5, 120, 0.02, rng)
    values[[10, 47, 48, 90]] *= 1.6
    assert len(find_regimes(values)) == 1


def test_the_issue_shape_three_regimes():
    # issue #22: sglang's TPOT at about 1.1-1.3 ms and 1.7-2.0 ms in runs of 10-30 requests.
    rng = np.random.default_rng(22)
    values = np.concatenate([_noisy(1.12, 25, 0.04, rng), _noisy(1.85, 27, 0.04, rng), _noisy(1.20, 48, 0.04, rng)])
    regimes = find_regimes(values)
    assert [r.n for r in regimes] == [25, 27, 48]
    line = describe("tpot_ms", regimes)
    assert line.startswith("tpot_ms: 3 regimes: ")
    assert "[0-24]" in line and "[25-51]" in line and "[52-99]" in line


def test_short_series_and_request_indices():
    assert find_regimes([]) == ()
    assert find_regimes([1.0, 5.0, 1.0]) == (Regime(0, 2, 1.0, 3),)
    regimes = find_regimes([1.0] * 10 + [2.0] * 10, indices=range(100, 120))
    assert [(r.start, r.end, r.median) for r in regimes] == [(100, 109, 1.0), (110, 119, 2.0)]
    with pytest.raises(ValueError):
        find_regimes([1.0, 2.0], indices=[0])


def test_series_from_samples_take_every_per_request_timing_of_ok_requests():
    samples = [
        {"index": 0, "ok": True, "ttft_ms": 3.0, "tpot_ms": 1.0, "e2e_ms": 9.0, "itl_ms": [1.0], "events": 3,
         "decode_gpu_ms": 0.5, "completion_tokens": 4, "error_kind": None},
        {"index": 1, "ok": True, "ttft_ms": 3.5, "tpot_ms": None, "e2e_ms": 9.5, "itl_ms": [], "error_kind": None},
        {"index": 2, "ok": False, "ttft_ms": 99.0, "tpot_ms": 99.0, "e2e_ms": None, "error_kind": "timeout"},
    ]
    series = request_series(samples)
    assert series == {"ttft_ms": ([0, 1], [3.0, 3.5]), "tpot_ms": ([0], [1.0]), "e2e_ms": ([0, 1], [9.0, 9.5]),
                      "decode_gpu_ms": ([0], [0.5])}
    stored = run_regimes(samples)
    assert stored["ttft_ms"] == [{"start": 0, "end": 1, "median": 3.25, "n": 2}]
    # Old results hold no `regimes`: found on read, the same as stored.
    assert stored_or_found({"samples": samples}) == stored_or_found({"regimes": stored})


def test_false_and_found_regime_rates_on_seeded_series():
    # The numbers quoted at REQUEST_CHANGEPOINTS (deterministic: fixed seeds; bounds leave room for
    # another ruptures release breaking a tie differently).
    flat = spiky = found = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        flat += len(find_regimes(_noisy(1.5, 100, 0.04, rng))) > 1
        values = _noisy(1.5, 100, 0.02, rng)
        values[rng.choice(100, 5, replace=False)] *= 1.6
        spiky += len(find_regimes(values)) > 1
        values = np.concatenate([_noisy(1.2, 40, 0.04, rng), _noisy(1.8, 10, 0.04, rng), _noisy(1.2, 50, 0.04, rng)])
        found += len(find_regimes(values)) == 3
    assert flat <= 2
    assert spiky <= 5
    assert found >= 196
