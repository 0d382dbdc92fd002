"""A2A token cap (#25907): max_num_tokens handed to FlashInfer's MoeAlltoAll.

Fixed (0.5.16 FlashinferDispatcher.__init__): the env var / default means tokens per EP rank and is
passed as is, because moe_a2a_get_workspace_size_per_rank already reserves ep_size x max_num_tokens.
Reverted (pre-#25907): `get_int_env_var(ENV, 1024) * ep_size`, the double count.
"""

from __future__ import annotations

from reference_impl.fixset import A2A_TOKEN_CAP, FixSet
from reference_impl.versions import ENV_INT_SINCE, sglang_at_least

ENV_VAR = "SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK"
# The default before #25907 (per rank, then multiplied by ep_size); the PR description says
# "Raise the default from 1024 to 16384", later settled at 4096 (see dp_workspace_sizing).
OLD_DEFAULT_TOKENS_PER_RANK = 1024


class EnvValueError(ValueError):
    """An env value sglang itself rejects (0.5.23's EnvInt raises on a non-integer)."""


def read_env_tokens(raw: str | None, sglang_version: str) -> int | None:
    """The env override as sglang reads it, or None when it falls back to the default.

    0.5.16 uses utils.get_int_env_var: unset, blank or non-integer -> default.
    0.5.23 uses envs.SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK (EnvInt): unset -> default,
    non-integer -> ValueError at startup.
    """
    if raw is None:
        return None
    if sglang_at_least(sglang_version, ENV_INT_SINCE):
        try:
            return int(raw)
        except ValueError:
            raise EnvValueError(f'"{raw}" is not a valid integer value') from None
    if not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def fixed_max_num_tokens(env_tokens: int | None, default_tokens_per_rank: int) -> int:
    """Tokens per rank: the env override, else the default (from the DP workspace-sizing rule)."""
    return env_tokens if env_tokens is not None else default_tokens_per_rank


def reverted_max_num_tokens(env_tokens: int | None, ep_size: int) -> int:
    """Pre-#25907: (env or 1024) * ep_size, which FlashInfer multiplies by ep_size once more."""
    per_rank = env_tokens if env_tokens is not None else OLD_DEFAULT_TOKENS_PER_RANK
    return per_rank * ep_size


def max_num_tokens(fixes: FixSet, env_tokens: int | None, ep_size: int, default_tokens_per_rank: int) -> int:
    """The FixSet-selected max_num_tokens given to MoeAlltoAll and to the workspace size."""
    if fixes.applied(A2A_TOKEN_CAP):
        return fixed_max_num_tokens(env_tokens, default_tokens_per_rank)
    return reverted_max_num_tokens(env_tokens, ep_size)
