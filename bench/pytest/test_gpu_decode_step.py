"""GPU microbenchmark: one reference-engine decode step replayed from a CUDA graph at BS=1.

`fixed` replays the graph captured for 1 token (what --disable-attn-tp-gather gives); `padded`
replays the graph for attn_tp_size tokens (BS=1 padded by the attn-TP gather, the bug of fix 4).
Both graphs come from the engine's own capture (ModelRunner.capture_cuda_graphs) on one rank.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "harness" / "models" / "tiny-deepseek-v3"
ATTN_TP_SIZES = (2, 4)
ROUNDS = 200


@pytest.fixture(scope="module")
def rank() -> Iterator[object]:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from reference_impl.engine.cli import parse_config
    from reference_impl.engine.rank_setup import build_rank

    config = parse_config(["--model-path", str(MODEL), "--device", "cuda", "--cuda-graph-max-bs",
                           str(max(ATTN_TP_SIZES)), "--max-running-requests", str(max(ATTN_TP_SIZES))])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    built = build_rank(config, 0, port)
    yield built
    if torch.distributed.is_initialized():  # a one-rank engine may never create a process group
        torch.distributed.destroy_process_group()


def replay_step(graph: object) -> None:
    graph.graph.replay()  # type: ignore[attr-defined]
    torch.cuda.synchronize()


@pytest.mark.parametrize("mode", ["fixed", *(f"padded-attn-tp-{n}" for n in ATTN_TP_SIZES)])
def test_decode_step_graph_replay_bs1(benchmark, rank, mode: str) -> None:
    num_tokens = 1 if mode == "fixed" else int(mode.rsplit("-", 1)[1])
    graphs = rank.runner.graphs  # type: ignore[attr-defined]
    assert num_tokens in graphs, f"no CUDA graph captured for {num_tokens} tokens: {sorted(graphs)}"
    graph = graphs[num_tokens]
    benchmark.pedantic(replay_step, args=(graph,), rounds=ROUNDS, warmup_rounds=20, iterations=1)
    benchmark.extra_info.update({"batch_size": 1, "num_tokens": num_tokens, "mode": mode,
                                 "device": torch.cuda.get_device_name(0), "model": MODEL.name})
