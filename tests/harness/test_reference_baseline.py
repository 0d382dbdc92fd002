"""The README command's path: `harness run` serves baseline on the real reference engine on the CPU."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from harness.serve.server import group_members
from harness.store.results import load_result

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_harness_run_baseline_on_the_reference_engine(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--out", str(out), "--requests", "2", "--warmups", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=540, check=False,
    )
    result = load_result(out / "baseline" / "result.json")  # schema-valid
    assert result["status"] == "ok", (result["failure"], done.stderr[-2000:])
    assert result["startup"]["outcome"] == "ok"
    assert result["target"]["kind"] == "reference"
    # harness history orders nightly results by the target's commit time (an ISO 8601 string here).
    assert dt.datetime.fromisoformat(result["target"]["commit_time"]).tzinfo is not None
    assert result["server"]["pinning"] == {"server": None, "client": None}
    assert done.returncode == (1 if result["oracle"]["ok"] is False else 0)
    for key in ("ttft_ms", "tpot_ms"):
        assert result["summary"][key]["n"] == 2
        assert result["summary"][key]["median"] > 0
    assert all(s["completion_tokens"] == 64 for s in result["samples"])
    # The engine's decode_step records, matched by the rid the client sent: 63 decode steps after the prefill.
    assert [(s["decode_steps"], s["decode_clock"]) for s in result["samples"]] == [(63, "host")] * 2
    assert all(s["decode_gpu_ms"] > 0 and s["decode_host_ms"] is not None for s in result["samples"])
    assert result["summary"]["decode_gpu_ms"]["n"] == 2
    # One record per step stays on disk (warm-up included), not in result.json.
    assert not [r for r in result["instrumentation"]["records"] if r["kind"] == "decode_step"]
    on_disk = [line for path in (out / "baseline" / "records").glob("*.jsonl")
               for line in path.read_text().splitlines() if '"kind":"decode_step"' in line]
    assert len(on_disk) == 3 * 63
    assert "decode step (server, host clock, no device): device" in " ".join(done.stdout.split())  # rich wraps
    assert result["server_metrics"]["requests"] == 2  # the engine's /metrics saw the same two requests
    assert result["instrumentation"]["records"], result["instrumentation"]["errors"]
    assert result["startup"]["capture"]["phases"], "the engine logs its (stand-in) decode capture"
    assert group_members(result["server"]["pid"]) == []
    assert "TTFT" in done.stdout and "TPOT" in done.stdout
    assert f"{result['summary']['tpot_ms']['median']:.4g}" in done.stdout
