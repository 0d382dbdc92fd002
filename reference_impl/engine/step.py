"""The plain-Python work order rank 0 broadcasts each step: what every attention-DP group runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GroupWork:
    """One attention-DP group's tokens; empty means the group is idle this step."""

    input_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    out_slots: list[int] = field(default_factory=list)
    seg_lens: list[int] = field(default_factory=list)  # extend
    seg_prefix_lens: list[int] = field(default_factory=list)
    seg_slots: list[list[int]] = field(default_factory=list)
    block_table: list[list[int]] = field(default_factory=list)  # decode
    seq_lens: list[int] = field(default_factory=list)
    sample_rows: list[int] = field(default_factory=list)  # rows whose logits give the next token
    rids: list[str] = field(default_factory=list)  # decode: the request of each row (step timing records)

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)


@dataclass
class Step:
    kind: str  # "extend" | "decode" | "stop"
    groups: list[GroupWork]
