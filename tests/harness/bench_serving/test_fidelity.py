"""The fidelity sitting's parts on the CPU: its command line, its report, and its raw bench_serving file."""

from __future__ import annotations

import json
from pathlib import Path

from harness.bench_serving.convert import read_jsonl, to_result
from harness.bench_serving.fidelity import FidelityConfig, bench_command, report

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
