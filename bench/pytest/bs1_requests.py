"""Timed BS=1 requests for the pytest-benchmark suite: one request per round, checked complete."""

from __future__ import annotations

import statistics
from typing import Any

from harness.measure.client import RequestSample, StreamingClient, prompt_ids


def timed_bs1_requests(benchmark: Any, client: StreamingClient, input_len: int, output_len: int,
                       rounds: int, warmup_rounds: int) -> list[RequestSample]:
    """Benchmark `rounds` sequential requests after `warmup_rounds`; every measured one must be complete."""
    samples: list[RequestSample] = []
    input_ids = prompt_ids(input_len, vocab_size=1000, seed=0)

    def one_request() -> RequestSample:
        sample = client.generate(len(samples), input_ids, output_len)
        samples.append(sample)
        return sample

    benchmark.pedantic(one_request, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    measured = samples[warmup_rounds:]
    failed = [s.error for s in measured if not s.ok]
    assert not failed, failed
    assert all(s.completion_tokens == output_len for s in measured)
    assert all(s.ttft_ms is not None and s.tpot_ms is not None for s in measured)
    return measured


def median_ms(samples: list[RequestSample], metric: str) -> float:
    """Median of one per-request metric (ttft_ms, tpot_ms, e2e_ms) over samples that have it."""
    return statistics.median(v for s in samples if (v := getattr(s, metric)) is not None)
