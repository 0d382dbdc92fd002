"""Calibration arithmetic on synthetic pools with known slowdowns."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gate_synthetic import tpot_samples

from harness.gate.calibration import Pool, TrialPlan, evaluate, markdown_table, noise_model, project, wilson
from harness.gate.config import load_config


def _pool(rng: np.random.Generator, slowdown: float, rounds: int = 4, n: int = 40) -> Pool:
    # Each server start gets its own level (0.5% spread), as separate processes do.
    base = tuple(tpot_samples(rng, n, scale=rng.lognormal(0, 0.005)) for _ in range(rounds))
    head = tuple(tpot_samples(rng, n, scale=(1 + slowdown) * rng.lognormal(0, 0.005)) for _ in range(rounds))
    return Pool(slowdown, int(slowdown * 20000), base, head)


def test_rates_rise_with_slowdown_and_false_alarms_stay_rare() -> None:
    rng = np.random.default_rng(8)
    pools = [_pool(rng, s) for s in (0.0, 0.03, 0.10)]
    config = replace(load_config(), bootstrap_resamples=500)  # keeps the test fast
    rates = evaluate(pools, TrialPlan((21, 42), rounds=3, trials=60, seed=1), config, (0.01, 0.02))
    rate = {(r.slowdown, r.requests, r.threshold): r.rate for r in rates}
    assert len(rates) == 3 * 2 * 2
    assert rate[(0.0, 42, 0.02)] <= 0.05
    assert rate[(0.10, 42, 0.02)] >= 0.95
    # A lower threshold never detects less on the same trials.
    assert all(rate[(s, n, 0.01)] >= rate[(s, n, 0.02)] for s in (0.0, 0.03, 0.10) for n in (21, 42))
    table = markdown_table(rates, pools, 0.02)
    assert table.splitlines()[0] == "| injected slowdown (measured) | delay us | n=21 | n=42 |"
    assert "| A/A (" in table and "| +10% (" in table


def test_pool_with_too_few_rounds_is_refused() -> None:
    pool = _pool(np.random.default_rng(0), 0.0, rounds=1)
    with pytest.raises(ValueError, match="plan needs 2"):
        evaluate([pool], TrialPlan((10,), rounds=2, trials=1, seed=0), load_config(), (0.02,))


def test_wilson_interval() -> None:
    lo, hi = wilson(0, 300)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.01 < hi < 0.015  # zero of 300 still allows ~1.3%
    lo, hi = wilson(150, 300)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.113, abs=0.002)


def test_noise_model_and_projection() -> None:
    rng = np.random.default_rng(12)
    pools = [_pool(rng, 0.0, rounds=4, n=40), _pool(rng, 0.05, rounds=4, n=40)]
    config = replace(load_config(), bootstrap_resamples=300)
    model = noise_model(pools, config, seed=0)
    assert model.residuals.size == 2 * 2 * 4 * 40
    assert np.median(model.residuals) == pytest.approx(1.0, abs=0.005)
    assert model.tau < 0.02  # the pools' start levels vary by 0.5% each
    rates = project(model, (0.10,), TrialPlan((60,), rounds=3, trials=40, seed=3), config, (0.02,))
    by = {r.slowdown: r.rate for r in rates}
    assert by[0.0] <= 0.05 and by[0.10] >= 0.9
