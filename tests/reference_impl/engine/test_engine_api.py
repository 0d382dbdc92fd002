"""sglang's native HTTP API on a live single-rank engine serving the tiny Qwen3-MoE config."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

PROMPT = [(7 * i + 3) % 31000 + 5 for i in range(24)]


@pytest.fixture(scope="module")
def engine(engine_process: Any, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    proc = engine_process(["--model-path", str(tiny_model), "--cuda-graph-max-bs", "2",
                           "--max-running-requests", "2", "--disable-radix-cache", "--enable-metrics"],
                          tmp_path_factory.mktemp("api-engine"))
    saw_503 = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.proc.poll() is None:
        try:
            code = requests.get(proc.url + "/health", timeout=1).status_code
        except requests.RequestException:  # refused while starting, or slow to answer under load
            time.sleep(0.05)
            continue
        saw_503 |= code == 503
        if code == 200:
            break
        time.sleep(0.05)
    proc.saw_503 = saw_503
    proc.wait_ready(timeout=1)
    yield proc
    proc.stop()


def test_health_is_503_until_ready_then_200(engine: Any) -> None:
    assert engine.saw_503, "health never answered 503 while the model was loading"
    assert requests.get(engine.url + "/health", timeout=5).status_code == 200


def test_sse_framing_and_meta_info(engine: Any) -> None:
    events = engine.stream_events(PROMPT, 6)
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 6
    for i, chunk in enumerate(chunks, start=1):
        assert len(chunk["output_ids"]) == i  # cumulative, as sglang streams
        # No --skip-tokenizer-init: text is the stand-in detokenization of the same ids, cumulative too.
        assert chunk["text"] == " ".join(f"t{t}" for t in chunk["output_ids"])
        meta = chunk["meta_info"]
        assert meta["prompt_tokens"] == len(PROMPT) and meta["completion_tokens"] == i
        assert chunks[-1]["output_ids"][:i] == chunk["output_ids"]
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])
    last = chunks[-1]["meta_info"]
    assert last["finish_reason"] == {"type": "length", "length": 6}
    assert last["e2e_latency"] > 0 and "e2e_latency" not in chunks[0]["meta_info"]
    # sglang 0.5.16's request timestamps (wall clock) on the last chunk, in order.
    assert last["request_received_ts"] <= last["prefill_finished_time"] <= last["request_finished_ts"]
    assert last["decode_throughput"] > 0


def test_non_streaming_matches_streaming(engine: Any) -> None:
    streamed = engine.output_ids(PROMPT, 5)
    response = engine.generate(PROMPT, 5, stream=False)
    assert response.status_code == 200
    body = response.json()
    assert body["output_ids"] == streamed
    assert body["meta_info"]["finish_reason"]["type"] == "length"


def test_bad_requests_name_the_field(engine: Any) -> None:
    cases = [
        ({"text": "hello"}, "input_ids"),
        ({"input_ids": [1, 2], "sampling_params": {"max_new_tokens": 0}}, "max_new_tokens"),
        ({"input_ids": [10**9]}, "input_ids"),
        ({"input_ids": "12"}, "input_ids"),
    ]
    for body, field in cases:
        response = requests.post(engine.url + "/generate", json=body, timeout=30)
        assert response.status_code == 400, body
        assert field in response.json()["error"]["message"]


def test_server_info_reports_version_args_and_reverts(engine: Any) -> None:
    for path in ("/server_info", "/get_server_info"):
        info = requests.get(engine.url + path, timeout=5).json()
        assert info["version"].startswith("reference-")
        assert info["reverted_fixes"] == []
        assert info["tp_size"] == 1 and info["cuda_graph_max_bs"] == 2
        assert info["max_total_num_tokens"] > 0
        assert info["model_path"].endswith("tiny-qwen3-moe")


def test_openai_model_list_and_model_info_as_bench_serving_reads_them(engine: Any) -> None:
    models = requests.get(engine.url + "/v1/models", timeout=5).json()
    assert models["data"][0]["id"].endswith("tiny-qwen3-moe")
    info = requests.get(engine.url + "/model_info", timeout=5).json()
    assert info["model_path"].endswith("tiny-qwen3-moe") and "tokenizer_path" in info


def test_skip_tokenizer_init_streams_no_text() -> None:
    """With --skip-tokenizer-init sglang's chunks have no "text" key at all; the engine does the same."""
    from reference_impl.engine.http_server import _Tracker
    from reference_impl.engine.metrics import ServerMetrics
    from reference_impl.engine.scheduler import TokenEvent

    with_text = _Tracker(ServerMetrics("m"), "r", 3, with_text=True)
    without = _Tracker(ServerMetrics("m"), "r", 3, with_text=False)
    event = TokenEvent(token=42, finish_reason=None)
    assert with_text.on_token(event)["text"] == "t42"
    assert "text" not in without.on_token(event)


def test_metrics_parse_with_sglang_names(engine: Any) -> None:
    engine.output_ids(PROMPT, 4)
    text = requests.get(engine.url + "/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("sglang:time_to_first_token_seconds", "sglang:inter_token_latency_seconds",
                 "sglang:e2e_request_latency_seconds"):
        assert families[name].type == "histogram", name
        counts = [s.value for s in families[name].samples if s.name == name + "_count"]
        assert counts and counts[0] >= 1, name


def test_ignored_flags_are_logged(engine: Any) -> None:
    log = engine.log()
    assert "--disable-radix-cache: accepted for sglang compatibility" in log
    assert "--enable-metrics: accepted for sglang compatibility" in log


def test_records_describe_the_single_rank_layout(engine: Any) -> None:
    start = engine.records("process_start")
    assert start and start[0]["target"] == "reference" and start[0]["rank"] == 0
    groups = engine.records("parallel_groups")[0]
    assert (groups["tp_size"], groups["ep_size"], groups["attn_tp_size"]) == (1, 1, 1)
    captures = engine.records("cuda_graph_capture")
    assert [c["num_tokens"] for c in captures] == [2, 1]  # largest first, as sglang captures
    modes = engine.records("mlp_scatter_mode")
    assert len(modes) == 4 and {m["mode"] for m in modes} == {"FULL"}
    assert engine.records("dispatcher_init") == []  # no --moe-a2a-backend: no A2A dispatcher
