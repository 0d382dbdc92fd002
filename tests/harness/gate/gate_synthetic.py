"""Synthetic results valid against harness/schema/result.schema.json, from known samples."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.gate.paired_stats import PairedSeries
from harness.store.results import summarize


def result_obj(scenario: str, *, tpot: np.ndarray | None = None, ttft: np.ndarray | None = None,
               status: str = "ok", outcome: str | None = "ok", workspace: int | None = None,
               oracle: dict[str, bool | None] | None = None, commit: str | None = "abc1234",
               commit_time: str | None = None, started_at: str = "2026-05-01T02:00:00+00:00",
               capture_oom_record: bool = False, failure_stage: str | None = None,
               decode_gpu: np.ndarray | None = None) -> dict[str, Any]:
    tpot = np.empty(0) if tpot is None else tpot
    ttft = np.full(tpot.size, 20.0) if ttft is None else ttft
    samples = [{"index": i, "ok": True, "ttft_ms": float(a), "tpot_ms": float(b), "e2e_ms": float(a + 63 * b),
                "itl_ms": [], "completion_tokens": 64, "error_kind": None}
               for i, (a, b) in enumerate(zip(ttft, tpot, strict=True))]
    if decode_gpu is not None:  # the server's decode_step records, per request (harness/measure/step_times.py)
        for sample, value in zip(samples, decode_gpu, strict=True):
            sample.update(decode_gpu_ms=float(value), decode_steps=63, decode_clock="cuda_event")
    # A failed request carries no timing the gate may use.
    samples.append({"index": len(samples), "ok": False, "ttft_ms": None, "tpot_ms": None, "e2e_ms": None,
                    "itl_ms": [], "completion_tokens": None, "error_kind": "stream_cut"})
    records: list[dict[str, Any]] = []
    if workspace is not None:
        records = [{"schema": 1, "kind": "dispatcher_init", "pid": 1, "rank": r, "t": 0.0, "ep_size": 2,
                    "ep_rank": r, "workspace_size_per_rank": workspace} for r in range(2)]
    if capture_oom_record:
        records.append({"schema": 1, "kind": "capture_oom", "pid": 1, "rank": 0, "t": 0.0, "batch_size": 4})
    target: dict[str, Any] = {"kind": "reference", "version": "0", "commit": commit}
    if commit_time:
        target["commit_time"] = commit_time
    failure = None
    if status == "failed":
        stage = failure_stage or ("startup" if outcome != "ok" else "request")
        failure = {"stage": stage, "kind": outcome or "error", "message": "synthetic failure"}
    startup = None
    if status != "skipped" and outcome is not None:
        startup = {"outcome": outcome, "message": "", "elapsed_s": 1.0, "returncode": None,
                   "capture": {"batch_size": None, "num_tokens": None, "free_bytes": None, "requested_bytes": None,
                               "oom": outcome == "oom_during_cuda_graph_capture", "phases": []}}
    ok = samples if status == "ok" else []
    return {
        "schema_version": 1,
        "scenario": scenario,
        "status": status,
        "skip_reason": "needs 4 GPUs" if status == "skipped" else None,
        "failure": failure,
        "started_at": started_at,
        "finished_at": started_at,
        "target": target,
        "harness": {"version": "0.1.0", "commit": None},
        "hardware": {"cpu": {}, "gpus": []},
        "scenario_detail": {"description": "", "model_dir": "m", "guards": None, "server_args": {}, "env": {}},
        "server": None,
        "workload": {"input_len": 8, "output_len": 64, "warmups": 1, "requests": int(tpot.size)},
        "startup": startup,
        "samples": ok,
        "summary": {"ttft_ms": summarize(ttft), "tpot_ms": summarize(tpot)},
        "server_metrics": {"ttft_ms_mean": None, "itl_ms_mean": None, "e2e_ms_mean": None, "error": None},
        "instrumentation": {"records": records, "errors": []},
        "oracle": {"ok": None if not oracle else all(v for v in oracle.values() if v is not None),
                   "verdicts": [{"name": k, "expected": 1, "observed": 1, "passed": v}
                                for k, v in (oracle or {}).items()]},
    }


def tpot_samples(rng: np.random.Generator, n: int, scale: float = 1.0, median: float = 20.0,
                 sigma: float = 0.01) -> np.ndarray:
    """Log-normal per-request TPOT: 1% spread, like BS=1 decode on a quiet machine."""
    return median * scale * rng.lognormal(0.0, sigma, size=n)


def paired_obj(scenario: str, side: str, start_pair: int, *, tpot: np.ndarray, ttft: np.ndarray | None = None,
               order: str = "abba") -> dict[str, Any]:
    """A paired-design result (harness.gate.coresident): pairing, and samples[].pair = request index."""
    obj = result_obj(scenario, tpot=tpot, ttft=ttft)
    obj["pairing"] = {"design": "paired", "side": side, "start_pair": start_pair, "order": order}
    for sample in obj["samples"]:
        sample["pair"] = sample["index"]
    return obj


def regime_series(seed: int, pairs: int, effect: float, noise: float = 0.03) -> PairedSeries:
    """A host that switches between a fast (1.0) and a slow (1.6) level in runs of about 15 requests;
    base and head requests alternate ABBA, so both sides of a pair almost always share the level."""
    rng = np.random.default_rng(seed)
    level, levels = 1.0, []
    for _ in range(2 * pairs):
        if rng.random() < 1 / 15:
            level = 1.6 if level == 1.0 else 1.0
        levels.append(level)
    order = [(k, side) for k in range(pairs) for side in (("base", "head") if k % 2 == 0 else ("head", "base"))]
    base, head = np.empty(pairs), np.empty(pairs)
    for (k, side), lvl in zip(order, levels, strict=True):
        value = 20.0 * lvl * rng.lognormal(0.0, noise)
        if side == "base":
            base[k] = value
        else:
            head[k] = value * effect
    return PairedSeries(base, head)
