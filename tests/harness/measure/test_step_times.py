"""decode_gpu_ms / decode_host_ms per request from synthetic decode_step records: exact means, rank choice, schema."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from harness.measure.step_times import StepTimes, per_request, split_records, with_step_times
from harness.store.result import ResultError
from harness.store.results import validate
from tests.harness.gate.gate_synthetic import result_obj


def _step(rids: list[str], device: float, host: float | None, rank: int = 0, clock: str = "cuda_event") -> dict[str, Any]:
    return {"schema": 1, "kind": "decode_step", "pid": 7, "rank": rank, "t": 0.0, "rids": rids,
            "batch_size": len(rids), "device_ms": device, "host_ms": host,
            "wall_ms": None if host is None else device + host, "clock": clock, "ts": 0.0}


RECORDS = [
    {"schema": 1, "kind": "process_start", "pid": 7, "rank": 0, "t": 0.0, "target": "sglang", "target_version": "x"},
    _step(["a"], 0.900, 0.250), _step(["a"], 0.925, 0.125), _step(["a"], 0.950, None),
    # b and c share two steps (BS=2); c runs one more on its own.
    _step(["b", "c"], 1.5, 0.5), _step(["b", "c"], 1.25, 0.25), _step(["c"], 1.0, None),
    # Another tensor-parallel rank's view of a: ignored, the lowest rank speaks for the request.
    _step(["a"], 9.0, 9.0, rank=1),
    # Only rank 1 served d (an attention-DP group of its own).
    _step(["d"], 2.0, None, rank=1, clock="host"),
]


def test_means_per_request_are_exact() -> None:
    times = per_request(RECORDS)
    assert times == {
        "a": StepTimes(device_ms=pytest.approx((0.900 + 0.925 + 0.950) / 3), host_ms=pytest.approx(0.1875),
                       steps=3, clock="cuda_event"),
        "b": StepTimes(device_ms=pytest.approx(1.375), host_ms=pytest.approx(0.375), steps=2, clock="cuda_event"),
        "c": StepTimes(device_ms=pytest.approx(1.25), host_ms=pytest.approx(0.375), steps=3, clock="cuda_event"),
        "d": StepTimes(device_ms=2.0, host_ms=None, steps=1, clock="host"),
    }


def test_split_keeps_other_records_for_the_result() -> None:
    kept, times = split_records(copy.deepcopy(RECORDS))
    assert [r["kind"] for r in kept] == ["process_start"]
    assert set(times) == {"a", "b", "c", "d"}


def test_samples_get_their_requests_times_by_rid() -> None:
    samples = [{"index": 0, "rid": "a", "ok": True}, {"index": 1, "rid": "zz", "ok": True},
               {"index": 2, "rid": "c", "ok": False}, {"index": 3, "ok": True}]
    out = with_step_times(samples, per_request(RECORDS))
    assert out[0]["decode_gpu_ms"] == pytest.approx(0.925)
    assert (out[0]["decode_host_ms"], out[0]["decode_steps"], out[0]["decode_clock"]) == (
        pytest.approx(0.1875), 3, "cuda_event")
    # No records for the rid, a failed request, no rid at all: no step time, never a made-up one.
    for sample in out[1:]:
        assert (sample["decode_gpu_ms"], sample["decode_host_ms"], sample["decode_steps"],
                sample["decode_clock"]) == (None, None, 0, None)
    assert samples[0] == {"index": 0, "rid": "a", "ok": True}  # the input is not changed


def test_result_with_step_times_is_valid_and_older_results_still_are() -> None:
    old = result_obj("s", tpot=np.array([1.0, 1.1]))
    validate(old)
    new = copy.deepcopy(old)
    times = {"r0": StepTimes(0.9, 0.2, 127, "cuda_event")}
    new["samples"] = with_step_times([{**s, "rid": f"r{s['index']}"} for s in new["samples"]], times)
    new["summary"]["decode_gpu_ms"] = {"median": 0.9, "p90": 0.9, "p99": 0.9, "mean": 0.9, "stdev": 0.0, "n": 1}
    new["summary"]["decode_host_ms"] = {"median": None, "p90": None, "p99": None, "mean": None, "stdev": None,
                                        "n": 0}
    validate(new)
    assert new["samples"][0]["decode_gpu_ms"] == 0.9 and new["samples"][1]["decode_gpu_ms"] is None
    bad = copy.deepcopy(new)
    bad["samples"][0]["decode_clock"] = "wall"
    with pytest.raises(ResultError, match=r"samples\.0\.decode_clock"):
        validate(bad)
