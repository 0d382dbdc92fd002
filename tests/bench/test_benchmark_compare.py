"""pytest-benchmark compare over the live-server latency benchmark: an injected decode delay fails
`--benchmark-compare-fail=median:40%`, an A/A rerun passes.

The subject is the compare gate on the live benchmark, not the CPU engine's speed, and a shared 2-core
VM's speed swings by 30-50% in windows of seconds (bench/evidence/machine_steadiness.py, results/noise): medians
of unpaced runs moved up to 38% between back-to-back runs and a single A/A pair failed 5% in 1 of 5 to 6
of 12 tries. So every run here paces each decode step with a fixed sleep (the engine's own
--inject-decode-delay-us), which makes ~80% of the request time time that the machine's speed cannot
move: paced medians moved at most 3.5% between 10 back-to-back runs (2026-11-30). With one of the two
cores kept busy the unpaced ~20% of the request time can slow by the VM's worst 2.1x, which moves the
paced median by up to ~22%: the gate's threshold sits at 40% (above that worst case), and the injected
slowdown at +120% of the median, 3x the threshold and 5.5x the worst noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = "bench/pytest/test_e2e_latency.py"
THRESHOLD = "median:40%"
PACE_US = 100_000
# The injected slowdown, on top of the pace, is sized from the measured paced baseline: 3x the threshold,
# 5.5x the worst noise (22%).
TARGET_SLOWDOWN = 1.2
# Fresh A/A pairs tried before the test fails, for a rare burst longer than a run; none was needed in
# 10 paced runs, and a systematic A/A failure (a rerun always slower, a compare that always fails) fails all.
AA_ATTEMPTS = 3


def run_bench(storage: Path, *extra: str, delay_us: int = PACE_US) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", BENCH, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            f"--benchmark-storage=file://{storage}", "--benchmark-columns=min,median,max,rounds",
            f"--engine-arg=--inject-decode-delay-us={delay_us}", *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)


def saved_run(storage: Path, run_id: str) -> dict:
    files = sorted(storage.glob(f"*/{run_id}_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def aa_pair(storage: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Save a base run, then rerun unchanged against it under the gate; returns the base's run id."""
    base = run_bench(storage, "--benchmark-save=base")
    assert base.returncode == 0, base.stdout + base.stderr
    run_id = sorted(storage.glob("*/*_base.json"))[-1].name[:4]
    return run_id, run_bench(storage, f"--benchmark-compare={run_id}", f"--benchmark-compare-fail={THRESHOLD}")


@pytest.mark.slow
def test_compare_fails_on_an_injected_decode_delay_and_passes_an_aa_rerun(tmp_path: Path) -> None:
    storage = tmp_path / "benchmarks"
    # Each attempt is a fresh base and its rerun back to back, in one noise window; every base stays saved.
    attempts: list[subprocess.CompletedProcess[str]] = []
    for _ in range(AA_ATTEMPTS):
        run_id, rerun = aa_pair(storage)
        attempts.append(rerun)
        if rerun.returncode == 0:
            break
    assert attempts[-1].returncode == 0, (f"A/A rerun failed the {THRESHOLD} gate {len(attempts)} times in a row:\n"
                                          + "\n".join(a.stdout[-1500:] for a in attempts))
    bench = saved_run(storage, run_id)["benchmarks"][0]
    assert bench["name"] == "test_bs1_request_latency"
    info = bench["extra_info"]
    assert info["ttft_ms_median"] > 0 and info["batch_size"] == 1
    # The pace shows in TPOT: each decode step sleeps PACE_US.
    assert info["tpot_ms_median"] >= PACE_US / 1000.0
    median_ms = bench["stats"]["median"] * 1000.0
    decode_steps = info["output_len"] - 1

    delay_us = PACE_US + round(TARGET_SLOWDOWN * median_ms * 1000.0 / decode_steps)
    slow = run_bench(storage, f"--benchmark-compare={run_id}", f"--benchmark-compare-fail={THRESHOLD}",
                     delay_us=delay_us)
    assert slow.returncode != 0, f"a {delay_us} us/step delay passed the gate:\n" + slow.stdout[-3000:]
    assert "Performance has regressed" in slow.stdout + slow.stderr
    assert "Field 'median' has failed PercentageRegressionCheck" in slow.stdout + slow.stderr
