"""Shared steps of the GPU tests: run a scenario, skip on budget, check the GPU is released."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.gpu.support.budget import Budget
from tests.gpu.support.evidence import Evidence
from tests.gpu.support.harness_runner import HarnessRun, run_harness
from tests.gpu.support.machine import compute_pids
from tests.gpu.support.scenarios import GpuScenario


def run_scenario(evidence: Evidence, budget: Budget, scenario: GpuScenario, target: str, need_s: float,
                 startup_timeout_s: float, toml: Path | None = None) -> HarnessRun:
    """Write the scenario file into the evidence and run it, or skip (recorded) when time is short."""
    check = f"{scenario.name} on {target}"
    short = budget.shortfall(need_s, check)
    if short is not None:
        evidence.record(check, "skipped", reason=short)
        pytest.skip(short)
    path = toml or scenario.write(evidence.root / "scenarios")
    limit = min(need_s + 60, max(budget.left_s(), 30))
    return run_harness(path, target, evidence.run_dir(scenario.name, target), startup_timeout_s, limit,
                       evidence.commands)


def gpu_released(timeout_s: float = 30.0) -> list[int]:
    """PIDs still holding GPU memory after waiting up to timeout_s (empty: the GPU is free)."""
    deadline = time.monotonic() + timeout_s
    pids = compute_pids()
    while pids and time.monotonic() < deadline:
        time.sleep(1.0)
        pids = compute_pids()
    return pids
