"""moe_dp_size = 1 with attention CP (#22003): layouts, MLP scatter modes, MoE-DP group alias."""

from __future__ import annotations

import pytest

from reference_impl.fixes import moe_dp_attn_cp as rule
from reference_impl.fixset import MOE_DP1_ATTN_CP, FixSet
from reference_impl.inputs import ServerArgs

REVERTED = FixSet.reverting([MOE_DP1_ATTN_CP])

# (server args, fixed valid, reverted valid)
LAYOUT_VECTORS = [
    # PR #22003 test config: Qwen3-30B-A3B --tp-size 4 --moe-dp-size 1 --attn-cp-size 2.
    (ServerArgs(tp_size=4, attn_cp_size=2, moe_dp_size=1), True, False),
    # Equal sizes worked before and after (the only supported layout before #22003).
    (ServerArgs(tp_size=4, attn_cp_size=2, moe_dp_size=2), True, True),
    # 0.5.16 server_args: "attn_cp_size != moe_dp_size is only supported when moe_dp_size == 1",
    # although qwen3_moe's divisibility assert (4 % 2 == 0) alone would accept it.
    (ServerArgs(tp_size=4, attn_cp_size=4, moe_dp_size=2), False, False),
    # attn_cp_size 4 with moe_dp 1 on tp 8.
    (ServerArgs(tp_size=8, attn_cp_size=4, moe_dp_size=1), True, False),
    # No CP at all.
    (ServerArgs(tp_size=4), True, True),
    # tp_size must be divisible by attn_cp_size (0.5.16 _handle_context_parallelism).
    (ServerArgs(tp_size=4, attn_cp_size=3, moe_dp_size=1), False, False),
]


@pytest.mark.parametrize(("args", "fixed_ok", "reverted_ok"), LAYOUT_VECTORS)
def test_layout_validity(args: ServerArgs, fixed_ok: bool, reverted_ok: bool) -> None:
    assert (rule.fixed_layout_errors(args) == []) is fixed_ok
    assert (rule.reverted_layout_errors(args) == []) is reverted_ok
    assert (rule.layout_errors(FixSet(), args) == []) is fixed_ok
    assert (rule.layout_errors(REVERTED, args) == []) is reverted_ok


def test_errors_name_the_field() -> None:
    errors = rule.fixed_layout_errors(ServerArgs(tp_size=4, attn_cp_size=4, moe_dp_size=2))
    assert errors and all(e.startswith("server_args.") for e in errors)


# (server args, fixed (sparse, dense), reverted (sparse, dense), fixed alias)
MODE_VECTORS = [
    # communicator._compute_mlp_mode: attn_cp_size > moe_dp_size -> MOE_FULL; parallel_state aliases
    # _MOE_DP = _ATTN_CP. Before #22003 there was no MOE_FULL.
    (ServerArgs(tp_size=4, attn_cp_size=2, moe_dp_size=1), ("MOE_FULL", "FULL"), ("FULL", "FULL"), True),
    # Equal sizes: FULL, own MoE-DP group.
    (ServerArgs(tp_size=4, attn_cp_size=2, moe_dp_size=2), ("FULL", "FULL"), ("FULL", "FULL"), False),
    # A2A backend: sparse SCATTERED (dispatch/combine outside the communicator) in both.
    (ServerArgs(tp_size=4, ep_size=4, attn_cp_size=2, moe_dp_size=1, moe_a2a_backend="flashinfer"),
     ("SCATTERED", "FULL"), ("SCATTERED", "FULL"), True),
    # Dense fully DP (moe_dense_tp_size == 1) -> dense SCATTERED.
    (ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, moe_dense_tp_size=1),
     ("FULL", "SCATTERED"), ("FULL", "SCATTERED"), False),
    # No CP: FULL / FULL, no alias.
    (ServerArgs(tp_size=4), ("FULL", "FULL"), ("FULL", "FULL"), False),
]


@pytest.mark.parametrize(("args", "fixed", "reverted", "alias"), MODE_VECTORS)
def test_mlp_modes_and_group_alias(args: ServerArgs, fixed: tuple[str, str], reverted: tuple[str, str],
                                   alias: bool) -> None:
    fixed_modes = rule.mlp_modes(FixSet(), args)
    reverted_modes = rule.mlp_modes(REVERTED, args)
    assert (fixed_modes.sparse, fixed_modes.dense) == fixed
    assert (reverted_modes.sparse, reverted_modes.dense) == reverted
    assert rule.moe_dp_group_is_attn_cp_group(FixSet(), args) is alias
    assert rule.moe_dp_group_is_attn_cp_group(REVERTED, args) is False
