"""The design the gate takes: paired where both servers fit in GPU memory, else alternating, and why.

This machine has no GPU, so NVML's answer is stood in for (harness.gate.sampling.probe_devices); the
sglang scenario is then skipped on both sides (hardware absent) and no server starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.gate import sampling
from harness.gate.cli import main
from harness.gate.memfit import GIB, DeviceMemory

H200 = int(140.4 * GIB)


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path / "locks"))


def _gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_gib: float) -> dict:
    monkeypatch.setattr(sampling, "probe_devices", lambda: (DeviceMemory(0, H200, int(free_gib * GIB)),))
    out = tmp_path / "gate"
    code = main(["--target", "sglang", "--base-cmd", "python -m sglang.launch_server", "--head-cmd",
                 "python -m sglang.launch_server", "--requests", "8", "--out", str(out), "--no-plots", "baseline"])
    assert code == 0  # skipped on both sides: nothing undecided
    return json.loads((out / "verdict.json").read_text())


def test_a_busy_gpu_falls_back_to_alternating_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = _gate(tmp_path, monkeypatch, free_gib=30.0)
    assert verdict["design"] == "alternating"
    reason = verdict["sampling"]["design_reason"]
    assert reason.startswith("GPU 0: 30.0 of 140.4 GiB free") and "alternating server starts instead" in reason
    assert (tmp_path / "gate" / "runs" / "base" / "round-02").is_dir()  # the alternating default: 3 rounds
    assert "Design: **alternating server starts** (GPU 0: 30.0 of 140.4 GiB free" in \
        (tmp_path / "gate" / "gate.md").read_text()


def test_an_empty_gpu_takes_both_servers_with_a_memory_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = _gate(tmp_path, monkeypatch, free_gib=139.0)
    assert verdict["design"] == "paired"
    assert verdict["sampling"]["design_reason"].startswith("two servers per GPU, --max-total-tokens 65536 each (room for --mem-fraction-static 0.73 each")
    assert not (tmp_path / "gate" / "runs" / "base" / "round-01").exists()  # one server pair
