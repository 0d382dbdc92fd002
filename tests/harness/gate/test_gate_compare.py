"""Scenario comparison: exact metrics, crashes, skips and the exit code."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from gate_synthetic import result_obj, tpot_samples

from harness.gate.compare import compare_sides
from harness.gate.config import load_config
from harness.gate.errors import GateInputError
from harness.gate.load import load_side
from harness.store.result import OOM_AT_CAPTURE

CONFIG = load_config()
METRICS = ("tpot_ms", "ttft_ms", "decode_gpu_ms")


def _compare(write_run, base: dict, head: dict):
    b = load_side(write_run("base", base), METRICS)
    h = load_side(write_run("head", head), METRICS)
    return compare_sides(b, h, CONFIG)


def _row(outcome, metric: str, scenario: str = "s"):
    return next(r for r in outcome.rows if r.metric == metric and r.scenario == scenario)


def _tpot(seed: int, scale: float = 1.0) -> np.ndarray:
    return tpot_samples(np.random.default_rng(seed), 40, scale=scale)


def test_identical_runs_pass(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1), workspace=4096, oracle={"a": True})},
                   {"s": result_obj("s", tpot=_tpot(2), workspace=4096, oracle={"a": True})})
    assert out.exit_code == 0
    assert {r.metric: r.verdict for r in out.rows} == {
        "capture_oom": "no_change", "workspace_bytes": "no_change", "oracle:a": "no_change",
        "tpot_ms": "no_change", "ttft_ms": "no_change", "decode_gpu_ms": "skipped"}
    # Results from before decode_step records: the row says so; it is no reason to withhold a pass.
    assert _row(out, "decode_gpu_ms").reason == "not measured on either side"


def test_decode_gpu_ms_is_compared(write_run) -> None:
    """A kernel slowdown shows in the server's device time per decode step even where TPOT stays put."""
    rng = np.random.default_rng(7)
    tpot = _tpot(1)
    base_gpu = 0.9 * rng.lognormal(0.0, 0.003, size=tpot.size)  # the H200 graph-replay spread is 0.24%
    head_gpu = 1.03 * 0.9 * rng.lognormal(0.0, 0.003, size=tpot.size)
    out = _compare(write_run, {"s": result_obj("s", tpot=tpot, decode_gpu=base_gpu)},
                   {"s": result_obj("s", tpot=tpot, decode_gpu=head_gpu)})
    row = _row(out, "decode_gpu_ms")
    assert row.verdict == "regression"
    assert row.estimate is not None and 1.02 < row.estimate.ci_low < row.estimate.ci_high < 1.04
    assert _row(out, "tpot_ms").verdict == "no_change"
    assert out.exit_code == 1
    # Measured on one side only (an older base): not comparable, so not a pass either.
    one_sided = _compare(write_run, {"s": result_obj("s", tpot=tpot)},
                         {"s": result_obj("s", tpot=tpot, decode_gpu=head_gpu)})
    assert _row(one_sided, "decode_gpu_ms").verdict == "inconclusive"


def test_any_workspace_increase_is_a_regression(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1), workspace=471_531_904)},
                   {"s": result_obj("s", tpot=_tpot(2), workspace=471_531_905)})
    row = _row(out, "workspace_bytes")
    assert row.verdict == "regression" and row.change == "+1 B"
    assert out.exit_code == 1


def test_workspace_decrease_is_an_improvement(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1), workspace=8192)},
                   {"s": result_obj("s", tpot=_tpot(2), workspace=4096)})
    assert _row(out, "workspace_bytes").verdict == "improvement"
    assert out.exit_code == 0


def test_new_oom_at_capture_is_a_regression(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))},
                   {"s": result_obj("s", status="failed", outcome="oom_during_cuda_graph_capture")})
    assert _row(out, "capture_oom").verdict == "regression"
    assert _row(out, "tpot_ms").verdict == "inconclusive"
    assert out.exit_code == 1 and not out.problems


def test_capture_oom_record_counts_as_oom(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))},
                   {"s": result_obj("s", tpot=_tpot(2), capture_oom_record=True)})
    assert _row(out, "capture_oom").verdict == "regression"


def _asv_readout() -> ModuleType:
    # bench/asv/readout.py as asv runs it (loaded by path, outside the harness package).
    path = Path(__file__).resolve().parents[3] / "bench" / "asv" / "readout.py"
    spec = importlib.util.spec_from_file_location("gate_test_asv_readout", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("signal", ["capture_oom record", "startup.capture.oom", "startup.outcome"])
def test_gate_and_asv_agree_on_capture_oom(write_run, signal: str) -> None:
    """The first two are where they disagreed: startup ok, yet an OOM at capture recorded (asv said 0, the gate yes)."""
    oom = result_obj("s", tpot=_tpot(2), capture_oom_record=signal == "capture_oom record")
    if signal == "startup.capture.oom":
        oom["startup"]["capture"]["oom"] = True
    if signal == "startup.outcome":
        oom = result_obj("s", status="failed", outcome=OOM_AT_CAPTURE)
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))}, {"s": oom})
    readout = _asv_readout()
    asv = {side: readout.capture_oom(readout.load_result(write_run(side, {}), "s")) for side in ("base", "head")}
    gate = {"base": _row(out, "capture_oom").base, "head": _row(out, "capture_oom").head}
    assert gate == {"base": "no", "head": "yes"} and asv == {"base": 0, "head": 1}
    assert _row(out, "capture_oom").verdict == "regression"


def test_oracle_check_failing_in_head_is_a_regression(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1), oracle={"capture_num_tokens": True})},
                   {"s": result_obj("s", tpot=_tpot(2), oracle={"capture_num_tokens": False})})
    assert _row(out, "oracle:capture_num_tokens").verdict == "regression"
    assert out.exit_code == 1


def test_tpot_slowdown_is_a_regression(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))}, {"s": result_obj("s", tpot=_tpot(2, 1.06))})
    row = _row(out, "tpot_ms")
    assert row.verdict == "regression"
    assert row.estimate is not None and row.estimate.ci_low > 1.02
    assert out.verdict == "regression"


def test_head_crash_is_the_heads_fault(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))},
                   {"s": result_obj("s", status="failed", outcome="crash")})
    assert _row(out, "startup").verdict == "regression"
    assert out.exit_code == 1


def test_base_crash_is_infrastructure(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", status="failed", outcome="timeout")},
                   {"s": result_obj("s", tpot=_tpot(2))})
    assert out.exit_code == 2
    assert "base" in out.problems[0] and "result.json" in out.problems[0]


def test_skipped_on_both_sides_is_reported_not_passed(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", status="skipped")}, {"s": result_obj("s", status="skipped")})
    assert [(r.metric, r.verdict, r.reason) for r in out.rows] == [("status", "skipped", "needs 4 GPUs")]
    assert out.exit_code == 0


def test_skipped_on_one_side_only_is_infrastructure(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", status="skipped")}, {"s": result_obj("s", tpot=_tpot(2))})
    assert out.exit_code == 2 and "skipped" in out.problems[0]


def test_mismatched_scenarios_raise_naming_both(write_run) -> None:
    with pytest.raises(GateInputError, match=r"only in base: a; only in head: b"):
        _compare(write_run, {"a": result_obj("a", tpot=_tpot(1))}, {"b": result_obj("b", tpot=_tpot(2))})


def test_rounds_directory_is_merged(write_run) -> None:
    for i in range(2):
        write_run(f"base/round-{i:02d}", {"s": result_obj("s", tpot=_tpot(10 + i))})
        write_run(f"head/round-{i:02d}", {"s": result_obj("s", tpot=_tpot(20 + i, 1.05))})
    b = load_side(write_run("base", {}), METRICS)
    h = load_side(write_run("head", {}), METRICS)
    assert len(b.rounds) == 2 and len(b.runs["s"]) == 2
    out = compare_sides(b, h, CONFIG)
    row = _row(out, "tpot_ms")
    assert row.estimate is not None and row.estimate.n_head == 80
    assert row.verdict == "regression"


def test_harness_failure_on_head_is_infrastructure(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))},
                   {"s": result_obj("s", status="failed", outcome="ok", failure_stage="harness")})
    assert out.exit_code == 2 and "harness failure" in out.problems[0]
    assert not out.rows


def test_head_request_failure_is_the_heads_fault(write_run) -> None:
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))},
                   {"s": result_obj("s", status="failed", outcome="ok", failure_stage="request")})
    row = _row(out, "startup")
    assert row.verdict == "regression" and row.head == "failed/request"


def test_unchanged_oracle_checks_fold_into_one_row(write_run) -> None:
    checks = {"a": True, "b": True, "c": False}
    out = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1), oracle=checks)},
                   {"s": result_obj("s", tpot=_tpot(2), oracle={**checks, "b": False})})
    oracle = [r for r in out.rows if r.metric.startswith("oracle")]
    assert [(r.metric, r.verdict) for r in oracle] == [("oracle", "no_change"), ("oracle:b", "regression")]
    assert oracle[0].base == "1 pass, 1 fail" and "failing on both: c" in oracle[0].reason


def test_paired_results_are_compared_pair_by_pair(write_run) -> None:
    # The same regime-switching requests: paired results catch +10%, the same values without pairing do not.
    from gate_synthetic import paired_obj, regime_series

    series = regime_series(21, 30, 1.10)
    paired = _compare(write_run, {"s": paired_obj("s", "base", 0, tpot=series.base)},
                      {"s": paired_obj("s", "head", 0, tpot=series.head)})
    row = _row(paired, "tpot_ms")
    assert row.verdict == "regression" and row.estimate is not None and row.estimate.design == "paired"
    assert "paired, 30 pairs, block" in row.reason
    unpaired = compare_sides(load_side(write_run("b2", {"s": result_obj("s", tpot=series.base)}), METRICS),
                             load_side(write_run("h2", {"s": result_obj("s", tpot=series.head)}), METRICS), CONFIG)
    assert _row(unpaired, "tpot_ms").verdict == "inconclusive"
    assert _row(unpaired, "tpot_ms").estimate.design == "unpaired"  # type: ignore[union-attr]


def test_sides_from_different_server_pairs_are_not_paired(write_run) -> None:
    from gate_synthetic import paired_obj

    out = _compare(write_run, {"s": paired_obj("s", "base", 0, tpot=_tpot(1))},
                   {"s": paired_obj("s", "head", 1, tpot=_tpot(2))})
    assert _row(out, "tpot_ms").estimate.design == "unpaired"  # type: ignore[union-attr]


def test_inconclusive_is_not_a_pass(write_run) -> None:
    noisy = tpot_samples(np.random.default_rng(3), 40, sigma=0.3)
    out = _compare(write_run, {"s": result_obj("s", tpot=noisy)}, {"s": result_obj("s", tpot=noisy[::-1] * 1.01)})
    assert _row(out, "tpot_ms").verdict == "inconclusive"
    assert out.exit_code == 3 and out.verdict == "inconclusive"


H200_RESULT = (Path(__file__).resolve().parents[3] / "results/gate/2026-12-07-h200-sglang/gate-aa/report/runs/base"
               / "round-00/sglang-paired-calibration/result.json.gz")


def _with_gpu(obj: dict, clock_min: float, throttled: float) -> dict:
    """`obj` with the telemetry of a real H200 run, its lowest SM clock and throttled share replaced."""
    import copy
    import gzip
    import json

    telemetry = copy.deepcopy(json.loads(gzip.decompress(H200_RESULT.read_bytes()))["telemetry"])
    telemetry["summary"]["sm_clock_mhz"]["min"] = clock_min
    telemetry["summary"]["throttled_share"] = throttled
    return {**obj, "telemetry": telemetry}


@pytest.mark.parametrize(("head_clock", "head_throttled", "verdict", "exit_code"), [
    (1980.0, 0.0, "no_change", 0),      # the H200 sittings: 1980 MHz, never throttled
    (1980.0, 0.20, "inconclusive", 3),  # throttled a fifth of the time: the latencies are not comparable
    (1700.0, 0.0, "inconclusive", 3),   # a 14% lower clock on one side
])
def test_the_gpu_clock_row_makes_a_throttled_comparison_inconclusive(write_run, head_clock: float,
                                                                     head_throttled: float, verdict: str,
                                                                     exit_code: int) -> None:
    out = _compare(write_run, {"s": _with_gpu(result_obj("s", tpot=_tpot(1)), 1980.0, 0.0)},
                   {"s": _with_gpu(result_obj("s", tpot=_tpot(2)), head_clock, head_throttled)})
    row = _row(out, "gpu_clock")
    assert row.verdict == verdict and out.exit_code == exit_code
    assert row.base == "1980 MHz min, 0% throttled"
    # Without telemetry on either side (CPU runs) there is no row at all.
    cpu = _compare(write_run, {"s": result_obj("s", tpot=_tpot(1))}, {"s": result_obj("s", tpot=_tpot(2))})
    assert all(r.metric != "gpu_clock" for r in cpu.rows)
