"""What one forward step processes on this rank: token ids, positions, KV slots, and its mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch


class ForwardMode(Enum):
    EXTEND = "extend"  # prefill (a chunk of one or more requests)
    DECODE = "decode"  # one new token per running request
    IDLE = "idle"  # this DP rank has no tokens but joins the MoE collectives


@dataclass
class ForwardBatch:
    """Tensors on the model's device; decode uses a block table so CUDA graphs see static shapes."""

    mode: ForwardMode
    input_ids: torch.Tensor  # [N]
    positions: torch.Tensor  # [N]
    out_slots: torch.Tensor  # [N] KV slot written by each token
    # EXTEND: per request, the slice of tokens and all KV slots up to the chunk end.
    seg_lens: list[int] = field(default_factory=list)
    seg_prefix_lens: list[int] = field(default_factory=list)
    seg_kv_slots: list[torch.Tensor] = field(default_factory=list)
    # DECODE: [B, W] KV slots per request (padded with the dummy slot 0) and lengths [B].
    block_table: torch.Tensor | None = None
    seq_lens: torch.Tensor | None = None
    # Token counts of every DP rank (what sglang calls global_num_tokens), or None.
    global_num_tokens: list[int] | None = None
    # Token count each attention-DP group runs in this step (every rank knows all of them).
    dp_num_tokens: list[int] = field(default_factory=list)
    # Rows whose logits are returned; built before any CUDA graph capture (no host copies inside one).
    sample_index: torch.Tensor | None = None
    capturing: bool = False
    quiet: bool = False  # warm-up passes before a CUDA graph capture write no dispatch records

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])
