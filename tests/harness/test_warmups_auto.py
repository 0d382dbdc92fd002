"""`--warmups auto` on the real reference engine: the stop reason and the counts it records."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from harness.config import RunConfig
from harness.measure.warmup import AutoWarmup
from harness.run import run_all
from harness.scenarios.catalog import load_scenario
from harness.serve.server import group_members
from harness.store.results import load_result

REPO = Path(__file__).resolve().parents[2]


def _tiny(directory: Path) -> Path:
    """baseline with 16 tokens in and 8 out (a request takes a fraction of a second on this VM)."""
    text = (REPO / "harness" / "scenarios" / "baseline.toml").read_text()
    text = text.replace('name = "baseline"', 'name = "tiny"')
    text = re.sub(r"input_len = \d+", "input_len = 16", text)
    text = re.sub(r"output_len = \d+", "output_len = 8", text)
    path = directory / "tiny.toml"
    path.write_text(text)
    return path


def test_warmups_auto_records_why_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(_tiny(tmp_path)), "--out", str(out),
                           "--warmups", "auto", "--requests", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    result = load_result(out / "tiny" / "result.json")
    assert result["status"] == "ok", (result["failure"], done.stderr[-2000:])
    warmup, auto = result["warmup"], AutoWarmup()
    assert warmup["policy"] == "auto" and warmup["auto"]["window"] == auto.window
    n = warmup["requests"]
    assert result["workload"]["warmups"] == n == len(warmup["tpot_ms"])
    assert len(warmup["window_medians_ms"]) == n // auto.window
    # Which reason depends on this VM's noise; each one's bookkeeping does not.
    if warmup["stopped"] == "steady":
        assert n % auto.window == 0 and n >= 2 * auto.window
        before, last = warmup["window_medians_ms"][-2:]
        assert abs(last / before - 1) < auto.tolerance
        assert last == statistics.median(warmup["tpot_ms"][-auto.window:])
    elif warmup["stopped"] == "max_requests":
        assert n == auto.max_requests
    else:
        assert warmup["stopped"] == "max_time" and warmup["elapsed_s"] >= auto.max_s
    # No NVML on this machine: telemetry records why, and the run goes on.
    assert result["telemetry"]["available"] is False and result["telemetry"]["reason"]
    assert [s["index"] for s in result["samples"]] == [0, 1]
    assert group_members(result["server"]["pid"]) == []
    assert "warm-up auto:" in " ".join(done.stdout.split())


def test_warmups_auto_stops_at_its_cap(tmp_path: Path) -> None:
    # Steadiness is checked after each full window of 2, so a cap of 3 requests is reached first:
    # "max_requests" whatever the timings.
    config = RunConfig(out_dir=tmp_path / "run", requests=1,
                       warmups=AutoWarmup(window=2, max_requests=3))
    scenario = load_scenario(str(_tiny(tmp_path)))
    (result,) = run_all(config, [scenario], ["test"], Console(quiet=True))
    assert result["status"] == "ok", result["failure"]
    assert load_result(config.out_dir / "tiny" / "result.json")["warmup"] == result["warmup"]
    warmup = result["warmup"]
    assert (warmup["stopped"], warmup["requests"], len(warmup["tpot_ms"])) == ("max_requests", 3, 3)
    assert len(warmup["window_medians_ms"]) == 1
    assert result["workload"]["warmups"] == 3
