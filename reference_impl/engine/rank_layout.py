"""Where one rank sits: its attention-DP group, attention TP/CP coordinates and expert slice."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.inputs import ServerArgs


@dataclass(frozen=True)
class RankLayout:
    """Ranks are tp ranks; a DP group holds attn_cp x attn_tp ranks (cp-major), experts split by ep."""

    rank: int
    world: int
    dp_size: int  # attention DP groups (dp_size with DP attention, else 1)
    attn_tp_size: int
    attn_cp_size: int
    ep_size: int
    moe_dp_size: int

    @classmethod
    def of(cls, args: ServerArgs, rank: int) -> RankLayout:
        dp = args.dp_size if args.enable_dp_attention else 1
        cp = args.attn_cp_size
        return cls(rank=rank, world=args.tp_size, dp_size=dp, attn_tp_size=args.tp_size // dp // cp,
                   attn_cp_size=cp, ep_size=args.ep_size, moe_dp_size=args.moe_dp_size)

    @property
    def group_size(self) -> int:
        return self.attn_tp_size * self.attn_cp_size

    @property
    def dp_rank(self) -> int:
        return self.rank // self.group_size

    @property
    def index_in_group(self) -> int:
        return self.rank % self.group_size

    @property
    def attn_cp_rank(self) -> int:
        return self.index_in_group // self.attn_tp_size

    @property
    def attn_tp_rank(self) -> int:
        return self.index_in_group % self.attn_tp_size

    @property
    def ep_rank(self) -> int:
        return self.rank if self.ep_size > 1 else 0

    def dp_group_ranks(self, dp_rank: int) -> list[int]:
        return list(range(dp_rank * self.group_size, (dp_rank + 1) * self.group_size))

    def cp_group_ranks(self) -> list[int]:
        base = self.dp_rank * self.group_size + self.attn_tp_rank
        return [base + c * self.attn_tp_size for c in range(self.attn_cp_size)]

    def expert_slice(self, num_experts: int) -> tuple[int, int]:
        """(first, count) of the routed experts this rank holds."""
        per = num_experts // self.ep_size
        return self.ep_rank * per, per
