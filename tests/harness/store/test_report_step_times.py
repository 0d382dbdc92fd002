"""`harness show`'s decode step line: the server's device and host time per step, or nothing without them."""

from __future__ import annotations

from harness.store.report import step_time_line
from harness.store.results import summarize


def test_line_names_the_clock_and_the_medians() -> None:
    result = {"summary": {"decode_gpu_ms": summarize([0.90, 0.91, 0.95]), "decode_host_ms": summarize([0.2, 0.3]),
                          "tpot_ms": summarize([1.1, 1.2, 1.3])},
              "samples": [{"decode_clock": "cuda_event"}, {"decode_clock": None}]}
    assert step_time_line(result) == ("decode step (server, CUDA events): device 0.91 ms (p90 0.942), host part "
                                      "0.25 ms, per step, median over 3 requests (TPOT 1.2 ms)")
    result["samples"] = [{"decode_clock": "host"}]
    assert "(server, host clock, no device)" in (step_time_line(result) or "")


def test_no_line_without_step_times() -> None:
    assert step_time_line({"summary": {"tpot_ms": summarize([1.0])}, "samples": []}) is None
    assert step_time_line({"summary": {"decode_gpu_ms": summarize([])}, "samples": []}) is None
