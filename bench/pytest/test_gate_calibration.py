"""Short-form live calibration of the PR gate on the reference engine (CPU), as CI runs it.

A/A and one A/B pool (+50% of TPOT injected as decode delay), three interleaved rounds each, through
`harness gate`'s own interleaving and the harness run pipeline. A shared 2-core VM moves TPOT by up to
20% from one server start to the next (A/A pools measured -0.8% to +20.6%), so the checks are the
gate's guarantees under any noise: A/A pairs are not called regressions, and a +50% slowdown is never
called `no_change` or `improvement` (on a quiet runner it is a `regression`; under heavy noise the gate
may say `inconclusive`). The rates are recorded for the benchmark history. The long form, 1-10%
slowdowns and more rounds, is `python bench/evidence/calibrate_gate.py` (docs/gate.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.gate.calibration import TrialPlan, evaluate
from harness.gate.config import load_config

pytestmark = pytest.mark.timeout(400)


def _evidence_script(name: str):
    """A script of bench/evidence/, loaded by path (evidence scripts are run, not imported as a package)."""
    path = Path(__file__).resolve().parents[1] / "evidence" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve the defining module by name
    spec.loader.exec_module(module)
    return module


_calibrate_gate = _evidence_script("calibrate_gate")
CalibrationPlan, collect, report = _calibrate_gate.CalibrationPlan, _calibrate_gate.collect, _calibrate_gate.report


# The baseline model and server with 16-token prompts and outputs, so four server starts fit in CI.
SHORT_SCENARIO = Path(__file__).resolve().parent / "gate-calibration-short.toml"
SLOWDOWN = 0.50


def test_short_calibration_on_reference_engine(tmp_path: Path, benchmark) -> None:
    plan = CalibrationPlan(out=tmp_path / "calibration", scenario=str(SHORT_SCENARIO), slowdowns=(SLOWDOWN,),
                           pool_rounds=3, pool_requests=12, warmups=1, request_counts=(24,), rounds=3, trials=60,
                           thresholds=(0.02,))
    pools = benchmark.pedantic(collect, args=(plan,), rounds=1, iterations=1)
    aa, slow = pools
    assert slow.delay_us > 0
    # The injected delay shows up as a clear TPOT increase, whatever the start-to-start noise.
    assert slow.measured_ratio() > 1.15, slow.measured_ratio()
    rates = evaluate(pools, TrialPlan(plan.request_counts, plan.rounds, plan.trials, plan.seed), load_config(),
                     plan.thresholds)
    by = {r.slowdown: r for r in rates}
    assert by[0.0].rate <= 0.05, "A/A pairs must not be called regressions"
    missed = by[SLOWDOWN].trials - by[SLOWDOWN].regressions - by[SLOWDOWN].inconclusive
    assert missed == 0, f"a +50% TPOT slowdown was called no_change/improvement in {missed} trials"
    text = report(plan, pools, rates, "CPU, CI short form")
    assert "| A/A (" in text and "| +50% (" in text
    assert (plan.out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((plan.out / "calibration.json").read_text())
    assert saved["base_tpot_ms"] == pytest.approx(float(np.median(np.concatenate(aa.base))))
    benchmark.extra_info.update(base_tpot_ms=saved["base_tpot_ms"], measured_ratio=saved["measured_ratio"],
                                false_alarm_rate=by[0.0].rate, detection_rate_50pct=by[SLOWDOWN].rate,
                                inconclusive_rate_50pct=by[SLOWDOWN].inconclusive / by[SLOWDOWN].trials)
