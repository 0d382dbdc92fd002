"""SP runtime geometry (#25685) and its 0.5.23 ceil-division successor (#30242)."""

from __future__ import annotations

import pytest

from reference_impl.fixes import sp_runtime_max_tokens as rule
from reference_impl.fixset import SP_RUNTIME_MAX_TOKENS, FixSet

# (dp_global, local tokens, fixed, reverted)
VECTORS = [
    # 0.5.16 FlashinferDispatcher.dispatch case 1: one entry per DP rank -> max(dp_global).
    ((3, 7, 2, 5), 2, 7, 7),
    # #25685: under SP the list is the scheduler's single pre-scatter count (16 over attn-TP 4);
    # fixed uses the post-scatter x.shape[0] = 4, reverted the pre-scatter 16.
    ((16,), 4, 4, 16),
    # Case 2 without any list: x.shape[0] in both.
    (None, 5, 5, 5),
    # Idle DP ranks: all zero.
    ((0, 0), 0, 0, 0),
    # One-entry list at BS=1 decode capture under attn-TP gather ([n] with n padded to attn_tp_size 4).
    ((4,), 1, 1, 4),
]


@pytest.mark.parametrize(("dp_global", "local", "fixed", "reverted"), VECTORS)
def test_runtime_max_tokens(dp_global: tuple[int, ...] | None, local: int, fixed: int, reverted: int) -> None:
    assert rule.fixed_runtime_max_tokens(dp_global, local) == fixed
    assert rule.reverted_runtime_max_tokens(dp_global, local) == reverted
    assert rule.runtime_max_tokens_per_rank(FixSet(), dp_global, local) == fixed
    assert rule.runtime_max_tokens_per_rank(FixSet.reverting([SP_RUNTIME_MAX_TOKENS]), dp_global, local) == reverted


@pytest.mark.parametrize(("dp_global", "attn_tp", "expected"), [
    # 0.5.23 _max_tokens_per_scattered_source: ceil(max(dp_global) / attn_tp_size).
    ((3, 7, 2, 5), 2, 4),
    ((8, 8), 4, 2),
    ((9, 1), 4, 3),
    ((3, 7, 2, 5), 1, 7),
])
def test_0_5_23_ceil_division(dp_global: tuple[int, ...], attn_tp: int, expected: int) -> None:
    assert rule.fixed_runtime_max_tokens(dp_global, 1, attn_tp, "0.5.23") == expected
    # 0.5.16 ignores attn_tp_size in case 1.
    assert rule.fixed_runtime_max_tokens(dp_global, 1, attn_tp, "0.5.16") == max(dp_global)


def test_geometry_errors_follow_the_dispatch_asserts() -> None:
    # 0.5.16 dispatch(): DP attention with ep > 1 must not reach the x.shape[0] fallback (#30242).
    errors = rule.geometry_errors(3, 3, 4096, None, dp_attention=True, ep_size=4)
    assert any("rank-invariant" in e for e in errors)
    # 0.5.16 dispatch(): runtime_max_tokens_per_rank >= x.shape[0].
    assert any("overflow" in e for e in rule.geometry_errors(2, 3, 4096, (2, 2), True, 4))
    # 0.5.23 adds runtime_max_tokens_per_rank <= max_num_tokens; 0.5.16 has no such assert.
    assert rule.geometry_errors(5000, 1, 4096, (5000, 1), True, 4, "0.5.16") == []
    assert any("workspace" in e for e in rule.geometry_errors(5000, 1, 4096, (5000, 1), True, 4, "0.5.23"))
