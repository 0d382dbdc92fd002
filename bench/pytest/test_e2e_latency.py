"""End-to-end BS=1 request latency over a live reference-engine server (pytest-benchmark).

The benchmarked value is one request's wall time (send to [DONE]); the TTFT and TPOT medians of the
same requests, as the harness client defines them, go to extra_info. Kept short (32 prompt tokens,
8 new tokens) so that a --benchmark-compare run fits in CI time.
"""

from __future__ import annotations

from bs1_requests import median_ms, timed_bs1_requests

from harness.measure.client import StreamingClient

INPUT_LEN = 32
OUTPUT_LEN = 8
ROUNDS = 20
WARMUP_ROUNDS = 2


def test_bs1_request_latency(benchmark, client: StreamingClient) -> None:
    measured = timed_bs1_requests(benchmark, client, INPUT_LEN, OUTPUT_LEN, ROUNDS, WARMUP_ROUNDS)
    assert len(measured) == ROUNDS
    benchmark.extra_info.update({
        "input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "batch_size": 1,
        "ttft_ms_median": median_ms(measured, "ttft_ms"), "tpot_ms_median": median_ms(measured, "tpot_ms"),
        "e2e_ms_median": median_ms(measured, "e2e_ms"),
    })
