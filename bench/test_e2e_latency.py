"""End-to-end BS=1 request latency over a live reference-engine server (pytest-benchmark).

The benchmarked value is one request's wall time (send to [DONE]); the TTFT and TPOT medians of the
same requests, as the harness client defines them, go to extra_info. Kept short (32 prompt tokens,
8 new tokens) so that a --benchmark-compare run fits in CI time.
"""

from __future__ import annotations

import statistics

from harness.client import RequestSample, StreamingClient
from harness.run import prompt_ids

INPUT_LEN = 32
OUTPUT_LEN = 8
ROUNDS = 20
WARMUP_ROUNDS = 2



def test_bs1_request_latency(benchmark, client: StreamingClient) -> None:
    samples: list[RequestSample] = []
    input_ids = prompt_ids(INPUT_LEN, vocab_size=1000, seed=0)

    def one_request() -> RequestSample:
        sample = client.generate(len(samples), input_ids, OUTPUT_LEN)
        samples.append(sample)
        return sample

    benchmark.pedantic(one_request, rounds=ROUNDS, warmup_rounds=WARMUP_ROUNDS, iterations=1)
    measured = samples[WARMUP_ROUNDS:]
    failed = [s.error for s in measured if not s.ok]
    assert not failed, failed
    assert all(s.completion_tokens == OUTPUT_LEN for s in measured)
    ttft = [s.ttft_ms for s in measured if s.ttft_ms is not None]
    tpot = [s.tpot_ms for s in measured if s.tpot_ms is not None]
    assert len(ttft) == len(tpot) == ROUNDS
    benchmark.extra_info.update({
        "input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "batch_size": 1,
        "ttft_ms_median": statistics.median(ttft), "tpot_ms_median": statistics.median(tpot),
        "e2e_ms_median": statistics.median(s.e2e_ms for s in measured if s.e2e_ms is not None),
    })
