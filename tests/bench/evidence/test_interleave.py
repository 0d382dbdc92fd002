"""The per-request interleaving driver on the CPU: pairing order, bench_serving's TPOT, paired statistics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.evidence.fidelity import FidelityConfig, interleave_command
from bench.evidence.interleave import bench_record, report, run_pairs, summarize

REHEARSAL = Path(__file__).resolve().parents[3] / "results" / "fidelity" / "2026-12-03-cpu-interleave-rehearsal"


class FakeSample:
    """A RequestSample stand-in: what to_json() gives, with a fixed TTFT."""

    def __init__(self, ttft: float) -> None:
        self.ttft = ttft

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "completion_tokens": 5, "ttft_ms": self.ttft, "tpot_ms": 2.0, "e2e_ms": self.ttft + 8.4,
                "meta_info": {"first_token_latency": (self.ttft - 1.5) / 1000}}


class FakeClient:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def generate(self, index: int, ids: list[int], max_new_tokens: int) -> FakeSample:
        self.log.append("H")
        return FakeSample(10.0)


def test_pairs_alternate_order_and_share_the_prompt() -> None:
    log: list[str] = []
    prompts: list[list[int]] = []

    def bench(ids: list[int], n: int) -> dict[str, Any]:
        log.append("B")
        prompts.append(ids)
        out = SimpleNamespace(success=True, error="", output_len=n, ttft=0.011, latency=0.011 + 0.0081,
                              itl=[0.002] * (n - 1))
        return bench_record(out)

    records = run_pairs(FakeClient(log), bench, pairs=4, input_len=8, output_len=5, vocab_size=32000, warmups=1)
    assert "".join(log) == "HB" + "HBBHHBBH"  # warm-up, then H B B H H B B H
    assert [r["first"] for r in records] == ["harness", "bench_serving"] * 2
    assert prompts[1] != prompts[2] and all(len(p) == 8 for p in prompts)
    b = records[0]["bench_serving"]
    # bench_serving's TPOT: (latency - ttft) / (n - 1), latency taken at [DONE]; first-to-last from its itls.
    assert b["tpot_ms"] == pytest.approx(8.1 / 4) and b["tpot_ms_first_to_last"] == pytest.approx(2.0)
    s = summarize(records, boot=50)
    assert s["pairs_ok"] == 4
    assert s["ttft_ms"]["ratio_median"] == pytest.approx(10.0 / 11.0) and s["ttft_ms"]["median_pair_diff"] == pytest.approx(-1.0)
    assert s["tpot_ms_first_to_last"]["ratio_median"] == pytest.approx(1.0)
    assert s["tpot_ms_bench_definition"]["ratio_median"] == pytest.approx((8.4 / 4) / (8.1 / 4))
    assert s["harness_client_minus_server_ttft_ms_median"] == pytest.approx(1.5)
    assert "| TTFT |" in report(s)


def test_fidelity_requests_design_command(tmp_path: Path) -> None:
    config = FidelityConfig(base_url="http://127.0.0.1:5", tokenizer=tmp_path, out=tmp_path, rounds=5, requests=30)
    command = interleave_command(config)
    assert command[1:3] == ["-m", "bench.evidence.interleave"]
    assert command[command.index("--pairs") + 1] == "150" and command[command.index("--output-len") + 1] == "64"


def test_cpu_rehearsal_matches_bench_serving_own_metrics() -> None:
    """Real bench_serving 0.5.16 on the CPU: its calculate_metrics median TPOT = the per-request records'."""
    summary = json.loads((REHEARSAL / "interleave.json").read_text())
    own = summary["bench_serving_calculate_metrics"]
    assert own["median_tpot_ms"] == pytest.approx(summary["tpot_ms_bench_definition"]["bench_median"], rel=1e-9)
    assert own["median_ttft_ms"] == pytest.approx(summary["ttft_ms"]["bench_median"], rel=1e-9)
    records = [json.loads(x) for x in (REHEARSAL / "raw" / "interleave.jsonl").read_text().splitlines()]
    assert summarize(records, boot=50)["tpot_ms_first_to_last"]["ratio_median"] == pytest.approx(
        summary["tpot_ms_first_to_last"]["ratio_median"])
