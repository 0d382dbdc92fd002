"""Client overhead: the harness client's TPOT against the server's own per-token send times.

A local server emits one token every INTERVAL_MS and reports when it sent each one (perf_counter_ns,
CLOCK_MONOTONIC, the same clock the client reads). The bias is client TPOT - server TPOT per request;
a constant delivery lag cancels in TPOT, so the bias is what the client adds per token. Goal: under
2% or 20 us per token. The numbers land in the benchmark JSON's extra_info.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.client import RequestSample, StreamingClient
from harness.server import LaunchSpec, Server, free_port

FAKE_SERVER = Path(__file__).resolve().parents[1] / "tests" / "harness" / "fake_servers" / "sglang_like.py"
INTERVAL_MS = 2.0
TOKENS = 64
GOAL_US, GOAL_FRACTION = 20.0, 0.02


@pytest.fixture(scope="module")
def paced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port("127.0.0.1")
    spec = LaunchSpec(
        argv=(sys.executable, str(FAKE_SERVER), "--host", "127.0.0.1", "--port", str(port),
              "--fake-interval-ms", str(INTERVAL_MS), "--fake-ttft-ms", "1", "--fake-children", "0"),
        env=(), host="127.0.0.1", port=port, log_path=tmp_path_factory.mktemp("paced") / "server.log",
        startup_timeout_s=30, stop_grace_s=5,
    )
    with Server(spec) as server:
        assert server.wait_ready().outcome == "ok"
        yield server


def _server_tpot_ms(sample: RequestSample) -> float:
    assert sample.meta_info is not None
    sent = sample.meta_info["fake_send_ns"]
    return (sent[-1] - sent[0]) / 1e6 / (len(sent) - 1)


def _delivery_lag_us(sample: RequestSample) -> list[float]:
    """Per token: client arrival - server send in us (both CLOCK_MONOTONIC; includes the loopback hop)."""
    assert sample.meta_info is not None
    sent = sample.meta_info["fake_send_ns"]
    return [(sample.send_ns + t * 1e6 - s) / 1e3 for t, s in zip(sample.token_times_ms, sent, strict=True)]


def test_client_tpot_bias(benchmark, paced_server: Server) -> None:
    samples: list[RequestSample] = []
    with StreamingClient(paced_server.spec.base_url, token_timeout_s=10) as client:
        client.generate(0, list(range(100, 164)), TOKENS)  # warm the kept-alive connection

        def one_request() -> None:
            sample = client.generate(len(samples) + 1, list(range(100, 164)), TOKENS)
            assert sample.ok, sample.error
            samples.append(sample)

        benchmark.pedantic(one_request, rounds=15, iterations=1)

    bias_us = [(s.tpot_ms - _server_tpot_ms(s)) * 1e3 for s in samples if s.tpot_ms is not None]
    median_bias_us = statistics.median(bias_us)
    fraction = median_bias_us / (INTERVAL_MS * 1e3)
    lags = [lag for s in samples for lag in _delivery_lag_us(s)]
    benchmark.extra_info.update(
        interval_ms=INTERVAL_MS,
        tokens=TOKENS,
        requests=len(bias_us),
        client_tpot_ms_median=statistics.median(s.tpot_ms for s in samples if s.tpot_ms is not None),
        server_tpot_ms_median=statistics.median(_server_tpot_ms(s) for s in samples),
        tpot_bias_us_per_token_median=median_bias_us,
        tpot_bias_us_per_token_max_abs=max(abs(b) for b in bias_us),
        tpot_bias_fraction_median=fraction,
        delivery_lag_us_median=statistics.median(lags),
        delivery_lag_us_p99=statistics.quantiles(lags, n=100)[98],
    )
    print(f"\nclient TPOT bias: median {median_bias_us:+.2f} us/token ({fraction:+.3%}), "
          f"max |bias| {max(abs(b) for b in bias_us):.2f} us/token over {len(bias_us)} requests; "
          f"send->arrival lag median {statistics.median(lags):.1f} us, "
          f"p99 {statistics.quantiles(lags, n=100)[98]:.1f} us")
    assert abs(median_bias_us) < GOAL_US or abs(fraction) < GOAL_FRACTION
