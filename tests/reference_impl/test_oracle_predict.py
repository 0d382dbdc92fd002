"""predict(): end-to-end answers for the five fix situations, fixed and reverted."""

from __future__ import annotations

import dataclasses

from oracle_models import DEEPSEEK_V3, TINY_QWEN3_MOE

from reference_impl.fixset import (
    A2A_TOKEN_CAP,
    DISABLE_ATTN_TP_GATHER,
    DP_WORKSPACE_SIZING,
    MOE_DP1_ATTN_CP,
    SP_RUNTIME_MAX_TOKENS,
    FixSet,
)
from reference_impl.inputs import GpuSpec, OracleInput, Runtime, ServerArgs
from reference_impl.predict import predict
from reference_impl.prediction import PREDICTION_KEYS

FI_DP4 = ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, ep_size=4, moe_a2a_backend="flashinfer",
                    chunked_prefill_size=16384, cuda_graph_max_bs=8, max_running_requests=8)


def _predict(args: ServerArgs, revert: tuple[str, ...] = (), **kwargs: object) -> dict[str, object]:
    inp = OracleInput(args, kwargs.pop("model", DEEPSEEK_V3), fixes=FixSet.reverting(revert), **kwargs)  # type: ignore[arg-type]
    return predict(inp).to_json()


def test_keys_are_the_contract() -> None:
    out = _predict(FI_DP4, runtime=Runtime((1, 1, 1, 1), 1, 1))
    assert tuple(out) == PREDICTION_KEYS
    assert out["config_valid"] is True and out["errors"] == []


def test_a2a_cap_and_workspace_fixed_vs_reverted() -> None:
    # chunked 16384 // dp 4 = 4096 per rank (DP-adjusted) -> max(4096, 4096); workspace = five-fixes number.
    runtime = Runtime((1, 1, 1, 1), 1, 1)
    fixed = _predict(FI_DP4, runtime=runtime)
    assert fixed["a2a_max_num_tokens"] == 4096
    assert fixed["a2a_workspace_bytes_per_rank"] == 471_531_904
    assert fixed["payload_workspace_tokens"] == 4 * 4096
    reverted = _predict(FI_DP4, (A2A_TOKEN_CAP,), runtime=runtime)
    assert reverted["a2a_max_num_tokens"] == 1024 * 4  # old default x ep_size


def test_dp_workspace_cap_follows_chunked_prefill() -> None:
    # chunked 65536 // dp 4 = 16384 per rank > the 4096 floor; reverted: flat 4096.
    args = dataclasses.replace(FI_DP4, chunked_prefill_size=65536)
    runtime = Runtime((1, 1, 1, 1), 1, 1)
    assert _predict(args, runtime=runtime)["a2a_max_num_tokens"] == 16384
    assert _predict(args, (DP_WORKSPACE_SIZING,), runtime=runtime)["a2a_max_num_tokens"] == 4096
    assert _predict(args, runtime=runtime)["capture_global_num_tokens"] == [1, 1, 1, 1]
    assert _predict(args, (DP_WORKSPACE_SIZING,), runtime=runtime)["capture_global_num_tokens"] is None


def test_sp_runtime_geometry() -> None:
    # SP without DP attention: attn-TP gather hands a one-entry pre-scatter list [4]; the rank holds 1.
    args = ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend="flashinfer", cuda_graph_max_bs=4)
    runtime = Runtime((4,), 1, 1)
    assert _predict(args, runtime=runtime)["runtime_max_tokens_per_rank"] == 1
    assert _predict(args, (SP_RUNTIME_MAX_TOKENS,), runtime=runtime)["runtime_max_tokens_per_rank"] == 4


def test_disable_attn_tp_gather_capture() -> None:
    args = ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend="flashinfer", disable_attn_tp_gather=True,
                      cuda_graph_max_bs=4)
    fixed = _predict(args)
    reverted = _predict(args, (DISABLE_ATTN_TP_GATHER,))
    assert (fixed["require_attn_tp_gather"], fixed["capture_num_tokens"], fixed["capture_global_num_tokens"]) == (
        False, 1, None)
    assert (reverted["require_attn_tp_gather"], reverted["capture_num_tokens"],
            reverted["capture_global_num_tokens"]) == (True, 4, [4])


def test_moe_dp1_attn_cp_scenario() -> None:
    # PR #22003: --tp-size 4 --moe-dp-size 1 --attn-cp-size 2 on Qwen3-MoE.
    args = ServerArgs(tp_size=4, attn_cp_size=2, moe_dp_size=1, cuda_graph_max_bs=4)
    fixed = _predict(args, model=TINY_QWEN3_MOE)
    reverted = _predict(args, (MOE_DP1_ATTN_CP,), model=TINY_QWEN3_MOE)
    assert fixed["config_valid"] and fixed["moe_dp_group_is_attn_cp_group"]
    assert fixed["mlp_scatter_mode"] == {"sparse": "MOE_FULL", "dense": "FULL"}
    assert not reverted["config_valid"]
    assert any(e.startswith("server_args.moe_dp_size") for e in reverted["errors"])


def test_dp_size_one_turns_dp_attention_off() -> None:
    # overrides._data_parallelism_defaults: dp_size 1 -> enable_dp_attention False (the scenario's case).
    args = ServerArgs(tp_size=2, dp_size=1, enable_dp_attention=True, moe_dense_tp_size=1,
                      disable_attn_tp_gather=True, cuda_graph_max_bs=4)
    out = _predict(args, model=TINY_QWEN3_MOE)
    assert out["config_valid"] and out["require_attn_tp_gather"] is False and out["require_mlp_tp_gather"] is False


def test_a2a_fields_absent_without_flashinfer_and_memory_absent_without_gpu() -> None:
    out = _predict(ServerArgs(tp_size=1, cuda_graph_max_bs=4), model=TINY_QWEN3_MOE)
    assert out["a2a_workspace_bytes_per_rank"] is None and out["runtime_max_tokens_per_rank"] is None
    assert out["predicted_capture_oom"] is None and out["capture_headroom_bytes"] is None
    with_gpu = _predict(ServerArgs(tp_size=1, cuda_graph_max_bs=4), model=TINY_QWEN3_MOE, gpu=GpuSpec(name="H100"))
    assert with_gpu["predicted_capture_oom"] is False and with_gpu["capture_headroom_bytes"] > 0


def test_invalid_env_on_0_5_23_is_a_config_error() -> None:
    out = _predict(FI_DP4, runtime=Runtime((1, 1, 1, 1), 1, 1), sglang_version="0.5.23",
                   env=(("SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK", "lots"),))
    assert not out["config_valid"]
    assert out["errors"][0].startswith("env.SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK")
