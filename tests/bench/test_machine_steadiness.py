"""bench/evidence/machine_steadiness.py: the summary of known chunk times, and the script run as a process."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "evidence" / "machine_steadiness.py"


def _module():
    spec = importlib.util.spec_from_file_location("machine_steadiness", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_a_slow_window_is_measured_against_the_fast_level() -> None:
    steadiness = _module().Steadiness
    chunks = [100.0] * 20 + [130.0, 140.0, 105.0, 150.0, 150.0] + [100.0] * 5
    s = steadiness.from_chunks(chunks)
    assert s.fast_ms == 100.0 and s.median_ms == 100.0
    assert s.slow_share == pytest.approx(4 / 30)  # 105 ms is within 10% of the fast level
    assert s.longest_slow_s == pytest.approx(0.300)  # 150 + 150 ms: the 105 ms chunk ends the first run
    assert s.worst_ratio == pytest.approx(1.5)


def test_too_few_chunks_to_judge_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 10 chunks"):
        _module().Steadiness.from_chunks([100.0] * 9)


def test_script_measures_and_writes_its_report(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "1", "--chunk-ms", "20", "--out", str(tmp_path),
                           "--where", "CI"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "steadiness.json").read_text())
    assert len(saved["chunk_ms"]) >= 10 and all(t > 0 for t in saved["chunk_ms"])
    assert 0 < saved["fast_ms"] <= saved["median_ms"] <= max(saved["chunk_ms"])
    assert 0.0 <= saved["slow_share"] <= 1.0 and saved["worst_ratio"] >= 1.0
    assert saved["longest_slow_s"] <= sum(saved["chunk_ms"]) / 1000.0
    assert (tmp_path / "steadiness.md").read_text() == done.stdout
    assert "# Machine steadiness (CI)" in done.stdout


@pytest.mark.parametrize(("flag", "value"), [("--seconds", "0"), ("--chunk-ms", "-5")])
def test_a_non_positive_duration_is_refused_naming_the_flag(flag: str, value: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), flag, value, "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and flag in done.stderr
    assert not list(tmp_path.iterdir())
