"""pytest-benchmark compare over the live-server latency benchmark: an injected decode delay fails
`--benchmark-compare-fail=median:5%`, an A/A rerun passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = "bench/test_e2e_latency.py"
THRESHOLD = "median:5%"
# The injected slowdown is sized from the measured baseline: ~6x the 5% threshold on any machine.
TARGET_SLOWDOWN = 0.30


def run_bench(storage: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", BENCH, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            f"--benchmark-storage=file://{storage}", "--benchmark-columns=min,median,max,rounds", *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)


def saved_run(storage: Path) -> dict:
    files = sorted(storage.glob("*/0001_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_compare_fails_on_an_injected_decode_delay_and_passes_an_aa_rerun(tmp_path: Path) -> None:
    storage = tmp_path / "benchmarks"
    base = run_bench(storage, "--benchmark-save=base")
    assert base.returncode == 0, base.stdout + base.stderr
    bench = saved_run(storage)["benchmarks"][0]
    assert bench["name"] == "test_bs1_request_latency"
    info = bench["extra_info"]
    assert info["ttft_ms_median"] > 0 and info["tpot_ms_median"] > 0 and info["batch_size"] == 1
    median_ms = bench["stats"]["median"] * 1000.0
    decode_steps = info["output_len"] - 1

    # A/A: one more try when the first rerun fails. Each run is one server start, and on a shared 2-core
    # VM a neighbour's burst moved a whole run's median by 10% while both runs' minimum stayed at
    # 227 ms (2026-11-30); a second A/A failure in a row is a real problem.
    same = run_bench(storage, "--benchmark-compare=0001", f"--benchmark-compare-fail={THRESHOLD}")
    if same.returncode != 0:
        same = run_bench(storage, "--benchmark-compare=0001", f"--benchmark-compare-fail={THRESHOLD}")
    assert same.returncode == 0, "A/A rerun failed the 5% gate twice:\n" + same.stdout[-3000:]

    delay_us = max(200, round(TARGET_SLOWDOWN * median_ms * 1000.0 / decode_steps))
    slow = run_bench(storage, "--benchmark-compare=0001", f"--benchmark-compare-fail={THRESHOLD}",
                     f"--engine-arg=--inject-decode-delay-us={delay_us}")
    assert slow.returncode != 0, f"a {delay_us} us/step delay passed the gate:\n" + slow.stdout[-3000:]
    assert "Performance has regressed" in slow.stdout + slow.stderr
    assert "Field 'median' has failed PercentageRegressionCheck" in slow.stdout + slow.stderr
