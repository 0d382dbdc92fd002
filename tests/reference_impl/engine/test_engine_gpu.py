"""CUDA path: graph-captured BS=1 decode on the tiny config, and a real OOM during graph capture.

Runs with `-m gpu` on a CUDA machine; skipped elsewhere. Set ENGINE_GPU_EVIDENCE to a file path to
keep the measured TPOT and capture records as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.serve.server_log import diagnose

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

PROMPT = [(7 * i + 3) % 31000 + 5 for i in range(128)]


def _tpot_ms(url: str, output_len: int) -> tuple[float, list[int]]:
    body = {"input_ids": PROMPT, "stream": True, "sampling_params": {"max_new_tokens": output_len, "ignore_eos": True}}
    arrivals, last = [], b""
    with requests.post(url + "/generate", json=body, stream=True, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith(b"data: {"):
                arrivals.append(time.perf_counter())
                last = line
    ids = json.loads(last[6:])["output_ids"]
    return (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) * 1e3, ids


def test_cuda_graph_decode_bs1(start_engine: Any, tiny_model: Path) -> None:
    engine = start_engine(["--model-path", str(tiny_model), "--device", "cuda", "--cuda-graph-max-bs", "4",
                           "--max-running-requests", "4", "--chunked-prefill-size", "4096"])
    engine.wait_ready(timeout=300)
    captures = engine.records("cuda_graph_capture")
    assert [c["num_tokens"] for c in captures] == [4, 2, 1]
    assert all(c["mem_free_before"] >= c["mem_free_after"] for c in captures)
    for _ in range(3):
        _tpot_ms(engine.url, 16)
    runs = [_tpot_ms(engine.url, 64) for _ in range(10)]
    tpots = [t for t, _ in runs]
    assert len({tuple(ids) for _, ids in runs}) == 1  # greedy decode through graph replay is deterministic
    median = statistics.median(tpots)
    assert median < 50.0
    evidence = os.environ.get("ENGINE_GPU_EVIDENCE")
    if evidence:
        Path(evidence).write_text(json.dumps({
            "device": torch.cuda.get_device_name(0), "tpot_ms_median": median, "tpot_ms": tpots,
            "captures": captures, "server_info": requests.get(engine.url + "/server_info", timeout=5).json(),
        }, indent=2), encoding="utf-8")
    print(f"reference engine BS=1 TPOT on {torch.cuda.get_device_name(0)}: median {median:.3f} ms")


def test_graph_replay_matches_eager_decode(start_engine: Any, tiny_model: Path) -> None:
    """The staged replay (one pinned copy into the static batch) decodes what eager decode does."""
    common = ["--model-path", str(tiny_model), "--device", "cuda", "--cuda-graph-max-bs", "4",
              "--max-running-requests", "4", "--chunked-prefill-size", "4096"]
    graphed = start_engine(common)
    graphed.wait_ready(timeout=300)
    _, long_ids = _tpot_ms(graphed.url, 96)  # leaves a wider block table behind in the static batch
    _, graph_ids = _tpot_ms(graphed.url, 32)
    with ThreadPoolExecutor(3) as pool:  # three rows of the 4-row graph plus one padding row
        concurrent = list(pool.map(lambda _: _tpot_ms(graphed.url, 32)[1], range(3)))
    graphed.stop()
    eager = start_engine([*common, "--disable-cuda-graph"])
    eager.wait_ready(timeout=300)
    _, eager_ids = _tpot_ms(eager.url, 32)
    assert graph_ids == eager_ids == long_ids[:32]
    assert all(len(ids) == 32 for ids in concurrent) and len({tuple(ids) for ids in concurrent}) == 1


def test_forced_oom_during_capture(start_engine: Any, tiny_model: Path) -> None:
    """A 2 GiB allocator cap with mem-fraction-static 0.99 leaves ~20 MiB for graph capture: it must OOM."""
    engine = start_engine(["--model-path", str(tiny_model), "--device", "cuda", "--cuda-graph-max-bs", "4",
                           "--device-memory-gib", "2", "--mem-fraction-static", "0.99"])
    assert engine.wait_exit(timeout=300) != 0
    log = engine.log()
    assert "Scheduler hit an exception" in log and "capture_cuda_graphs" in log
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in log
    ooms = engine.records("capture_oom")
    assert ooms and ooms[0]["num_tokens"] == 4
    # The harness classifies this log as it classifies real sglang's, not as a generic crash.
    diagnosis = diagnose(log, returncode=1, timed_out=False, timeout_s=300)
    assert diagnosis.outcome == "oom_during_cuda_graph_capture", diagnosis
