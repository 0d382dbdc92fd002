"""Synthetic results that follow the documented result.json keys (docs/architecture.md)."""

from __future__ import annotations

from typing import Any

import numpy as np


def result_obj(scenario: str, *, tpot: np.ndarray | None = None, ttft: np.ndarray | None = None,
               status: str = "ok", outcome: str = "ok", workspace: int | None = None,
               oracle: dict[str, bool] | None = None, commit: str = "abc1234",
               commit_time: str | None = None, capture_oom_record: bool = False) -> dict[str, Any]:
    tpot = np.empty(0) if tpot is None else tpot
    ttft = np.full(tpot.size, 20.0) if ttft is None else ttft
    # One warm-up first: the gate must ignore it.
    samples = [{"warmup": True, "ttft_ms": 999.0, "tpot_ms": 999.0}]
    samples += [{"ttft_ms": float(a), "tpot_ms": float(b)} for a, b in zip(ttft, tpot, strict=True)]
    records: list[dict[str, Any]] = []
    if workspace is not None:
        records = [{"schema": 1, "kind": "dispatcher_init", "pid": 1, "rank": r, "t": 0.0, "ep_size": 2,
                    "ep_rank": r, "workspace_size_per_rank": workspace} for r in range(2)]
    if capture_oom_record:
        records.append({"schema": 1, "kind": "capture_oom", "pid": 1, "rank": 0, "t": 0.0, "batch_size": 4})
    target: dict[str, Any] = {"kind": "reference", "version": "0", "commit": commit}
    if commit_time:
        target["commit_time"] = commit_time
    return {
        "schema_version": 1,
        "scenario": scenario,
        "status": status,
        "skip_reason": "needs 4 GPUs" if status == "skipped" else None,
        "target": target,
        "samples": samples if status == "ok" else [],
        "summary": {"tpot_ms": {"median": float(np.median(tpot)) if tpot.size else None, "n": int(tpot.size)}},
        "startup": {"outcome": outcome},
        "instrumentation": {"records": records, "errors": []},
        "oracle": {"ok": all((oracle or {}).values()),
                   "verdicts": [{"name": k, "expected": 1, "observed": 1, "passed": v}
                                for k, v in (oracle or {}).items()]},
    }


def tpot_samples(rng: np.random.Generator, n: int, scale: float = 1.0, median: float = 20.0,
                 sigma: float = 0.01) -> np.ndarray:
    """Log-normal per-request TPOT: 1% spread, like BS=1 decode on a quiet machine."""
    return median * scale * rng.lognormal(0.0, sigma, size=n)
