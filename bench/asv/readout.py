"""Read the tracked numbers out of one scenario's result.json (keys: docs/architecture.md).

result.json is read and its metrics derived by harness/store/result.py, the reader the gate uses too,
so the dashboard and the gate agree (e.g. on an OOM at capture). A scenario that did not run on this
machine raises NotImplementedError (asv records a skip); a run that failed before producing a number
raises MetricMissing (asv records a failure). Nothing is ever made up.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same module, loaded by path below at run time
    from harness.store.result import Result

ROOT = Path(__file__).resolve().parents[2]
# Where the nightly puts `harness sglang-check --source ... --out RUN_DIR/sglang-check` (docs/tracking.md).
FIX_VERDICTS = Path("sglang-check") / "fixes.json"
# Where `harness nightly` puts each scenario's paired comparison with the control build: the gate's
# --out, RUN_DIR/control/<scenario>/verdict.json (harness/gate/control_points.py).
CONTROL_DIR = Path("control")


def _store_result() -> ModuleType:
    """harness/store/result.py (stdlib only), loaded by path: asv's per-commit environment may lack the harness."""
    spec = importlib.util.spec_from_file_location("_harness_store_result", ROOT / "harness" / "store" / "result.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


store = _store_result()


class MetricMissing(RuntimeError):
    """The run finished but did not produce this metric (e.g. the server crashed at startup)."""


def load_result(run_dir: Path, scenario: str) -> Result:
    """The scenario's result.json as a harness Result, or NotImplementedError when the harness skipped or never ran it."""
    path = run_dir / scenario / store.RESULT_FILE
    if not path.is_file():
        raise NotImplementedError(f"{scenario}: no result in {run_dir} (not selected or not run)")
    result = store.read_result(path)
    if result.status == "skipped":
        raise NotImplementedError(f"{scenario}: skipped: {result.skip_reason}")
    return result


def _observed_by_server(result: Result, metric: str) -> None:
    """An imported bench_serving run has client latencies only: its server-side metrics are n/a, not failures."""
    if result.imported:
        raise NotImplementedError(f"{result.scenario}: {metric}: not in an imported sglang.bench_serving run")


def latency_median_ms(result: Result, metric: str) -> float:
    """summary.<metric>.median, for metric ttft_ms or tpot_ms."""
    value = result.median(metric)
    if value is None:
        raise MetricMissing(f"{result.scenario}: no summary.{metric}.median "
                            f"(status {result.status}, startup {result.startup_outcome})")
    return float(value)


def decode_gpu_ms(result: Result) -> float:
    """summary.decode_gpu_ms.median: the server's device time per decode step (median over requests)."""
    _observed_by_server(result, "decode_gpu_ms")
    if not result.summarised("decode_gpu_ms") and result.status == "ok":
        raise NotImplementedError(f"{result.scenario}: no summary.decode_gpu_ms (a result from before "
                                  "the decode_step records)")
    value = result.median("decode_gpu_ms")
    if value is None:
        raise MetricMissing(f"{result.scenario}: no summary.decode_gpu_ms.median (status "
                            f"{result.status}, startup {result.startup_outcome}; no decode_step records?)")
    return float(value)


def a2a_workspace_bytes(result: Result) -> int:
    """The largest dispatcher_init.workspace_size_per_rank over ranks (Result.workspace_bytes)."""
    _observed_by_server(result, "workspace bytes")
    if result.workspace_bytes is None:
        # The dispatcher is built before CUDA graph capture: a server that got that far had its chance.
        if result.startup_outcome != "ok" and not result.capture_oom:
            raise MetricMissing(f"{result.scenario}: startup {result.startup_outcome} before the dispatcher")
        raise NotImplementedError(f"{result.scenario}: no A2A dispatcher in this configuration")
    return int(result.workspace_bytes)


def capture_oom(result: Result) -> int:
    """1 when the server ran out of memory during CUDA graph capture (Result.capture_oom), 0 when it started."""
    _observed_by_server(result, "capture OOM")
    if result.capture_oom:
        return 1
    if result.startup_outcome == "ok":
        return 0
    raise MetricMissing(f"{result.scenario}: startup {result.startup_outcome}, neither started nor OOM at capture")


def capture_mem_bytes(result: Result) -> int:
    """Device memory taken by CUDA graph capture on the busiest rank (free before - free after)."""
    _observed_by_server(result, "capture memory")
    if result.capture_mem_bytes is None:
        raise MetricMissing(f"{result.scenario}: no cuda_graph_capture records "
                            f"(startup {result.startup_outcome})")
    return int(result.capture_mem_bytes)


def oracle_failures(result: Result) -> int:
    """How many oracle verdicts failed (a verdict not checked in this run is not a failure)."""
    _observed_by_server(result, "oracle verdicts")
    if result.oracle_failures is None:
        raise MetricMissing(f"{result.scenario}: no oracle verdicts")
    return int(result.oracle_failures)


def sm_clock_mhz(result: Result) -> float:
    """The lowest SM clock NVML saw while the run measured (telemetry.summary.sm_clock_mhz.min)."""
    if result.gpu is None or result.gpu.sm_clock_mhz_min is None:
        raise NotImplementedError(f"{result.scenario}: no GPU telemetry (a CPU run, or NVML unavailable)")
    return result.gpu.sm_clock_mhz_min


def throttled_share(result: Result) -> float:
    """Share of the measure phase's telemetry samples with a throttle reason (0..1)."""
    if result.gpu is None or result.gpu.throttled_share is None:
        raise NotImplementedError(f"{result.scenario}: no GPU telemetry (a CPU run, or NVML unavailable)")
    return result.gpu.throttled_share


def fix_present(run_dir: Path, fix: str) -> int:
    """1 when the checks found `fix` in sglang's source at the run's commit, 0 when they found it absent."""
    path = run_dir / FIX_VERDICTS
    if not path.is_file():
        raise NotImplementedError(f"{fix}: no {path} (harness sglang-check --source was not run for this run)")
    verdicts = json.loads(path.read_text(encoding="utf-8"))
    if verdicts.get("error"):
        raise MetricMissing(f"{path}: the check did not run: {verdicts['error']}")
    verdict = ((verdicts.get("fixes") or {}).get(fix) or {}).get("verdict")
    if verdict == "not_observable":
        raise NotImplementedError(f"{fix}: not observable in this sglang tree ({path})")
    if verdict not in ("present", "absent"):
        raise MetricMissing(f"{path}: {fix}: verdict {verdict!r}, expected present or absent")
    return int(verdict == "present")


def ratio_to_control(run_dir: Path, scenario: str, metric: str) -> float:
    """The gate's estimate head/base of `metric` (the commit under test over the control build) from verdict.json."""
    path = run_dir / CONTROL_DIR / scenario / "verdict.json"
    if not path.is_file():
        raise NotImplementedError(f"{scenario}: {metric}: no comparison with the control build ({path})")
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
        rows = [r for r in verdict["rows"] if r.get("scenario") == scenario and r.get("metric") == metric]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MetricMissing(f"{path}: not a gate verdict (rows[] of objects): {exc!r}") from None
    if not rows:
        # The gate compared nothing for it: the control side failed (see problems) or the metric is not gated.
        problems = "; ".join(verdict.get("problems") or []) or "no row"
        raise NotImplementedError(f"{scenario}: {metric}: not compared with the control ({path}: {problems})")
    row = rows[0]
    if row.get("estimate") is None:
        # A side measured nothing (e.g. an older control without decode_step records, or a crashed head,
        # which the absolute track_* already report as failures): no ratio, and none is made up.
        raise NotImplementedError(f"{scenario}: {metric}: no ratio to the control ({row.get('verdict')}: "
                                  f"{row.get('reason')}; {path})")
    ratio = row["estimate"].get("ratio") if isinstance(row["estimate"], dict) else None
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise MetricMissing(f"{path}: {scenario} {metric}: estimate.ratio {ratio!r}, expected a positive number")
    return float(ratio)
