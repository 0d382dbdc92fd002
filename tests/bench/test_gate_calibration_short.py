"""CI runs the gate's short-form live calibration (bench/pytest/test_gate_calibration.py) on the reference engine.

The calibration is a benchmark under bench/ (testpaths holds only tests/), so this runs it the way a
user would, as its own pytest-benchmark session, and reads back the rates it recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_short_live_calibration_runs_and_records_its_rates(tmp_path: Path) -> None:
    out = tmp_path / "calibration.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "bench/pytest/test_gate_calibration.py", "-q", "-p", "no:cacheprovider",
         "-o", "addopts=", f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    (bench,) = json.loads(out.read_text())["benchmarks"]
    info = bench["extra_info"]
    assert info["false_alarm_rate"] <= 0.05
    assert info["detection_rate_50pct"] + info["inconclusive_rate_50pct"] == pytest.approx(1.0)
    assert info["measured_ratio"]["0.5"] > 1.15 and info["base_tpot_ms"] > 0
