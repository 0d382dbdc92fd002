"""Read the tracked numbers out of one scenario's result.json (keys: docs/architecture.md).

A scenario that did not run on this machine raises NotImplementedError (asv records a skip); a run
that failed before producing a number raises MetricMissing (asv records a failure). Nothing is
ever made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OOM_AT_CAPTURE = "oom_during_cuda_graph_capture"
# Where the nightly puts `harness sglang-check --source ... --out RUN_DIR/sglang-check` (docs/tracking.md).
FIX_VERDICTS = Path("sglang-check") / "fixes.json"
# Where `harness nightly` puts each scenario's paired comparison with the control build: the gate's
# --out, RUN_DIR/control/<scenario>/verdict.json (harness/gate/control_points.py).
CONTROL_DIR = Path("control")


class MetricMissing(RuntimeError):
    """The run finished but did not produce this metric (e.g. the server crashed at startup)."""


def load_result(run_dir: Path, scenario: str) -> dict[str, Any]:
    """The scenario's result.json, or NotImplementedError when the harness skipped or never ran it."""
    path = run_dir / scenario / "result.json"
    if not path.is_file():
        raise NotImplementedError(f"{scenario}: no result in {run_dir} (not selected or not run)")
    result = json.loads(path.read_text(encoding="utf-8"))
    if result.get("status") == "skipped":
        raise NotImplementedError(f"{scenario}: skipped: {result.get('skip_reason')}")
    return result


def _observed_by_server(result: dict[str, Any], metric: str) -> None:
    """An imported bench_serving run has client latencies only: its server-side metrics are n/a, not failures."""
    if (result.get("source") or {}).get("kind") == "bench_serving":
        raise NotImplementedError(f"{result.get('scenario')}: {metric}: not in an imported sglang.bench_serving run")


def latency_median_ms(result: dict[str, Any], metric: str) -> float:
    """summary.<metric>.median, for metric ttft_ms or tpot_ms."""
    value = ((result.get("summary") or {}).get(metric) or {}).get("median")
    if value is None:
        raise MetricMissing(f"{result.get('scenario')}: no summary.{metric}.median "
                            f"(status {result.get('status')}, startup {_outcome(result)})")
    return float(value)


def decode_gpu_ms(result: dict[str, Any]) -> float:
    """summary.decode_gpu_ms.median: the server's device time per decode step (median over requests)."""
    _observed_by_server(result, "decode_gpu_ms")
    summary = result.get("summary") or {}
    if "decode_gpu_ms" not in summary and result.get("status") == "ok":
        raise NotImplementedError(f"{result.get('scenario')}: no summary.decode_gpu_ms (a result from before "
                                  "the decode_step records)")
    value = (summary.get("decode_gpu_ms") or {}).get("median")
    if value is None:
        raise MetricMissing(f"{result.get('scenario')}: no summary.decode_gpu_ms.median (status "
                            f"{result.get('status')}, startup {_outcome(result)}; no decode_step records?)")
    return float(value)


def a2a_workspace_bytes(result: dict[str, Any]) -> int:
    """The largest dispatcher_init.workspace_size_per_rank over ranks."""
    _observed_by_server(result, "workspace bytes")
    sizes = [r["workspace_size_per_rank"] for r in _records(result, "dispatcher_init")]
    if not sizes:
        if _outcome(result) not in ("ok", OOM_AT_CAPTURE):
            raise MetricMissing(f"{result.get('scenario')}: startup {_outcome(result)} before the dispatcher")
        raise NotImplementedError(f"{result.get('scenario')}: no A2A dispatcher in this configuration")
    return int(max(sizes))


def capture_oom(result: dict[str, Any]) -> int:
    """1 when the server ran out of memory during CUDA graph capture, 0 when it started."""
    _observed_by_server(result, "capture OOM")
    outcome = _outcome(result)
    if outcome == OOM_AT_CAPTURE:
        return 1
    if outcome == "ok":
        return 0
    raise MetricMissing(f"{result.get('scenario')}: startup {outcome}, neither started nor OOM at capture")


def capture_mem_bytes(result: dict[str, Any]) -> int:
    """Device memory taken by CUDA graph capture on the busiest rank (free before - free after)."""
    _observed_by_server(result, "capture memory")
    per_rank: dict[int, int] = {}
    for r in _records(result, "cuda_graph_capture"):
        used = int(r["mem_free_before"]) - int(r["mem_free_after"])
        per_rank[r.get("rank", 0)] = per_rank.get(r.get("rank", 0), 0) + used
    if not per_rank:
        raise MetricMissing(f"{result.get('scenario')}: no cuda_graph_capture records "
                            f"(startup {_outcome(result)})")
    return max(per_rank.values())


def oracle_failures(result: dict[str, Any]) -> int:
    """How many oracle verdicts failed."""
    _observed_by_server(result, "oracle verdicts")
    oracle = result.get("oracle")
    if not oracle or oracle.get("verdicts") is None:
        raise MetricMissing(f"{result.get('scenario')}: no oracle verdicts")
    return sum(1 for v in oracle["verdicts"] if not v.get("passed"))


def _outcome(result: dict[str, Any]) -> str:
    return str((result.get("startup") or {}).get("outcome"))


def _records(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    records = (result.get("instrumentation") or {}).get("records") or []
    return [r for r in records if r.get("kind") == kind]


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
