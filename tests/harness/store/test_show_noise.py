"""`harness show` prints a run's noise: the auto warm-up, regimes inside the series, GPU telemetry."""

from __future__ import annotations

import itertools
import sys

import numpy as np
from fake_pynvml import FakePynvml
from fake_server_helpers import FAKE_LAUNCHER

from harness.config import RunConfig
from harness.measure.warmup import AutoWarmup
from harness.run import NoProgress, run_scenario
from harness.scenarios.catalog import load_scenario
from harness.scenarios.hardware import HostHardware
from harness.store.results import load_result, write_result
from harness.store.show import main as show


def test_a_gpu_run_stores_telemetry_and_show_prints_it(tmp_path, monkeypatch, capsys):
    # The whole pipeline (real fake-server process, real client) with NVML answered by the double:
    # GPU 0 at 1980 MHz, then 1755 MHz under a software power cap.
    fake = FakePynvml(sm=[[1980, 1980, 1755]], reasons=[[0x1, 0x0, 0x4]])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    config = RunConfig(out_dir=tmp_path / "run", requests=4, launcher=FAKE_LAUNCHER, telemetry_interval_s=0.01,
                       warmups=AutoWarmup(window=2, tolerance=10.0, max_requests=6))
    result = run_scenario(load_scenario("baseline"), config, config.out_dir, HostHardware("test", 1), NoProgress())
    assert result["status"] == "ok", result["failure"]
    stored = load_result(config.out_dir / "baseline" / "result.json")  # schema-valid with all three
    # tolerance 1000%: steady at the first check, after two windows of 2.
    assert stored["warmup"]["policy"] == "auto" and stored["warmup"]["stopped"] == "steady"
    assert stored["warmup"]["requests"] == stored["workload"]["warmups"] == 4
    assert len(stored["warmup"]["tpot_ms"]) == 4 and len(stored["warmup"]["window_medians_ms"]) == 2
    telemetry = stored["telemetry"]
    assert telemetry["available"] is True
    assert fake.inits == fake.shutdowns >= 1  # the leak check after the stop opens NVML too
    assert telemetry["selection"].startswith("all GPUs")  # the fake server holds no GPU
    assert [r["phase"] for r in telemetry["requests"]] == ["warmup"] * 4 + ["measure"] * 4
    assert [r["index"] for r in telemetry["requests"]] == [0, 1, 2, 3, 0, 1, 2, 3]
    windows = telemetry["requests"]
    assert all(a["end_ms"] <= b["start_ms"] for a, b in itertools.pairwise(windows))  # BS=1
    assert set(stored["regimes"]) == {"ttft_ms", "tpot_ms", "e2e_ms"}
    assert stored["regimes"]["tpot_ms"][0]["n"] == 4

    assert show([str(config.out_dir / "baseline" / "result.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warm-up auto: 4 requests, stopped: steady" in out
    assert "GPU telemetry (GPU 0," in out and "SM clock" in out
    assert "no change point inside the run" in out


def test_regimes_of_an_older_result_are_found_on_read(tmp_path, valid_result, capsys):
    # A result written before telemetry, regimes and warmup existed, holding a two-regime TPOT series.
    rng = np.random.default_rng(3)
    tpots = np.concatenate([1.12 * (1 + 0.03 * rng.standard_normal(30)), 1.85 * (1 + 0.03 * rng.standard_normal(30))])
    template = valid_result["samples"][0]
    old = {k: v for k, v in valid_result.items() if k not in ("telemetry", "regimes", "warmup")}
    old["samples"] = [{**template, "index": i, "tpot_ms": float(t)} for i, t in enumerate(tpots)]
    write_result(tmp_path / "old" / "baseline", old)
    assert show([str(tmp_path / "old" / "baseline" / "result.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "tpot_ms: 2 regimes: 1.1" in out and "[0-29]" in out and "[30-59]" in out
    assert "GPU telemetry" not in out
