"""bench/asv's two stdlib modules: SuiteConfig from the environment, and the result.json readout."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    # bench/asv is imported by asv as a package named "asv"; load its files directly here.
    spec = importlib.util.spec_from_file_location(f"asv_suite_{name}", ROOT / "bench" / "asv" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


suite_config = load("suite_config")
readout = load("readout")


def test_defaults_track_every_catalog_scenario_on_sglang(tmp_path: Path) -> None:
    config = suite_config.SuiteConfig.from_env({"ASV_CONF_DIR": str(tmp_path)})
    assert config.target == "sglang" and config.run_dir is None and config.launcher is None
    assert list(config.scenarios) == sorted(p.stem for p in (ROOT / "harness/scenarios").glob("*.toml"))
    assert config.out_root == (tmp_path / ".asv" / "runs").resolve()
    assert config.scenario_args() == list(config.scenarios)


@pytest.mark.parametrize(("env", "message"), [
    ({"HARNESS_ASV_SCENARIOS": "baseline nope"}, "HARNESS_ASV_SCENARIOS: unknown scenario(s) nope"),
    ({"HARNESS_ASV_RUN_DIR": "runs/abc"}, "HARNESS_ASV_RUN_DIR: give an absolute path (got 'runs/abc'"),
    ({"HARNESS_ASV_TARGET": "vllm"}, "HARNESS_ASV_TARGET: expected 'reference' or 'sglang', got 'vllm'"),
    ({"HARNESS_ASV_SCENARIOS": "baseline", "HARNESS_ASV_SCENARIO_DIR": "/nonexistent"},
     "HARNESS_ASV_SCENARIO_DIR: /nonexistent lacks baseline (.toml)"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        suite_config.SuiteConfig.from_env(env)
    assert str(excinfo.value).startswith(message)


def test_relative_paths_are_taken_from_where_asv_started(tmp_path: Path) -> None:
    config = suite_config.SuiteConfig.from_env({"ASV_CONF_DIR": str(tmp_path), "HARNESS_ASV_RUN_DIR": "runs/abc",
                                                "HARNESS_ASV_OUT": "/abs/out"})
    assert config.run_dir == (tmp_path / "runs" / "abc").resolve() and config.out_root == Path("/abs/out")


def test_per_commit_virtualenv_runs_sglang_from_that_environment() -> None:
    config = suite_config.SuiteConfig.from_env({"ASV_ENV_TYPE": "virtualenv", "HARNESS_ASV_HARNESS": "/x/harness",
                                                "HARNESS_ASV_HARNESS_ARGS": "--requests 3"})
    assert config.launcher and config.launcher.endswith(" -m sglang.launch_server")
    assert config.harness_command() == ("/x/harness",) and config.harness_args == ("--requests", "3")


def write(run: Path, scenario: str, result: dict[str, Any]) -> None:
    (run / scenario).mkdir(parents=True)
    (run / scenario / "result.json").write_text(json.dumps({"schema_version": 1, "scenario": scenario, **result}))


def typed(obj: dict[str, Any]) -> Any:
    """An in-memory result object read the way a result.json is (harness/store/result.py)."""
    return readout.store.Result.from_json({"schema_version": 1, **obj})


def test_readout_of_a_started_run(tmp_path: Path) -> None:
    write(tmp_path, "a", {
        "status": "ok", "startup": {"outcome": "ok"},
        "summary": {"ttft_ms": {"median": 12.5}, "tpot_ms": {"median": 1.75}},
        "instrumentation": {"records": [
            {"kind": "dispatcher_init", "rank": 0, "workspace_size_per_rank": 100},
            {"kind": "dispatcher_init", "rank": 1, "workspace_size_per_rank": 140},
            {"kind": "cuda_graph_capture", "rank": 0, "mem_free_before": 1000, "mem_free_after": 900},
            {"kind": "cuda_graph_capture", "rank": 0, "mem_free_before": 900, "mem_free_after": 850},
            {"kind": "cuda_graph_capture", "rank": 1, "mem_free_before": 1000, "mem_free_after": 980}]},
        "oracle": {"verdicts": [{"name": "x", "passed": True}, {"name": "y", "passed": False}]}})
    result = readout.load_result(tmp_path, "a")
    assert readout.latency_median_ms(result, "ttft_ms") == 12.5
    assert readout.latency_median_ms(result, "tpot_ms") == 1.75
    assert readout.a2a_workspace_bytes(result) == 140
    assert readout.capture_oom(result) == 0
    assert readout.capture_mem_bytes(result) == 150
    assert readout.oracle_failures(result) == 1


def test_readout_of_an_oom_at_capture(tmp_path: Path) -> None:
    write(tmp_path, "a", {"status": "failed", "startup": {"outcome": "oom_during_cuda_graph_capture"},
                          "summary": None, "oracle": {"verdicts": []},
                          "instrumentation": {"records": [{"kind": "dispatcher_init", "workspace_size_per_rank": 7}]}})
    result = readout.load_result(tmp_path, "a")
    assert readout.capture_oom(result) == 1 and readout.a2a_workspace_bytes(result) == 7
    with pytest.raises(readout.MetricMissing, match=r"no summary\.ttft_ms\.median"):
        readout.latency_median_ms(result, "ttft_ms")
    with pytest.raises(readout.MetricMissing, match="no cuda_graph_capture records"):
        readout.capture_mem_bytes(result)


def test_skipped_missing_and_dispatcherless_scenarios_skip(tmp_path: Path) -> None:
    write(tmp_path, "s", {"status": "skipped", "skip_reason": "needs 4 GPUs, found 0"})
    write(tmp_path, "d", {"status": "ok", "startup": {"outcome": "ok"}, "instrumentation": {"records": []}})
    with pytest.raises(NotImplementedError, match="needs 4 GPUs, found 0"):
        readout.load_result(tmp_path, "s")
    with pytest.raises(NotImplementedError, match="no result"):
        readout.load_result(tmp_path, "missing")
    with pytest.raises(NotImplementedError, match="no A2A dispatcher"):
        readout.a2a_workspace_bytes(readout.load_result(tmp_path, "d"))
    with pytest.raises(readout.MetricMissing):
        readout.capture_oom(typed({"scenario": "c", "status": "failed", "startup": {"outcome": "crash"}}))


def test_decode_gpu_ms_reads_out_or_says_why_not() -> None:
    stat = {"median": 0.9012, "p90": 0.91, "p99": 0.92, "mean": 0.9, "stdev": 0.002, "n": 60}
    started = {"scenario": "a", "status": "ok", "startup": {"outcome": "ok"}}
    assert readout.decode_gpu_ms(typed({**started, "summary": {"decode_gpu_ms": stat}})) == 0.9012
    # A result from before the decode_step records: a skip, not a failure.
    with pytest.raises(NotImplementedError, match="before the decode_step records"):
        readout.decode_gpu_ms(typed({**started, "summary": {"tpot_ms": stat}}))
    # Measured, but the server wrote no decode_step records (e.g. the probe's hook is missing): a failure.
    empty = {**stat, "median": None, "n": 0}
    with pytest.raises(readout.MetricMissing, match="no decode_step records"):
        readout.decode_gpu_ms(typed({**started, "summary": {"decode_gpu_ms": empty}}))
    with pytest.raises(readout.MetricMissing):
        readout.decode_gpu_ms(typed({"scenario": "a", "status": "failed", "startup": {"outcome": "crash"}, "summary": {}}))
    with pytest.raises(NotImplementedError, match=r"not in an imported sglang\.bench_serving run"):
        readout.decode_gpu_ms(typed({**started, "source": {"kind": "bench_serving"}, "summary": {}}))


def test_fix_verdicts_read_out_as_one_or_zero_and_never_made_up(tmp_path: Path) -> None:
    """sglang-check's fixes.json (tests/harness/upstream/test_source_check.py runs the real one through asv)."""
    def verdicts(**fields: Any) -> None:
        (tmp_path / "sglang-check").mkdir(exist_ok=True)
        (tmp_path / "sglang-check" / "fixes.json").write_text(json.dumps(fields))

    with pytest.raises(NotImplementedError, match="sglang-check --source was not run"):
        readout.fix_present(tmp_path, "a2a-token-cap")
    verdicts(error=None, fixes={"a": {"verdict": "present"}, "b": {"verdict": "absent"},
                                "c": {"verdict": "not_observable"}, "d": {"verdict": "not_drivable"}})
    assert (readout.fix_present(tmp_path, "a"), readout.fix_present(tmp_path, "b")) == (1, 0)
    with pytest.raises(NotImplementedError, match="c: not observable"):
        readout.fix_present(tmp_path, "c")
    for fix in ("d", "e"):
        with pytest.raises(readout.MetricMissing, match=f"{fix}: verdict"):
            readout.fix_present(tmp_path, fix)
    verdicts(error="UnreadableSource: x.py: cannot parse", fixes={"a": {"verdict": "not_drivable"}})
    with pytest.raises(readout.MetricMissing, match=r"the check did not run: UnreadableSource: x\.py"):
        readout.fix_present(tmp_path, "a")
    assert suite_config.fix_names() == ["sp-runtime-max-tokens", "dp-workspace-sizing", "a2a-token-cap",
                                        "disable-attn-tp-gather", "moe-dp1-attn-cp"]


def test_ratio_to_control_reads_the_gates_estimate_and_never_makes_one_up(tmp_path: Path) -> None:
    """RUN_DIR/control/<scenario>/verdict.json of `harness nightly` (tests/bench/test_asv_control.py runs asv on it)."""
    with pytest.raises(NotImplementedError, match="no comparison with the control build"):
        readout.ratio_to_control(tmp_path, "a", "tpot_ms")
    (tmp_path / "control" / "a").mkdir(parents=True)
    verdict = tmp_path / "control" / "a" / "verdict.json"

    def row(metric: str, verdict: str, estimate: dict[str, Any] | None, reason: str = "") -> dict[str, Any]:
        return {"scenario": "a", "metric": metric, "verdict": verdict, "reason": reason, "estimate": estimate}

    verdict.write_text(json.dumps({"problems": [], "rows": [
        row("tpot_ms", "regression", {"ratio": 1.0425, "ci_low": 1.03, "ci_high": 1.05}),
        row("decode_gpu_ms", "skipped", None, "not measured on either side"),
        row("ttft_ms", "inconclusive", None, "no samples on one side"),
        {"scenario": "b", "metric": "tpot_ms", "estimate": {"ratio": 9.0}}]}))
    assert readout.ratio_to_control(tmp_path, "a", "tpot_ms") == 1.0425
    with pytest.raises(NotImplementedError, match="skipped: not measured on either side"):
        readout.ratio_to_control(tmp_path, "a", "decode_gpu_ms")
    with pytest.raises(NotImplementedError, match="inconclusive: no samples on one side"):
        readout.ratio_to_control(tmp_path, "a", "ttft_ms")
    # The control could not be compared (the gate lists why and writes no row): a skip naming the problem.
    verdict.write_text(json.dumps({"problems": ["x/base/result.json: base run failed"], "rows": []}))
    with pytest.raises(NotImplementedError, match="base run failed"):
        readout.ratio_to_control(tmp_path, "a", "tpot_ms")
    for broken in ("{", json.dumps({"rows": None}),
                   json.dumps({"rows": [row("tpot_ms", "no_change", {"ratio": -1.0})]})):
        verdict.write_text(broken)
        with pytest.raises(readout.MetricMissing, match=str(verdict)):
            readout.ratio_to_control(tmp_path, "a", "tpot_ms")


def test_gpu_telemetry_reads_out_from_a_real_h200_result_and_skips_on_the_cpu(tmp_path: Path) -> None:
    import gzip
    import shutil

    # A real sglang result from the 2026-12-07 H200 sitting: the SM clock held 1980 MHz, no throttling.
    source = ROOT / "results/gate/2026-12-07-h200-sglang/gate-aa/report/runs/base/round-00"
    scenario = "sglang-paired-calibration"
    (tmp_path / scenario).mkdir()
    with gzip.open(source / scenario / "result.json.gz", "rb") as packed, \
            (tmp_path / scenario / "result.json").open("wb") as plain:
        shutil.copyfileobj(packed, plain)
    result = readout.load_result(tmp_path, scenario)
    assert readout.sm_clock_mhz(result) == 1980.0 and readout.throttled_share(result) == 0.0
    cpu = json.loads((tmp_path / scenario / "result.json").read_text())
    cpu["telemetry"] = {"available": False, "reason": "no NVML", "interval_s": 0.1}
    (tmp_path / scenario / "result.json").write_text(json.dumps(cpu))
    with pytest.raises(NotImplementedError, match="no GPU telemetry"):
        readout.sm_clock_mhz(readout.load_result(tmp_path, scenario))
