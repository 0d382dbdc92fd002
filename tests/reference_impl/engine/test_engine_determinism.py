"""Greedy decoding is deterministic across engine processes, and EP ranks agree with one rank."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROMPT = [(11 * i + 5) % 500 + 3 for i in range(40)]


def test_same_tokens_across_processes_and_batching(start_engine: Any, micro_model: Path) -> None:
    first = start_engine(["--model-path", str(micro_model), "--cuda-graph-max-bs", "4"])
    second = start_engine(["--model-path", str(micro_model), "--cuda-graph-max-bs", "4"])
    first.wait_ready()
    second.wait_ready()
    a = first.output_ids(PROMPT, 16)
    assert a == first.output_ids(PROMPT, 16)
    assert a == second.output_ids(PROMPT, 16)
    assert len(set(a)) > 1  # a collapsed random model would make this test vacuous
    other = [p + 1 for p in PROMPT[:25]]
    alone = first.output_ids(other, 16)
    with ThreadPoolExecutor(3) as pool:  # decode batches of 2-3 requests, padded to captured sizes
        together = list(pool.map(lambda p: first.output_ids(p, 16), [PROMPT, other, PROMPT]))
    assert together == [a, alone, a]


def test_seed_changes_the_weights(start_engine: Any, micro_model: Path) -> None:
    a = start_engine(["--model-path", str(micro_model)])
    b = start_engine(["--model-path", str(micro_model), "--random-seed", "1"])
    a.wait_ready()
    b.wait_ready()
    assert a.output_ids(PROMPT, 8) != b.output_ids(PROMPT, 8)


def test_dp_attention_ep_ranks_match_one_rank(start_engine: Any, micro_model: Path) -> None:
    """tp2 dp2 DP attention + ep2 A2A: requests land on both DP groups and decode as on one rank."""
    one = start_engine(["--model-path", str(micro_model)])
    dp = start_engine(["--model-path", str(micro_model), "--tp-size", "2", "--dp-size", "2",
                       "--enable-dp-attention", "--ep-size", "2", "--moe-a2a-backend", "flashinfer",
                       "--cuda-graph-max-bs", "4", "--max-running-requests", "4"])
    one.wait_ready()
    dp.wait_ready()
    other = [p + 1 for p in PROMPT[:25]]
    expected = [one.output_ids(PROMPT, 8), one.output_ids(other, 8)]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda p: dp.output_ids(p, 8), [PROMPT, other])) == expected
    eager = [d for d in dp.records("dispatch") if d["phase"] == "eager"]
    assert eager and all(len(d["dp_global_num_tokens"]) == 2 for d in eager)
    assert all(d["runtime_max_tokens_per_rank"] == max(d["dp_global_num_tokens"]) for d in eager)
