"""Two GPUs: DP attention with and without the attn-TP gather, attention CP, FlashInfer A2A (nvidia H200 x2)."""

from __future__ import annotations

import re

import pytest

from tests.gpu.support.budget import Budget
from tests.gpu.support.checks import gpu_released, run_scenario
from tests.gpu.support.evidence import Evidence
from tests.gpu.support.machine import Gpu
from tests.gpu.support.scenarios import GpuScenario, two_gpu_scenarios

pytestmark = pytest.mark.gpu


def fewer_gpus_reason(needed: int, gpus: tuple[Gpu, ...]) -> str | None:
    """The exact skip reason when this box has fewer GPUs than a scenario needs."""
    if len(gpus) >= needed:
        return None
    names = ", ".join(g.name for g in gpus) or "none"
    return f"needs {needed} GPUs; {len(gpus)} visible ({names})"


def startup_error(run_dir_log: str) -> str:
    """The last exception line of a server log: what the issue asks to record for FlashInfer A2A."""
    lines = [ln.strip() for ln in run_dir_log.splitlines() if re.search(r"(Error|Exception)\b", ln)]
    return lines[-1] if lines else "no exception line in server.log"


@pytest.mark.parametrize("scenario", two_gpu_scenarios(), ids=lambda s: s.name)
def test_two_gpu_scenario(scenario: GpuScenario, evidence: Evidence, budget: Budget, gpus: tuple[Gpu, ...]) -> None:
    reason = fewer_gpus_reason(scenario.gpus, gpus)
    check = f"{scenario.name} on sglang"
    if reason:
        scenario.write(evidence.root / "scenarios")
        evidence.record(check, "skipped", reason=reason)
        pytest.skip(reason)
    run = run_scenario(evidence, budget, scenario, "sglang", need_s=200, startup_timeout_s=240)
    result = run.result
    assert result is not None, run.console[-3000:]
    if scenario.name == "gpu2-flashinfer-a2a" and result["status"] == "failed" and \
            result["failure"]["stage"] == "startup":
        log = (run.scenario_dir / "server.log").read_text(errors="replace")
        error = startup_error(log)
        evidence.record(check, "skipped", reason=f"FlashInfer A2A cannot run here: {error}",
                        failure=result["failure"])
        pytest.skip(f"FlashInfer A2A cannot run here: {error}")
    tpot = result["summary"]["tpot_ms"]
    evidence.record(check, "passed" if result["status"] == "ok" and result["oracle"]["ok"] else "failed",
                    tpot_ms_median=tpot["median"], oracle_ok=result["oracle"]["ok"],
                    verdicts=len(result["oracle"]["verdicts"]), failure=result.get("failure"))
    assert result["status"] == "ok", result.get("failure")
    assert tpot["n"] > 0 and tpot["median"] > 0
    assert result["oracle"]["verdicts"] and result["oracle"]["ok"] is True, result["oracle"]
    assert gpu_released() == []
