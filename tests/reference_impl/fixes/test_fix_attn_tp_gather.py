"""--disable-attn-tp-gather (#26047): gather predicates and the token count captured at BS=1."""

from __future__ import annotations

import pytest

from reference_impl.fixes import attn_tp_gather as rule
from reference_impl.fixset import DISABLE_ATTN_TP_GATHER, FixSet
from reference_impl.inputs import ServerArgs

REVERTED = FixSet.reverting([DISABLE_ATTN_TP_GATHER])
FI = "flashinfer"

# (server args, fixed require_attn_tp_gather, reverted require_attn_tp_gather)
ATTN_VECTORS = [
    # 0.5.16 utils/common.py require_attn_tp_gather: the flag short-circuits to False (fixed);
    # without the fix the A2A backend without DP attention gives True (PR #26047 "+29% TPOT at BS=1").
    (ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI, disable_attn_tp_gather=True), False, True),
    # No flag: A2A backend, no DP attention -> True in both.
    (ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI), True, True),
    # No A2A backend and moe_dense_tp_size None -> False in both.
    (ServerArgs(tp_size=4), False, False),
    # DP attention: dp_size < tp_size -> True (attn TP 2 inside each DP group).
    (ServerArgs(tp_size=4, dp_size=2, enable_dp_attention=True, ep_size=4, moe_a2a_backend=FI), True, True),
    # DP attention with dp_size == tp_size -> False (attn TP 1).
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, ep_size=4, moe_a2a_backend=FI), False, False),
    # moe_dense_tp_size set counts like an A2A backend; the flag still short-circuits.
    (ServerArgs(tp_size=2, dp_size=2, enable_dp_attention=True, moe_dense_tp_size=1,
                disable_attn_tp_gather=True), False, False),
    (ServerArgs(tp_size=2, moe_dense_tp_size=1, disable_attn_tp_gather=True), False, True),
]


@pytest.mark.parametrize(("args", "fixed", "reverted"), ATTN_VECTORS)
def test_require_attn_tp_gather(args: ServerArgs, fixed: bool, reverted: bool) -> None:
    assert rule.fixed_require_attn_tp_gather(args) is fixed
    assert rule.reverted_require_attn_tp_gather(args) is reverted
    assert rule.gather_flags(FixSet(), args).require_attn_tp_gather is fixed
    assert rule.gather_flags(REVERTED, args).require_attn_tp_gather is reverted


@pytest.mark.parametrize(("args", "expected"), [
    # 0.5.16 require_mlp_tp_gather: False without DP attention.
    (ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI), False),
    # DP attention and moe_dense_tp_size None -> True.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True), True),
    # moe_dense_tp_size set but no DP lm head -> True.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=1), True),
    # DP lm head, no A2A backend -> True.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=1, enable_dp_lm_head=True), True),
    # DP lm head, FlashInfer A2A -> True (issue #30242 DP-sync bookkeeping).
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=1, enable_dp_lm_head=True,
                ep_size=4, moe_a2a_backend=FI), True),
    # DP lm head, DeepEP: moe_dense_tp_size (1) > tp_size // dp_size (1) -> False.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=1, enable_dp_lm_head=True,
                ep_size=4, moe_a2a_backend="deepep"), False),
    # moe_dense_tp_size 4 > 8 // 4 = 2 -> True.
    (ServerArgs(tp_size=8, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=4, enable_dp_lm_head=True,
                ep_size=8, moe_a2a_backend="deepep"), True),
])
def test_require_mlp_tp_gather(args: ServerArgs, expected: bool) -> None:
    assert rule.require_mlp_tp_gather(args) is expected


def test_flag_cascades_to_gathered_buffer_and_mlp_sync() -> None:
    # five-fixes.md #4: the flag cascades to require_gathered_buffer and require_mlp_sync.
    args = ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI, disable_attn_tp_gather=True)
    fixed = rule.gather_flags(FixSet(), args)
    reverted = rule.gather_flags(REVERTED, args)
    assert (fixed.require_gathered_buffer, fixed.require_mlp_sync) == (False, False)
    assert (reverted.require_gathered_buffer, reverted.require_mlp_sync) == (True, True)


# (server args, batch size, fixed capture tokens, reverted capture tokens)
CAPTURE_VECTORS = [
    # base_cuda_graph_runner.get_batch_sizes_to_capture: with a gathered buffer, sizes must be
    # multiples of attn_tp_size (4): BS=1 replays the bs=4 graph (PR #26047: padded to attn_tp_size).
    (ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI, disable_attn_tp_gather=True, cuda_graph_max_bs=8),
     1, 1, 4),
    # BS=3 -> 4 in both (default sizes 1, 2, 4, 8).
    (ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI, disable_attn_tp_gather=True, cuda_graph_max_bs=8),
     3, 4, 4),
    # attn_tp_size 2 (tp 2): BS=1 -> 2 when gathered.
    (ServerArgs(tp_size=2, moe_dense_tp_size=1, disable_attn_tp_gather=True, cuda_graph_max_bs=4), 1, 1, 2),
    # No A2A backend: nothing gathered either way -> BS=1 graph.
    (ServerArgs(tp_size=4, cuda_graph_max_bs=4), 1, 1, 1),
    # BS beyond cuda_graph_max_bs runs eagerly (no graph).
    (ServerArgs(tp_size=4, cuda_graph_max_bs=4), 5, None, None),
]


@pytest.mark.parametrize(("args", "bs", "fixed", "reverted"), CAPTURE_VECTORS)
def test_capture_num_tokens(args: ServerArgs, bs: int, fixed: int | None, reverted: int | None) -> None:
    max_bs = args.cuda_graph_max_bs or 0
    for fixes, expected in ((FixSet(), fixed), (REVERTED, reverted)):
        gathered = rule.gather_flags(fixes, args).require_gathered_buffer
        assert rule.capture_num_tokens(args, gathered, bs, max_bs, None) == expected


def test_default_decode_batch_sizes() -> None:
    # server_args._generate_decode_cuda_graph_batch_sizes: [1, 2, 4, 8, 12] + range(16, 257, 8) ...
    sizes = rule.default_decode_capture_batch_sizes(512)
    assert sizes[:7] == [1, 2, 4, 8, 12, 16, 24]
    assert sizes[-3:] == [480, 496, 512]
    assert rule.default_decode_capture_batch_sizes(6) == [1, 2, 4, 6]


def test_request_pool_clamp() -> None:
    # get_batch_sizes_to_capture pads max requests (3) up to mul_base, appends it when the list
    # goes beyond it ("make sure we capture the maximum bs"), and keeps sizes <= it.
    args = ServerArgs(tp_size=4, ep_size=4, moe_a2a_backend=FI, cuda_graph_max_bs=16)
    assert rule.captured_batch_sizes(args, True, 16, 3) == [4]
    assert rule.captured_batch_sizes(args, False, 16, 3) == [1, 2, 3]
