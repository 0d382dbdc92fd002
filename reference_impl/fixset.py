"""Which of the five fixes are applied; a reverted fix reintroduces its original bug."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SP_RUNTIME_MAX_TOKENS = "sp-runtime-max-tokens"
DP_WORKSPACE_SIZING = "dp-workspace-sizing"
A2A_TOKEN_CAP = "a2a-token-cap"
DISABLE_ATTN_TP_GATHER = "disable-attn-tp-gather"
MOE_DP1_ATTN_CP = "moe-dp1-attn-cp"

FIX_NAMES: tuple[str, ...] = (
    SP_RUNTIME_MAX_TOKENS,
    DP_WORKSPACE_SIZING,
    A2A_TOKEN_CAP,
    DISABLE_ATTN_TP_GATHER,
    MOE_DP1_ATTN_CP,
)


class UnknownFixError(ValueError):
    """A fix name that is not one of FIX_NAMES."""


@dataclass(frozen=True)
class FixSet:
    """The set of reverted fixes; every fix not named here is applied (as merged in sglang)."""

    reverted: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.reverted) - set(FIX_NAMES))
        if unknown:
            raise UnknownFixError(
                f"unknown fix name(s) {', '.join(unknown)}; known: {', '.join(FIX_NAMES)}"
            )

    @classmethod
    def all_applied(cls) -> FixSet:
        return cls()

    @classmethod
    def reverting(cls, names: Iterable[str]) -> FixSet:
        return cls(frozenset(names))

    def applied(self, name: str) -> bool:
        if name not in FIX_NAMES:
            raise UnknownFixError(f"unknown fix name {name!r}; known: {', '.join(FIX_NAMES)}")
        return name not in self.reverted

    def sorted_reverted(self) -> list[str]:
        return [n for n in FIX_NAMES if n in self.reverted]
