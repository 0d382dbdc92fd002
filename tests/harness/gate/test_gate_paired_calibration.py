"""Paired calibration arithmetic on synthetic pools of request pairs with known slowdowns."""

from __future__ import annotations

import numpy as np

from harness.gate.config import load_config
from harness.gate.paired_calibration import (
    PairedPool,
    PairedTrialPlan,
    evaluate_paired,
    fast_config,
    markdown_table,
)


def _pool(rng: np.random.Generator, kind: str, slowdown: float, pairs: int = 160) -> PairedPool:
    # Host regimes that hit both sides of a pair alike (blocks of 20 pairs at 1.0x or 1.5x), 1% request noise.
    regime = np.repeat(rng.choice([1.0, 1.5], size=pairs // 20), 20)
    base = 1.2 * regime * rng.lognormal(0, 0.01, pairs)
    head = 1.2 * (1 + slowdown) * regime * rng.lognormal(0, 0.01, pairs)
    return PairedPool(kind, slowdown, int(slowdown * 1200), {"tpot_ms": base}, {"tpot_ms": head})


def test_regimes_shared_by_the_pair_cancel_aa_passes_and_3pct_is_caught() -> None:
    rng = np.random.default_rng(3)
    pools = [_pool(rng, "aa", 0.0), _pool(rng, "gpu", 0.03)]
    rates = evaluate_paired(pools, PairedTrialPlan((20, 80, 400), trials=40, seed=1), fast_config(load_config(), 200),
                            ("tpot_ms", "decode_gpu_ms"))
    by = {(r.label, r.pairs): r for r in rates}
    assert set(by) == {("A/A", 20), ("A/A", 80), ("+3% gpu", 20), ("+3% gpu", 80)}  # no window > the pool
    assert by[("A/A", 80)].regressions == 0 and by[("+3% gpu", 80)].regressions == 40
    assert by[("A/A", 80)].disjoint_windows == 2 and by[("A/A", 80)].median_ci_width < 0.02
    assert pools[1].measured_ratio("tpot_ms") == np.median(pools[1].head["tpot_ms"] / pools[1].base["tpot_ms"])
    table = markdown_table(rates, "tpot_ms", seconds_per_pair=0.5)
    assert table.splitlines()[0] == "| condition | n=20 (10 s) | n=80 (40 s) |"
    assert table.splitlines()[3].startswith("| +3% gpu | 100.0% [")
