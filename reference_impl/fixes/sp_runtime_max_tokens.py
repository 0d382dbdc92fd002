"""SP runtime geometry (#25685): runtime_max_tokens_per_rank passed to MoeAlltoAll.dispatch.

Fixed (0.5.16 FlashinferDispatcher.dispatch): max(dp_global) when the DP list has more than one
entry (one per DP rank), else the local post-scatter count x.shape[0].
0.5.23 (issue #30242): case 1 becomes ceil(max(dp_global) / attn_tp_size).
Reverted (pre-#25685): max(dp_global) whenever the list is not None, so a one-entry list (the
scheduler's pre-scatter count under SP) oversizes the geometry.
"""

from __future__ import annotations

from collections.abc import Sequence

from reference_impl.fixset import SP_RUNTIME_MAX_TOKENS, FixSet
from reference_impl.versions import CEIL_RULE_SINCE, sglang_at_least


def fixed_runtime_max_tokens(dp_global: Sequence[int] | None, local_num_tokens: int,
                             attn_tp_size: int = 1, sglang_version: str = "0.5.16") -> int:
    if dp_global is not None and len(dp_global) > 1:
        if sglang_at_least(sglang_version, CEIL_RULE_SINCE):
            # _max_tokens_per_scattered_source: ceiling division by the attention-TP scatter.
            return -(-max(dp_global) // attn_tp_size)
        return max(dp_global)
    return local_num_tokens


def reverted_runtime_max_tokens(dp_global: Sequence[int] | None, local_num_tokens: int,
                                attn_tp_size: int = 1, sglang_version: str = "0.5.16") -> int:
    del attn_tp_size, sglang_version
    if dp_global is not None:
        return max(dp_global)
    return local_num_tokens


def runtime_max_tokens_per_rank(fixes: FixSet, dp_global: Sequence[int] | None, local_num_tokens: int,
                                attn_tp_size: int = 1, sglang_version: str = "0.5.16") -> int:
    rule = fixed_runtime_max_tokens if fixes.applied(SP_RUNTIME_MAX_TOKENS) else reverted_runtime_max_tokens
    return rule(dp_global, local_num_tokens, attn_tp_size, sglang_version)


def geometry_errors(runtime_max_tokens: int, local_num_tokens: int, max_num_tokens: int | None,
                    dp_global: Sequence[int] | None, dp_attention: bool, ep_size: int,
                    sglang_version: str = "0.5.16") -> list[str]:
    """The asserts dispatch() runs on the chosen geometry (0.5.16; 0.5.23 adds the workspace cap)."""
    errors: list[str] = []
    single = dp_global is None or len(dp_global) <= 1
    if single and dp_attention and ep_size > 1:
        errors.append("runtime.dp_global_num_tokens: DP attention reached the x.shape[0] fallback with "
                      f"ep_size={ep_size} > 1; the geometry would not be rank-invariant (issue #30242)")
    if runtime_max_tokens < local_num_tokens:
        errors.append(f"runtime.local_num_tokens: runtime_max_tokens_per_rank={runtime_max_tokens} < "
                      f"local tokens {local_num_tokens}; the MoeAlltoAll recv buffer would overflow")
    if (max_num_tokens is not None and sglang_at_least(sglang_version, CEIL_RULE_SINCE)
            and runtime_max_tokens > max_num_tokens):
        errors.append(f"runtime.dp_global_num_tokens: runtime_max_tokens_per_rank={runtime_max_tokens} > "
                      f"max_num_tokens={max_num_tokens}; the fixed workspace cannot hold it")
    return errors
