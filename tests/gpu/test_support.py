"""CPU checks of the GPU suite's own parts: scenario files, reference flag filtering, report and packing.

One test drives the real harness against the reference engine on the CPU, so the runner, report and
tarball are exercised on real result.json files before any device time is spent.
"""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest

from harness.scenarios.catalog import load_scenario
from reference_impl.engine.cli import build_parser, parse_config
from tests.gpu.support import sigkill_drill
from tests.gpu.support.budget import Budget
from tests.gpu.support.evidence import Evidence, pack
from tests.gpu.support.harness_runner import run_harness
from tests.gpu.support.machine import Gpu, gpu_slug
from tests.gpu.support.report import render
from tests.gpu.support.scenarios import (
    BASELINE,
    PREFILL_CAPTURE,
    GpuScenario,
    capture_oom,
    for_reference,
    two_gpu_scenarios,
)
from tests.gpu.test_3_two_gpu import fewer_gpus_reason, startup_error

ALL = (BASELINE, PREFILL_CAPTURE, capture_oom(79.2), *two_gpu_scenarios())
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "9.0")


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.name)
def test_scenario_files_load_in_the_harness(scenario: GpuScenario, tmp_path: Path) -> None:
    loaded = load_scenario(scenario.write(tmp_path))
    assert loaded.name == scenario.name and loaded.targets == scenario.targets
    assert loaded.hardware_for("sglang").gpus == scenario.gpus
    argv = loaded.server_cli_args()
    assert argv[argv.index("--device") + 1] == "cuda"
    assert ("--disable-prefill-cuda-graph" in argv) is (scenario is not PREFILL_CAPTURE)


def test_prefill_scenario_captures_two_sizes_and_oom_leaves_fixed_headroom() -> None:
    argv = PREFILL_CAPTURE.to_toml()
    assert "cuda_graph_bs_prefill = [64, 128]" in argv
    for total_gib in (79.2, 139.8):
        args = dict(capture_oom(total_gib).server_args)
        assert (1 - args["mem_fraction_static"]) * total_gib == pytest.approx(0.40, abs=1e-3)
        assert args["cuda_graph_max_bs"] == 256 and "max_running_requests" not in args


def test_reference_gets_only_flags_its_parser_knows() -> None:
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    scenario, dropped = for_reference(BASELINE, known)
    assert "disable_prefill_cuda_graph" in dropped and "device" not in dropped
    argv = ["--model-path", "m"]
    for key, value in scenario.server_args:
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    config = parse_config(argv, environ={})
    assert config.device == "cuda"


def test_skip_reasons_name_what_is_missing() -> None:
    assert fewer_gpus_reason(2, (H100,)) == "needs 2 GPUs; 1 visible (NVIDIA H100 80GB HBM3)"
    assert fewer_gpus_reason(2, ()) == "needs 2 GPUs; 0 visible (none)"
    assert fewer_gpus_reason(2, (H100, H100)) is None
    log = "x\nTraceback\n  File a\nRuntimeError: FlashInfer A2A needs MNNVL\nkill_process_tree called\n"
    assert startup_error(log) == "RuntimeError: FlashInfer A2A needs MNNVL"
    assert gpu_slug((H100,)) == "h100" and gpu_slug((H100, H100)) == "h100x2" and gpu_slug(()) == "nogpu"


def test_budget_skips_what_no_longer_fits() -> None:
    budget = Budget(time.monotonic() - 100, 160)
    assert budget.shortfall(30, "x") is None
    assert budget.shortfall(120, "sglang baseline") == \
        "suite time budget: 60 s of 160 s left, sglang baseline needs ~120 s"


def test_real_reference_run_renders_report_and_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_GPU_EVIDENCE", str(tmp_path / "2026-01-01-h100"))
    evidence = Evidence.create((H100,))
    scenario = GpuScenario(name="cpu-smoke", description="reference engine on CPU", targets=("reference",),
                           gpus=0, server_args=(("device", "cpu"), ("cuda_graph_max_bs", 1)),
                           input_len=16, output_len=4, warmups=0, requests=2)
    run = run_harness(scenario.write(evidence.root / "scenarios"), "reference",
                      evidence.run_dir(scenario.name, "reference"), 120, 240, evidence.commands)
    assert run.result is not None, run.console
    assert run.result["status"] == "ok", run.result["failure"]
    evidence.record("cpu smoke", "passed", tpot_ms_median=run.result["summary"]["tpot_ms"]["median"])
    report = render(evidence.root).read_text()
    assert "| cpu-smoke | reference |" in report and "| cpu smoke | passed |" in report
    assert "python3 -m harness run" in evidence.commands.read_text()
    assert (evidence.root / "runs" / "cpu-smoke--reference" / "harness-console.txt").stat().st_size > 0
    tarball = pack(evidence.root, tmp_path / "out")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "results/gpu/2026-01-01-h100/report.md" in names
    assert "results/gpu/2026-01-01-h100/runs/cpu-smoke--reference/cpu-smoke/result.json" in names
    assert json.loads((evidence.root / "checks.json").read_text())[0]["check"] == "cpu smoke"


def test_sigkill_drill_rehearsal_on_the_cpu(tmp_path: Path) -> None:
    # scripts/gpu/sigkill-drill.sh's driver against two reference ranks: the startup kill point is the
    # quick one (rank 1 started, not yet healthy); without nvidia-smi the GPU check is recorded as skipped.
    out = tmp_path / "drill"
    assert sigkill_drill.main([str(out), "--when", "startup", "--target", "reference",
                               "--startup-timeout", "120"]) == 0
    report = json.loads((out / "drill.json").read_text())
    assert report["passed"] and report["server_gone_s"] <= sigkill_drill.BUDGET_S
    assert report["manifest_state"] == "running"
    assert len(report["server_processes"]) == 2
    assert "harness pid" in report["watchdog_log"][0]
    assert {"timeline.txt", "processes-before.txt", "gpu-before.txt"} <= {p.name for p in out.iterdir()}
