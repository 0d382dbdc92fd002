"""The engine's plan applies the same rules as the oracle's predict() for the same server."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_impl.engine.cli import parse_config
from reference_impl.engine.model_spec import load_model_spec
from reference_impl.engine.plan import build_plan

TINY = Path(__file__).resolve().parents[3] / "harness" / "models" / "tiny-qwen3-moe"
A2A = ["--tp-size", "4", "--ep-size", "4", "--moe-a2a-backend", "flashinfer"]
CASES = [
    [],
    ["--cuda-graph-max-bs", "4", "--max-running-requests", "4"],
    A2A,
    [*A2A, "--disable-attn-tp-gather"],
    [*A2A, "--disable-attn-tp-gather", "--revert-fix", "disable-attn-tp-gather"],
    [*A2A, "--enable-dp-attention", "--dp-size", "4", "--chunked-prefill-size", "16384"],
    [*A2A, "--enable-dp-attention", "--dp-size", "4", "--revert-fix", "dp-workspace-sizing"],
    [*A2A, "--revert-fix", "a2a-token-cap"],
    ["--tp-size", "4", "--attn-cp-size", "2", "--moe-dp-size", "1"],
    ["--tp-size", "4", "--attn-cp-size", "2", "--moe-dp-size", "1", "--revert-fix", "moe-dp1-attn-cp"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a) or "default")
def test_plan_matches_predict(argv: list[str]) -> None:
    config = parse_config(["--model-path", str(TINY), *argv],
                          environ={"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "2048"})
    plan = build_plan(config, load_model_spec(TINY), 80 << 30)
    p = plan.prediction
    g = plan.geometry
    assert p.a2a_max_num_tokens == (g.max_num_tokens if g else None)
    assert p.a2a_workspace_bytes_per_rank == (g.workspace_bytes_per_rank if g else None)
    assert (p.require_attn_tp_gather, p.require_mlp_tp_gather, p.require_gathered_buffer) == (
        plan.flags.require_attn_tp_gather, plan.flags.require_mlp_tp_gather, plan.flags.require_gathered_buffer)
    assert p.capture_num_tokens == plan.capture_num_tokens(1)
    if p.capture_num_tokens is not None:
        expected = plan.capture_global_num_tokens(p.capture_num_tokens)
        assert p.capture_global_num_tokens == (None if expected is None else tuple(expected))
    assert dict(p.mlp_scatter_mode) == plan.modes.to_json()
    assert p.moe_dp_group_is_attn_cp_group == plan.moe_dp_group_is_attn_cp_group
    if p.capture_headroom_bytes is not None:
        assert plan.budget is not None and p.capture_headroom_bytes == plan.budget.headroom_bytes
    rejected = "moe-dp1-attn-cp" in argv
    assert bool(plan.startup_errors) == rejected
