"""The report's sampling section: the design and why, each look, what an undecided row would take."""

from __future__ import annotations

import pytest

from harness.gate.compare import GateOutcome
from harness.gate.config import load_config
from harness.gate.sampling_report import sampling_json, sampling_lines
from harness.gate.sequential import Look, LookPlan, MetricLook, Sampling
from harness.gate.stats import RatioEstimate
from harness.gate.verdicts import Row

CONFIG = LookPlan(max_looks=2).config_at_each_look(load_config())


def _outcome() -> GateOutcome:
    est = RatioEstimate(40, 40, 30.0, 30.6, 1.02, 0.96, 1.08, 0.4, 0, design="paired", block_length=3)
    return GateOutcome(rows=(Row("baseline", "tpot_ms", "inconclusive", "30 (n=40)", "30.6 (n=40)",
                                 "+2.00% [-4.00%, +8.00%]", "too noisy", est),), problems=())


def _sampling() -> Sampling:
    looks = (
        Look("baseline", 1, 1, 30, 0.975, 95.0, 2.5,
             (MetricLook("tpot_ms", "inconclusive", 30, 1.03, 0.95, 1.11, "too noisy", 120),), "extend the server pair by 10 pairs"),
        Look("baseline", 2, 1, 40, 0.975, 121.0, 2.5,
             (MetricLook("tpot_ms", "inconclusive", 40, 1.02, 0.96, 1.08, "too noisy", 90),
              MetricLook("ttft_ms", "inconclusive", 40, None, None, None, "not positive", None)),
             "stop: budget (12 s left, 2.50 s a pair)"),
    )
    return Sampling("paired", "CPU servers: no device memory to share", 2, 140.0, 133.4, looks)


def test_sampling_section_text() -> None:
    lines = sampling_lines(_outcome(), CONFIG, _sampling())
    assert lines == [
        "", "### Sampling", "",
        "Design: **paired co-resident** (CPU servers: no device memory to share). Looks: 2 of at most 2 "
        "(budget 140 s; 97.50% intervals: the 5% error rate split evenly over 2 looks, Bonferroni); 133 s.",
        "",
        "- baseline, look 1 at 95 s: 1 server pair(s), 30 pairs, 97.50% intervals: tpot_ms +3.00% [-5.00%, "
        "+11.00%] inconclusive -> extend the server pair by 10 pairs",
        "- baseline, look 2 at 121 s: 1 server pair(s), 40 pairs, 97.50% intervals: tpot_ms +2.00% [-4.00%, "
        "+8.00%] inconclusive; ttft_ms inconclusive -> stop: budget (12 s left, 2.50 s a pair)",
        "", "### What it would take", "",
        # Half width 5.9% (log) against the 4% no_change needs: 40 x (5.9 / 4)^2 = 87 pairs, at 2.5 s a pair.
        "- baseline tpot_ms: interval 12.0% wide from 40 request pairs; about 87 request pairs (47 more, ~118 s "
        "more) would decide if the width shrinks as 1/sqrt(n) and the estimate stays",
        "- rerun with more `--requests`, or give the gate a `--budget` (seconds) to keep sampling",
    ]


def test_sampling_json_carries_design_looks_and_needs() -> None:
    data = sampling_json(_outcome(), CONFIG, _sampling())
    assert data["design"] == "paired" and data["budget_s"] == 140.0 and data["max_looks"] == 2
    assert [look["action"] for look in data["looks"]] == ["extend the server pair by 10 pairs",
                                                         "stop: budget (12 s left, 2.50 s a pair)"]
    assert data["to_decide"] == [{"scenario": "baseline", "metric": "tpot_ms", "ci_width": pytest.approx(0.12),
                                  "have": 40, "need": 87, "unit": "request pairs", "seconds": 117.5,
                                  "heterogeneous": False}]


def test_start_pairs_that_disagree_beyond_the_floor_are_named_as_such() -> None:
    """Two server-start pairs far apart (real sglang on an H100, TPOT -21% and -3%): the report says why it is wide."""
    est = RatioEstimate(187, 187, 1.81, 1.43, 0.89, 0.28, 2.86, 0.7, 2, design="paired", block_length=12,
                        start_bound=True, heterogeneous=True)
    outcome = GateOutcome(rows=(Row("baseline", "tpot_ms", "inconclusive", "1.81 (n=187)", "1.43 (n=187)",
                                    "-11.26% [-72.48%, +186.14%]", "too noisy", est),), problems=())
    lines = sampling_lines(outcome, CONFIG, _sampling())
    (line,) = [x for x in lines if x.startswith("- baseline tpot_ms")]
    assert "its 2 server-start pairs disagree beyond the between-start SD calibrated for this target" in line
    assert "Student t with 1 degree(s) of freedom" in line and "start_offsets.py" in line
    assert sampling_json(outcome, CONFIG, _sampling())["to_decide"][0]["heterogeneous"] is True
