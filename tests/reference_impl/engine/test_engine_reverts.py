"""Every --revert-fix shows its symptom in a live engine, and the symptom is gone without it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reference_impl.engine.cli import parse_config
from reference_impl.engine.model_spec import load_model_spec
from reference_impl.engine.plan import build_plan
from reference_impl.workspace import moe_a2a_workspace_size_per_rank

GIB = 1 << 30
EP2 = ["--tp-size", "2", "--ep-size", "2", "--moe-a2a-backend", "flashinfer", "--cuda-graph-max-bs", "4",
       "--max-running-requests", "4"]


def _prompt(n: int) -> list[int]:
    return [(13 * i + 7) % 500 + 3 for i in range(n)]


def _by_rank(records: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["rank"], []).append(r)
    return out


def test_disable_attn_tp_gather(start_engine: Any, micro_model: Path) -> None:
    """Reverted: the flag is ignored, BS=1 is padded to attn_tp_size and a gathered buffer exists."""
    base = ["--model-path", str(micro_model), *EP2, "--disable-attn-tp-gather"]
    fixed = start_engine(base)
    reverted = start_engine([*base, "--revert-fix", "disable-attn-tp-gather"])
    fixed.wait_ready()
    reverted.wait_ready()
    assert fixed.output_ids(_prompt(20), 4) == reverted.output_ids(_prompt(20), 4)
    for engine, gather, smallest in ((fixed, False, 1), (reverted, True, 2)):
        flags = engine.records("attn_tp_gather")
        assert len(flags) == 2 and all(f["require_attn_tp_gather"] is gather for f in flags)
        buffers = engine.records("gathered_buffer")
        assert all(b["allocated"] is gather for b in buffers)
        captured = sorted({c["num_tokens"] for c in engine.records("cuda_graph_capture")})
        assert captured[0] == smallest  # the graph a BS=1 decode replays
    assert "require_attn_tp_gather" in json.dumps(reverted.records("attn_tp_gather")[0])


def test_sp_runtime_max_tokens(start_engine: Any, micro_model: Path) -> None:
    """Reverted: the dispatch geometry is the pre-scatter count (64) instead of this rank's 32 tokens."""
    base = ["--model-path", str(micro_model), *EP2]
    fixed = start_engine(base)
    reverted = start_engine([*base, "--revert-fix", "sp-runtime-max-tokens"])
    fixed.wait_ready()
    reverted.wait_ready()
    assert fixed.output_ids(_prompt(64), 2) == reverted.output_ids(_prompt(64), 2)
    for engine, geometry in ((fixed, 32), (reverted, 64)):
        prefill = [d for d in engine.records("dispatch") if d["phase"] == "eager" and d["local_num_tokens"] == 32]
        assert prefill, "no eager dispatch of the 64-token prefill"
        assert {d["runtime_max_tokens_per_rank"] for d in prefill} == {geometry}
        assert all(d["dp_global_num_tokens"] == [64] for d in prefill)


def test_a2a_token_cap_ooms_at_capture_when_tight(start_engine: Any, micro_model: Path) -> None:
    """Reverted: max_num_tokens is multiplied by ep_size; the doubled workspace leaves no room for capture."""
    env = {"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "8192"}
    base = ["--model-path", str(micro_model), *EP2, "--device-memory-gib", "1", "--mem-fraction-static", "0.977"]
    spec = load_model_spec(micro_model)
    predicted = {}
    for name, extra in (("fixed", []), ("reverted", ["--revert-fix", "a2a-token-cap"])):
        plan = build_plan(parse_config([*base, *extra], environ=env), spec, GIB)
        assert plan.budget is not None
        predicted[name] = plan.budget.predicted_capture_oom
    assert predicted == {"fixed": False, "reverted": True}

    fixed = start_engine(base, env)
    reverted = start_engine([*base, "--revert-fix", "a2a-token-cap"], env)
    fixed.wait_ready()
    assert reverted.wait_exit() != 0
    for engine, tokens in ((fixed, 8192), (reverted, 16384)):
        inits = engine.records("dispatcher_init")
        assert len(inits) == 2 and {i["max_num_tokens"] for i in inits} == {tokens}
        size = moe_a2a_workspace_size_per_rank(2, tokens, 2 * 128 + 8 * 2, 2 * 128)
        assert {i["workspace_size_per_rank"] for i in inits} == {size}
        assert {i["payload_workspace_tokens"] for i in inits} == {2 * tokens}
    assert fixed.records("capture_oom") == []
    assert len(fixed.output_ids(_prompt(10), 3)) == 3
    ooms = reverted.records("capture_oom")
    assert ooms and ooms[0]["num_tokens"] == 4 and ooms[0]["requested_bytes"] > ooms[0]["free_bytes"]
    log = reverted.log()
    assert "Scheduler hit an exception" in log and "in capture_cuda_graphs" in log
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in log and "MiB is free" in log


def test_dp_workspace_sizing_overflows_on_a_large_prefill(start_engine: Any, micro_model: Path) -> None:
    """Reverted: the workspace ignores chunked_prefill_size (4096 tokens); a 4200-token prefill overflows it."""
    base = ["--model-path", str(micro_model), "--moe-a2a-backend", "flashinfer", "--chunked-prefill-size", "8192",
            "--cuda-graph-max-bs", "2"]
    fixed = start_engine(base)
    reverted = start_engine([*base, "--revert-fix", "dp-workspace-sizing"])
    fixed.wait_ready()
    reverted.wait_ready()
    assert {i["max_num_tokens"] for i in fixed.records("dispatcher_init")} == {8192}
    assert {i["max_num_tokens"] for i in reverted.records("dispatcher_init")} == {4096}
    # At capture the fixed runners hand the dispatcher the per-rank list; the reverted ones do not.
    assert {tuple(r["global_num_tokens"]) for r in fixed.records("set_dp_buffer_len")} == {(1,), (2,)}
    assert {r["global_num_tokens"] is None for r in reverted.records("set_dp_buffer_len")} == {True}

    prompt = _prompt(4200)
    assert len(fixed.output_ids(prompt, 2)) == 2
    events = reverted.stream_events(prompt, 2)
    assert events[-1] == b"[DONE]" and "error" in json.loads(events[0])
    assert reverted.wait_exit(timeout=30) != 0
    log = reverted.log()
    assert "Scheduler hit an exception" in log
    assert "WorkspaceOverflowError: MoeAlltoAll workspace overflow: runtime_max_tokens_per_rank=4200 > " \
           "max_num_tokens=4096" in log


def test_moe_dp1_attn_cp(start_engine: Any, micro_model: Path) -> None:
    """Reverted: attn_cp_size 2 with moe_dp_size 1 is rejected at startup; fixed it serves in MOE_FULL mode."""
    base = ["--model-path", str(micro_model), "--tp-size", "2", "--attn-cp-size", "2", "--moe-dp-size", "1",
            "--cuda-graph-max-bs", "2"]
    reverted = start_engine([*base, "--revert-fix", "moe-dp1-attn-cp"])
    assert reverted.wait_exit(timeout=60) == 1
    assert "config rejected: server_args.moe_dp_size: attn_cp_size must equal moe_dp_size" in reverted.log()
    fixed = start_engine(base)
    fixed.wait_ready()
    assert len(fixed.output_ids(_prompt(30), 4)) == 4
    modes = _by_rank(fixed.records("mlp_scatter_mode"))
    assert sorted(modes) == [0, 1] and all(m["mode"] == "MOE_FULL" for ms in modes.values() for m in ms)
    groups = fixed.records("parallel_groups")
    assert all(g["attn_cp_size"] == 2 and g["moe_dp_group_is_attn_cp_group"] for g in groups)
