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
