"""A2A token cap (#25907): fixed = tokens per rank, reverted = (env or 1024) x ep_size."""

from __future__ import annotations

import pytest

from reference_impl.fixes import a2a_token_cap as rule
from reference_impl.fixset import A2A_TOKEN_CAP, FixSet
from reference_impl.workspace import bf16_dispatch_bytes_per_token, moe_a2a_workspace_size_per_rank

# (env tokens, ep_size, default tokens per rank, fixed max_num_tokens, reverted max_num_tokens)
VECTORS = [
    # 0.5.16 flashinfer.py FlashinferDispatcher.__init__: no env -> the default (4096 floor), as is.
    # Reverted: PR #25907 "previous code multiplied the per-rank env var by ep_size", old default 1024.
    (None, 4, 4096, 4096, 1024 * 4),
    # five-fixes.md "16384 x 4 (double count)": env 16384 on ep 4 -> 65536 tokens when reverted.
    (16384, 4, 4096, 16384, 16384 * 4),
    # PR #25907 test plan "custom ... values are respected": env wins over any default.
    (1024, 8, 16384, 1024, 1024 * 8),
    # ep 1: the double count is invisible; the reverted default is the old 1024.
    (None, 1, 8192, 8192, 1024),
    # 0.5.16 FlashinferDispatcher.__init__: default from chunked_prefill_size 16384 (B200 default).
    (None, 2, 16384, 16384, 1024 * 2),
]


@pytest.mark.parametrize(("env", "ep", "default", "fixed", "reverted"), VECTORS)
def test_max_num_tokens_fixed_and_reverted(env: int | None, ep: int, default: int, fixed: int, reverted: int) -> None:
    assert rule.fixed_max_num_tokens(env, default) == fixed
    assert rule.reverted_max_num_tokens(env, ep) == reverted
    assert rule.max_num_tokens(FixSet(), env, ep, default) == fixed
    assert rule.max_num_tokens(FixSet.reverting([A2A_TOKEN_CAP]), env, ep, default) == reverted


def test_reverted_equals_fixed_times_ep_when_env_is_set() -> None:
    # PR #25907: with the env var set, the only difference is the multiply by ep_size.
    for ep in (1, 2, 4, 8, 16):
        assert rule.reverted_max_num_tokens(2048, ep) == rule.fixed_max_num_tokens(2048, 4096) * ep


def test_double_count_workspace_scale() -> None:
    # five-fixes.md: bf16, hidden 7168, top-8, ep 4: 16384/rank -> 1.89 GB; 16384 x 4 -> 7.54 GB per rank.
    dispatch = bf16_dispatch_bytes_per_token(7168, 8)
    combine = 7168 * 2
    fixed = moe_a2a_workspace_size_per_rank(4, rule.fixed_max_num_tokens(16384, 4096), dispatch, combine)
    reverted = moe_a2a_workspace_size_per_rank(4, rule.reverted_max_num_tokens(16384, 4), dispatch, combine)
    assert round(fixed / 1e9, 2) == 1.89
    assert round(reverted / 1e9, 2) == 7.54


@pytest.mark.parametrize(("raw", "expected"), [
    # 0.5.16 utils/common.py get_int_env_var: unset, blank or non-integer -> default (None here).
    (None, None), ("", None), ("  ", None), ("abc", None), ("2048", 2048), (" 512 ", 512),
])
def test_env_parsing_0_5_16(raw: str | None, expected: int | None) -> None:
    assert rule.read_env_tokens(raw, "0.5.16") == expected


def test_env_parsing_0_5_23_rejects_non_integers() -> None:
    # 0.5.23 environ.py EnvInt.parse raises ValueError('"abc" is not a valid integer value').
    assert rule.read_env_tokens("4096", "0.5.23") == 4096
    assert rule.read_env_tokens(None, "0.5.23") is None
    with pytest.raises(rule.EnvValueError, match="not a valid integer"):
        rule.read_env_tokens("abc", "0.5.23")
