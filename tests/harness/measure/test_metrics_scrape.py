"""Prometheus scrape: parsing sglang's histograms and the before/after server-side means."""

from __future__ import annotations

import pytest

from harness.measure.client import StreamingClient
from harness.measure.metrics import E2E, ITL, TTFT, Snapshot, Totals, parse, scrape, server_side

TEXT = """\
# HELP sglang:time_to_first_token_seconds ttft
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 2.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 3.0
sglang:time_to_first_token_seconds_sum{model_name="m"} 0.3
sglang:time_to_first_token_seconds_count{model_name="m"} 3.0
sglang:time_to_first_token_seconds_sum{model_name="other"} 0.1
sglang:time_to_first_token_seconds_count{model_name="other"} 1.0
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="m"} 0.0
"""


def test_parse_sums_histograms_over_labels_and_ignores_the_rest():
    snapshot = parse(TEXT)
    assert snapshot.get(TTFT) == Totals(sum=pytest.approx(0.4), count=4.0)
    assert snapshot.get(ITL) is None


def test_server_side_means_cover_only_the_window():
    before = Snapshot(histograms=((TTFT, Totals(1.0, 10)), (ITL, Totals(2.0, 100))))
    after = Snapshot(histograms=((E2E, Totals(0.5, 2)), (TTFT, Totals(1.02, 12)), (ITL, Totals(2.06, 130))))
    means = server_side(before, after)
    assert means["ttft_ms_mean"] == pytest.approx(10.0)
    assert means["itl_ms_mean"] == pytest.approx(2.0)
    assert means["e2e_ms_mean"] == pytest.approx(250.0)
    assert means["requests"] == 2
    assert means["error"] is None


def test_a_failed_scrape_is_recorded_not_raised():
    means = server_side(Snapshot(error="GET /metrics answered HTTP 404"), Snapshot())
    assert means["error"] == "GET /metrics answered HTTP 404"
    assert means["ttft_ms_mean"] is None
    assert "no sglang:time_to_first_token_seconds" in server_side(Snapshot(), Snapshot())["error"]


def test_scrape_a_live_server_around_requests(fake_server):
    server = fake_server("--fake-ttft-ms", "15", "--fake-interval-ms", "4")
    assert server.wait_ready().outcome == "ok"
    before = scrape(server.spec.base_url)
    with StreamingClient(server.spec.base_url, token_timeout_s=10) as client:
        for index in range(3):
            assert client.generate(index, [1, 2, 3], 5).ok
    after = scrape(server.spec.base_url)
    means = server_side(before, after)
    assert means["requests"] == 3
    # The server sleeps 15 ms before the first token: the lower bound is that sleep; the upper bound (33x
    # it) is no speed claim, it catches a unit slip (the histogram is in seconds: 1000x off).
    assert 15 <= means["ttft_ms_mean"] < 500
    assert means["itl_ms_mean"] == pytest.approx(4.0)


def test_scrape_of_a_dead_port_names_the_endpoint():
    from harness.serve.server import free_port

    snapshot = scrape(f"http://127.0.0.1:{free_port('127.0.0.1')}", timeout_s=1)
    assert snapshot.error is not None and snapshot.error.startswith("GET /metrics failed")
