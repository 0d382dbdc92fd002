"""One GPU: real sglang 0.5.16 at BS=1 with instrumentation, a forced capture OOM, the reference on CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reference_impl.engine.cli import build_parser
from tests.gpu.support.budget import Budget
from tests.gpu.support.checks import gpu_released, run_scenario
from tests.gpu.support.evidence import Evidence
from tests.gpu.support.harness_runner import REPO_ROOT
from tests.gpu.support.machine import Gpu, arch
from tests.gpu.support.scenarios import BASELINE, PREFILL_CAPTURE, capture_oom, for_reference

pytestmark = pytest.mark.gpu

SGLANG_VERSION = os.environ.get("HARNESS_GPU_SGLANG_VERSION", "0.5.16")
_VERSIONS = """
import json, sys, torch, triton
out = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
       "triton": triton.__version__, "gpu": torch.cuda.get_device_name(0)}
for name in ("sglang", "sgl_kernel", "flashinfer", "transformers", "xgrammar"):
    try:
        module = __import__(name)
        out[name] = getattr(module, "__version__", "?")
    except Exception as exc:  # the exact import error is the evidence
        out[name] = f"IMPORT FAILED: {type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_offline_install_imports(evidence: Evidence, gpus: tuple[Gpu, ...]) -> None:
    """The carried wheels import on the GPU box: sglang, the slimmed sgl_kernel (loads sm90 ops), flashinfer."""
    done = subprocess.run([sys.executable, "-c", _VERSIONS], capture_output=True, text=True, timeout=180,
                          cwd=REPO_ROOT, check=False)
    versions = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {"error": done.stderr[-2000:]}
    env = {**versions, "gpus": ", ".join(f"{g.name} ({g.memory_mib} MiB, {arch(g)})" for g in gpus),
           "pythonpath": os.environ.get("PYTHONPATH", "")}
    evidence.write_json("environment.json", env)
    failed = {k: v for k, v in versions.items() if isinstance(v, str) and v.startswith("IMPORT FAILED")}
    evidence.record("offline install imports", "failed" if failed or "error" in versions else "passed", **env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not failed, failed
    assert versions["sglang"] == SGLANG_VERSION


def test_sglang_baseline_bs1_with_instrumentation(evidence: Evidence, budget: Budget) -> None:
    run = run_scenario(evidence, budget, BASELINE, "sglang", need_s=240, startup_timeout_s=300)
    result = run.result
    assert result is not None, run.console[-3000:]
    summary = result["summary"]
    evidence.record("sglang baseline BS=1", "passed" if result["status"] == "ok" else "failed",
                    ttft_ms_median=summary["ttft_ms"]["median"], tpot_ms_median=summary["tpot_ms"]["median"],
                    startup_s=(result.get("startup") or {}).get("elapsed_s"), failure=result.get("failure"))
    assert result["status"] == "ok", result.get("failure")
    assert result["target"]["version"] == SGLANG_VERSION
    assert summary["ttft_ms"]["n"] == 10 and summary["ttft_ms"]["median"] > 0
    assert summary["tpot_ms"]["n"] == 10 and summary["tpot_ms"]["median"] > 0
    phases = {p["name"]: p for p in result["startup"]["capture"]["phases"]}
    assert any("decode" in name for name in phases), phases
    kinds = {r.get("kind") for r in result["instrumentation"]["records"]}
    assert "process_start" in kinds and "cuda_graph_capture" in kinds, (kinds, result["instrumentation"]["errors"])
    assert result["oracle"]["verdicts"], result["oracle"]
    assert result["oracle"]["ok"] is True, result["oracle"]
    assert gpu_released() == []


def test_capture_oom_is_detected_and_recorded(evidence: Evidence, budget: Budget, gpus: tuple[Gpu, ...]) -> None:
    scenario = capture_oom(gpus[0].memory_mib / 1024)
    run = run_scenario(evidence, budget, scenario, "sglang", need_s=200, startup_timeout_s=240)
    result = run.result
    assert result is not None, run.console[-3000:]
    startup = result.get("startup") or {}
    left = gpu_released()
    evidence.record("capture OOM detected", "passed" if startup.get("outcome") == "oom_during_cuda_graph_capture"
                    and not left else "failed", startup_outcome=startup.get("outcome"), message=startup.get("message"),
                    startup_s=startup.get("elapsed_s"), harness_rc=run.returncode, gpu_pids_left=left,
                    mem_fraction_static=dict(scenario.server_args)["mem_fraction_static"])
    assert startup.get("outcome") == "oom_during_cuda_graph_capture", startup
    assert result["status"] == "failed" and result["failure"]["stage"] == "startup"
    assert run.returncode == 1 and scenario.name in run.console, "the harness still reports the failed run"
    assert (run.scenario_dir / "server.log").stat().st_size > 0
    assert startup["elapsed_s"] < 240, "detected from the log, not by waiting out the health deadline"
    assert left == [], f"GPU memory still held by {left} after the harness stopped the server group"


def test_reference_engine_on_cuda_side_by_side(evidence: Evidence, budget: Budget) -> None:
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    scenario, dropped = for_reference(BASELINE, known)
    toml = scenario.write(evidence.root / "scenarios" / "reference")
    run = run_scenario(evidence, budget, scenario, "reference", need_s=120, startup_timeout_s=120, toml=toml)
    result = run.result
    assert result is not None, run.console[-3000:]
    sglang_result = evidence.run_dir(BASELINE.name, "sglang") / BASELINE.name / "result.json"
    side = {"scenario": BASELINE.name, "flags_not_passed_to_reference": list(dropped),
            "reference": {k: result["summary"][k]["median"] for k in ("ttft_ms", "tpot_ms")}}
    if sglang_result.exists():
        other = json.loads(sglang_result.read_text())
        side["sglang"] = {k: other["summary"][k]["median"] for k in ("ttft_ms", "tpot_ms")}
    evidence.write_json("side-by-side.json", side)
    evidence.record("reference engine on CUDA", "passed" if result["status"] == "ok" else "failed", **side)
    assert result["status"] == "ok", result.get("failure")
    assert result["scenario_detail"]["server_args"]["device"] == "cuda"
    assert result["summary"]["tpot_ms"]["n"] == 10 and result["summary"]["tpot_ms"]["median"] > 0
    assert gpu_released() == []


def test_prefill_capture_memory(evidence: Evidence, budget: Budget) -> None:
    run = run_scenario(evidence, budget, PREFILL_CAPTURE, "sglang", need_s=240, startup_timeout_s=300)
    result = run.result
    assert result is not None, run.console[-3000:]
    phases = {p["name"]: p for p in ((result.get("startup") or {}).get("capture") or {}).get("phases", [])}
    evidence.record("prefill + decode capture memory", "passed" if result["status"] == "ok" else "failed",
                    phases=phases, failure=result.get("failure"))
    assert result["status"] == "ok", result.get("failure")
    assert any("prefill" in name for name in phases) and any("decode" in name for name in phases), phases
    assert result["summary"]["ttft_ms"]["median"] > 0
    assert gpu_released() == []
