"""The streaming client against real fake-server processes, and the SSE decoder under any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.measure.client import SseDecoder, StreamingClient

PROMPT = list(range(100, 164))


@pytest.fixture
def client_for(fake_server):
    clients: list[StreamingClient] = []

    def make(*flags: str, token_timeout_s: float = 10.0) -> StreamingClient:
        server = fake_server(*flags)
        assert server.wait_ready().outcome == "ok"
        client = StreamingClient(server.spec.base_url, token_timeout_s=token_timeout_s)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("mode", ["ok", "fragmented"])
def test_timings_match_the_servers_schedule(client_for, mode):
    client = client_for("--fake-mode", mode, "--fake-ttft-ms", "20", "--fake-interval-ms", "5")
    for index in range(2):  # the second request reuses the kept-alive connection
        sample = client.generate(index, PROMPT, 16)
        assert sample.ok, sample.error
        assert sample.completion_tokens == 16
        assert len(sample.itl_ms) == 15 and len(sample.token_times_ms) == 16
        assert sample.ttft_ms >= 20  # the server waits 20 ms before the first token
        assert sample.tpot_ms == pytest.approx(sum(sample.itl_ms) / 15)
        assert sample.e2e_ms >= sample.token_times_ms[-1]
        sent = sample.meta_info["fake_send_ns"]
        assert len(sent) == 16
        # What the client measured is what the server did: the median inter-token gap the client saw is
        # the server's own median send gap. Medians, because one scheduling hiccup of a loaded machine on
        # the first or last token moves a mean over 15 gaps by its length / 15; bench/ measures the bias.
        gaps = sorted((b - a) / 1e6 for a, b in itertools.pairwise(sent))
        assert sorted(sample.itl_ms)[7] == pytest.approx(gaps[7], abs=1.0)


@pytest.mark.parametrize(
    ("mode", "kind", "message"),
    [
        ("http_500", "http_status", "HTTP 500"),
        ("malformed_sse", "malformed_sse", "event 1 is not JSON"),
        ("error_event", "server_error", "input too long"),
        ("cut_stream", "stream_cut", "IncompleteRead"),
        ("die_mid_stream", "stream_cut", ""),
        ("short", "token_count", "got 7 completion tokens, asked for 8"),
    ],
)
def test_misbehaving_streams_are_classified(client_for, mode, kind, message):
    client = client_for("--fake-mode", mode, "--fake-cut-after", "3")
    sample = client.generate(0, PROMPT, 8)
    assert not sample.ok
    assert sample.error_kind == kind
    assert message in sample.error
    assert sample.ttft_ms is None and sample.tpot_ms is None
    if mode in ("cut_stream", "die_mid_stream"):
        assert sample.completion_tokens == 3


def test_a_stalled_stream_hits_the_per_token_deadline(client_for):
    client = client_for("--fake-mode", "stall", "--fake-cut-after", "2", token_timeout_s=0.5)
    sample = client.generate(0, PROMPT, 8)
    assert sample.error_kind == "timeout"
    assert "after 2 token(s)" in sample.error


def test_connection_refused_is_a_connection_error():
    from harness.serve.server import free_port

    with StreamingClient(f"http://127.0.0.1:{free_port('127.0.0.1')}", token_timeout_s=1) as client:
        sample = client.generate(0, PROMPT, 4)
    assert sample.error_kind == "connection"
    assert sample.http_status is None


STREAM = (b": keep-alive\n\ndata: {\"a\": 1}\r\n\r\nevent: x\nid: 7\ndata: line1\ndata: line2\n\n"
          b"\n\ndata:nospace\n\ndata: [DONE]\n\n")
EXPECTED = [b'{"a": 1}', b"line1\nline2", b"nospace", b"[DONE]"]


def test_decoder_handles_comments_crlf_fields_and_multiline_data():
    decoder = SseDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert not decoder.pending


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12, unique=True))
def test_decoder_gives_the_same_events_under_any_chunking(cuts):
    decoder = SseDecoder()
    bounds = [0, *sorted(cuts), len(STREAM)]
    events = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(STREAM[start:end])
    assert events == EXPECTED


def test_decoder_reports_a_partial_event():
    decoder = SseDecoder()
    assert decoder.feed(b"data: {\"output_ids\": [1") == []
    assert decoder.pending
