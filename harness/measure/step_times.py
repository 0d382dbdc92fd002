"""Per-request decode step times from the server's decode_step records: decode_gpu_ms and decode_host_ms.

decode_gpu_ms is the mean device time of one decode step of the request (CUDA events around the graph
replay or eager forward; without a device, the forward's wall time by the host clock); decode_host_ms
the mean of (step wall time - device time) over its steps whose wall time is known. A request's steps
come from the lowest rank that served it (tensor-parallel ranks step in lockstep).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KIND = "decode_step"


@dataclass(frozen=True)
class StepTimes:
    """One request's decode steps: mean device and host ms per step, how many, and the device clock."""

    device_ms: float | None
    host_ms: float | None
    steps: int
    clock: str | None


def per_request(records: Iterable[Mapping[str, Any]]) -> dict[str, StepTimes]:
    """rid -> its step times, from decode_step records (other kinds are ignored)."""
    by_rid: dict[str, dict[int, list[Mapping[str, Any]]]] = {}
    for record in records:
        if record.get("kind") != KIND:
            continue
        for rid in record.get("rids") or ():
            by_rid.setdefault(str(rid), {}).setdefault(int(record.get("rank", 0)), []).append(record)
    return {rid: _times(ranks[min(ranks)]) for rid, ranks in by_rid.items()}


def _times(rows: list[Mapping[str, Any]]) -> StepTimes:
    device = [float(r["device_ms"]) for r in rows if r.get("device_ms") is not None]
    host = [float(r["host_ms"]) for r in rows if r.get("host_ms") is not None]
    clocks = {r.get("clock") for r in rows}
    return StepTimes(device_ms=statistics.fmean(device) if device else None,
                     host_ms=statistics.fmean(host) if host else None, steps=len(rows),
                     clock=clocks.pop() if len(clocks) == 1 else "mixed")


def split_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, StepTimes]]:
    """(the records without decode_step ones, per-request step times): a run writes one record per decode
    step, which stay in RUN_DIR/<scenario>/records/ instead of result.json."""
    kept = [r for r in records if r.get("kind") != KIND]
    return kept, per_request(r for r in records if r.get("kind") == KIND)


def with_step_times(samples: list[dict[str, Any]], times: Mapping[str, StepTimes]) -> list[dict[str, Any]]:
    """Each sample (result JSON) with decode_gpu_ms, decode_host_ms, decode_steps, decode_clock by its rid."""
    out = []
    for sample in samples:
        found = times.get(sample.get("rid") or "") if sample.get("ok") else None
        out.append({**sample, "decode_gpu_ms": found.device_ms if found else None,
                    "decode_host_ms": found.host_ms if found else None,
                    "decode_steps": found.steps if found else 0, "decode_clock": found.clock if found else None})
    return out
