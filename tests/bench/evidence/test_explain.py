"""explain.py on the CPU rehearsal's raw files: bench_serving's own aggregates recomputed exactly."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from bench.evidence.explain import analyse, load, main, recompute_bench

REHEARSAL = Path(__file__).resolve().parents[3] / "results" / "fidelity" / "2026-12-03-cpu-rehearsal"


def _lines() -> list[dict]:
    return [json.loads(x) for x in (REHEARSAL / "raw" / "bench_serving.jsonl").read_text().splitlines() if x.strip()]


def test_bench_serving_aggregates_are_recomputed_from_its_per_request_fields() -> None:
    for line in _lines():
        b = recompute_bench(line)
        # TPOT_i = (latency_i - ttft_i) / (n - 1) with n = 8 for all: the mean is exact from the line's means.
        assert b["output_lens"] == [8]
        assert b["mean_tpot_ms"]["recomputed"] == pytest.approx(line["mean_tpot_ms"], rel=1e-12)
        assert b["median_ttft_ms"]["recomputed"] == pytest.approx(line["median_ttft_ms"], rel=1e-12)
        assert b["mean_itl_ms"]["recomputed"] == pytest.approx(line["mean_itl_ms"], rel=1e-12)
        assert b["median_itl_ms"]["recomputed"] == pytest.approx(line["median_itl_ms"], rel=1e-12)
        # The first text chunk carried one token, and the [DONE] tail is >= 0 (latency is taken at [DONE]).
        assert b["first_text_chunk_is_one_token"]
        assert b["done_tail_ms_mean"] >= 0
        assert b["mean_tpot_ms"]["reported"] >= b["mean_tpot_first_to_last_ms"]


def test_rehearsal_analysis_numbers() -> None:
    rounds = load(REHEARSAL)
    a = analyse(rounds, boot=200, seed=1)
    assert [r.harness_first for r in rounds] == [True, False]
    assert a["requests"] == {"harness": 8, "bench_serving": 8}
    lines = _lines()
    g = a["aggregation"]
    # What report.md printed for bench_serving: the median of the two rounds' medians.
    assert g["bench_tpot_median_of_round_medians"] == pytest.approx(
        statistics.median(line["median_tpot_ms"] for line in lines))
    summary = json.loads((REHEARSAL / "summary.json").read_text())
    assert g["bench_tpot_median_of_round_medians"] == pytest.approx(summary["bench_serving"]["tpot_ms"])
    assert a["tpot_first_to_last"]["bench_median"] == pytest.approx(summary["bench_serving"]["tpot_ms_first_to_last"])
    assert a["ttft"]["harness_median"] == pytest.approx(summary["harness"]["ttft_ms"])
    # Pooled bench_serving TPOT on its own definition = request-weighted mean of its lines' mean TPOT.
    assert g["bench_tpot_mean_pooled_as_defined"] == pytest.approx(statistics.fmean(x["mean_tpot_ms"] for x in lines))
    t = a["tpot_first_to_last"]
    for p, client, server, both in zip(a["per_round"], t["paired_round_ratios"], t["server_round_ratios"],
                                       t["client_over_server_round_ratios"], strict=True):
        assert both == pytest.approx(client / server)
        assert p["window_requests"] == {"harness": 4, "bench_serving": 5}  # bench_serving's warm-up is inside
    low, high = t["ratio_median_ci95"]
    assert low <= t["ratio_median"] <= high
    assert a["harness_vs_server_per_request"]["requests"] == 8


def test_cli_writes_analysis_next_to_the_report(tmp_path: Path) -> None:
    evidence = tmp_path / "sitting"
    shutil.copytree(REHEARSAL, evidence)
    assert main([str(evidence), "--boot", "100"]) == 0
    data = json.loads((evidence / "analysis.json").read_text())
    text = (evidence / "analysis.md").read_text()
    assert data["rounds"] == 2 and "## Explanation" in text and "| 1 | harness, bench_serving |" in text
    assert main([str(tmp_path / "missing")]) == 2
