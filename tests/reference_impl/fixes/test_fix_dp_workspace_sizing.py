"""DP workspace sizing (#26643): cap default and the capture-time list handed to set_dp_buffer_len."""

from __future__ import annotations

import pytest

from reference_impl.fixes import dp_workspace_sizing as rule
from reference_impl.fixset import DP_WORKSPACE_SIZING, FixSet
from reference_impl.inputs import ServerArgs

GIB = 1 << 30

# (chunked_prefill_size as the dispatcher sees it, fixed default, reverted default)
CAP_VECTORS = [
    # 0.5.16 FlashinferDispatcher.__init__: max(cps if cps and cps > 0 else 4096, 4096).
    (None, 4096, 4096),
    (8192, 8192, 4096),  # PR #26643 summary: the cap reflects max(chunked_prefill_size, max running req)
    (2048, 4096, 4096),  # the 4096 decode floor ("resolve_max_num_reqs caps at 4096 per DP worker")
    (-1, 4096, 4096),  # chunked prefill disabled -> the floor
    (16384, 16384, 4096),  # B200 default chunk; before #26643 a 16384-token chunk overflowed 4096
]


@pytest.mark.parametrize(("cps", "fixed", "reverted"), CAP_VECTORS)
def test_default_tokens_per_rank(cps: int | None, fixed: int, reverted: int) -> None:
    assert rule.fixed_default_tokens_per_rank(cps) == fixed
    assert rule.reverted_default_tokens_per_rank(cps) == reverted
    assert rule.default_tokens_per_rank(FixSet(), cps) == fixed
    assert rule.default_tokens_per_rank(FixSet.reverting([DP_WORKSPACE_SIZING]), cps) == reverted


@pytest.mark.parametrize(("args", "gpu_bytes", "expected"), [
    # 0.5.16 server_args._handle_data_parallelism: chunked_prefill_size //= dp_size under DP attention.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, chunked_prefill_size=32768), None, 8192),
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, chunked_prefill_size=8192), None, 2048),
    # No DP attention: unchanged.
    (ServerArgs(tp_size=4, chunked_prefill_size=8192), None, 8192),
    # _handle_gpu_memory_settings defaults by GPU MiB: >=160 GiB -> 16384, 80 GiB -> 8192, unknown -> 4096.
    (ServerArgs(tp_size=4), 183359 * (1 << 20), 16384),
    (ServerArgs(tp_size=4), 80 * GIB, 8192),
    (ServerArgs(tp_size=4), None, 4096),
])
def test_resolved_chunked_prefill_size(args: ServerArgs, gpu_bytes: int | None, expected: int) -> None:
    assert rule.resolved_chunked_prefill_size(args, gpu_bytes) == expected


# (n, dp_size, mlp gather, attn gather, fixed list, reverted list)
CAPTURE_VECTORS = [
    # 0.5.16 decode_cuda_graph_runner.py capture: [num_tokens] * dp_size under MLP-TP gather ...
    (8, 4, True, False, [8, 8, 8, 8], None),
    # ... [num_tokens] under attn-TP gather ...
    (4, 1, False, True, [4], None),
    # ... else None (no gathered buffer).
    (1, 1, False, False, None, None),
    # MLP gather wins when both are on (the if/elif order of the runner).
    (2, 2, True, True, [2, 2], None),
    # PR #26643 "set_dp_buffer_len sets the global_num_tokens_cpu": before it, no list reached it.
    (16, 8, True, False, [16] * 8, None),
]


@pytest.mark.parametrize(("n", "dp", "mlp", "attn", "fixed", "reverted"), CAPTURE_VECTORS)
def test_capture_global_num_tokens(n: int, dp: int, mlp: bool, attn: bool, fixed: list[int] | None,
                                   reverted: list[int] | None) -> None:
    assert rule.fixed_capture_global_num_tokens(n, dp, mlp, attn) == fixed
    assert rule.reverted_capture_global_num_tokens(n, dp, mlp, attn) == reverted
    assert rule.capture_global_num_tokens(FixSet(), n, dp, mlp, attn) == fixed
    assert rule.capture_global_num_tokens(FixSet.reverting([DP_WORKSPACE_SIZING]), n, dp, mlp, attn) == reverted


def test_global_dp_buffer_len_is_the_sum() -> None:
    # decode_cuda_graph_runner: global_dp_buffer_len = sum(global_num_tokens_cpu).
    assert rule.global_dp_buffer_len([8, 8, 8, 8]) == 32
    assert rule.global_dp_buffer_len(None) is None


def test_payload_workspace_tokens_is_ep_rows() -> None:
    # flashinfer moe_a2a_get_workspace_size_per_rank reserves ep_size * max_num_tokens payload rows.
    assert rule.payload_workspace_tokens(4, 4096) == 16384
    assert rule.payload_workspace_tokens(1, 4096) == 4096
