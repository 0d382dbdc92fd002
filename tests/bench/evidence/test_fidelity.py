"""The fidelity sitting's parts on the CPU: its command line, its report, and its raw bench_serving file."""

from __future__ import annotations

import json
from pathlib import Path

from bench.evidence.fidelity import FidelityConfig, bench_command, report
from harness.bench_serving.convert import read_jsonl, to_result

REHEARSAL = Path(__file__).resolve().parents[3] / "results" / "fidelity" / "2026-12-03-cpu-rehearsal"


def test_bench_serving_command_matches_the_harness_workload(tmp_path: Path) -> None:
    config = FidelityConfig(base_url="http://127.0.0.1:30001", tokenizer=tmp_path / "tok", out=tmp_path,
                            requests=30, input_len=128, output_len=64)
    command = bench_command(config, 3)
    def flags(name: str) -> str:
        return command[command.index(name) + 1]

    assert command[1:3] == ["-m", "sglang.bench_serving"]
    assert flags("--port") == "30001" and flags("--max-concurrency") == "1" and flags("--seed") == "3"
    assert (flags("--random-input-len"), flags("--random-output-len"), flags("--num-prompts")) == ("128", "64", "30")
    assert "--tokenize-prompt" in command and "--output-details" in command and "random-ids" in command


def test_rehearsal_evidence_renders_and_its_bench_serving_lines_import() -> None:
    summary = json.loads((REHEARSAL / "summary.json").read_text())
    text = report(summary)
    assert "| TTFT |" in text and "harness / bench_serving" in text and "Server startup" in text
    lines = read_jsonl(REHEARSAL / "raw" / "bench_serving.jsonl")
    assert len(lines) == summary["config"]["rounds"]
    for line in lines:
        result = to_result(line, "baseline", {"version": None, "commit": None})
        assert result["status"] == "ok" and len(result["samples"]) == summary["config"]["requests"]


def test_summary_pools_bench_serving_per_request_not_round_medians(tmp_path: Path) -> None:
    """summarize() on the rehearsal's raw rounds: bench TPOT pooled like the harness's, its own mean exact."""
    from bench.evidence.fidelity import summarize

    raw = REHEARSAL / "raw"
    lines = [json.loads(x) for x in (raw / "bench_serving.jsonl").read_text().splitlines() if x.strip()]
    harness_rounds = [json.loads((raw / f"harness-round-{k:02d}.json").read_text()) for k in (1, 2)]
    bench_rounds = [{"round": k, "line": line, "elapsed_s": 1.0, "server_metrics": {"itl_ms_mean": 1.0}}
                    for k, line in enumerate(lines, 1)]
    config = FidelityConfig(base_url="http://127.0.0.1:1", tokenizer=tmp_path, out=tmp_path, rounds=2, requests=4)
    summary = summarize(harness_rounds, bench_rounds, config)
    b, r = summary["bench_serving"], summary["ratios"]
    per_request = [sum(i) * 1000 / (n - 1) for line in lines for i, n in zip(line["itls"], line["output_lens"], strict=True)]
    assert b["tpot_ms"] == b["tpot_ms_first_to_last"] == sorted(per_request)[3:5][0] / 2 + sorted(per_request)[3:5][1] / 2
    assert b["tpot_ms_mean_as_defined"] == sum(x["mean_tpot_ms"] for x in lines) / 2
    assert b["tpot_ms_median_of_round_medians"] == (lines[0]["median_tpot_ms"] + lines[1]["median_tpot_ms"]) / 2
    assert r["tpot_first_to_last"] == summary["harness"]["tpot_ms"] / b["tpot_ms"]
    text = report(summary)
    assert "TPOT as bench_serving defines it" in text and "median of the rounds'" in text
