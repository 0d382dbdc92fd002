"""A MoE layer's token movement by scatter mode (sglang's LayerCommunicator, in miniature).

Attention runs replicated on every rank of an attention-DP group, so each rank enters the MLP with
all of its group's tokens. SCATTERED keeps this rank's slice of them and sends it through the A2A
dispatcher, then all-gathers the group's outputs (into the gathered buffer when the oracle requires
one). FULL runs the MoE on all tokens: locally with ep_size 1, else every rank computes its experts
over the world's tokens and an all_reduce sums them. MOE_FULL first all-gathers the attention-CP
slices (MoE-CP allgather) and then runs FULL.
"""

from __future__ import annotations

import torch

from reference_impl.engine.comms import Comms
from reference_impl.engine.dispatcher import A2ADispatcher
from reference_impl.engine.forward_batch import ForwardBatch
from reference_impl.engine.model import SparseMoe
from reference_impl.engine.plan import EnginePlan
from reference_impl.engine.rank_layout import RankLayout
from reference_impl.fixes.moe_dp_attn_cp import FULL, MOE_FULL, SCATTERED


def split_range(n: int, parts: int, index: int) -> tuple[int, int]:
    """Rows [lo, hi) of part `index` when n rows are cut into `parts` chunks of ceil(n / parts)."""
    chunk = -(-n // parts) if n else 0
    lo = min(n, index * chunk)
    return lo, min(n, lo + chunk)


class MlpCommunicator:
    def __init__(self, plan: EnginePlan, layout: RankLayout, comms: Comms, dispatcher: A2ADispatcher | None,
                 gathered_buffer: torch.Tensor | None, dense_experts: bool) -> None:
        self.plan, self.layout, self.comms = plan, layout, comms
        self.dispatcher, self.gathered_buffer, self.dense = dispatcher, gathered_buffer, dense_experts

    def sparse(self, layer_id: int, x: torch.Tensor, moe: SparseMoe, batch: ForwardBatch) -> torch.Tensor:
        mode = self.plan.modes.sparse
        if mode == SCATTERED:
            return self._scattered(x, moe, batch)
        if mode == MOE_FULL:
            return self._full(self._cp_allgather(x), moe, batch)
        assert mode == FULL, mode
        return self._full(x, moe, batch)

    def _scattered(self, x: torch.Tensor, moe: SparseMoe, batch: ForwardBatch) -> torch.Tensor:
        lay, n = self.layout, x.shape[0]
        lo, hi = split_range(n, lay.group_size, lay.index_in_group)
        local = x[lo:hi]
        ids, weights = moe.route(local)
        if self.dispatcher is not None:
            counts = [split_range(batch.dp_num_tokens[r // lay.group_size], lay.group_size,
                                  r % lay.group_size) for r in range(lay.world)]
            out = self.dispatcher.run(local, ids, weights, moe.experts, batch,
                                      [b - a for a, b in counts], self.dense)
        else:
            out = moe.experts(local, ids, weights, self.dense)
        if moe.shared is not None:
            out = out + moe.shared(local)
        return self._group_allgather(out, n)

    def _group_allgather(self, part: torch.Tensor, n: int) -> torch.Tensor:
        size = self.layout.group_size
        if size == 1:
            return part
        chunk = -(-n // size) if n else 0
        padded = part.new_zeros(chunk, part.shape[1])
        padded[:part.shape[0]] = part
        buf = self.gathered_buffer
        if buf is not None and size * chunk <= buf.shape[0]:
            out = buf[:size * chunk]
        else:
            out = part.new_empty(size * chunk, part.shape[1])
        self.comms.all_gather(out, padded, "dp")
        return out[:n].clone() if buf is not None else out[:n]

    def _cp_allgather(self, x: torch.Tensor) -> torch.Tensor:
        """MoE-CP allgather: this rank's CP slice of the sequence is gathered back across the CP group."""
        cp, n = self.layout.attn_cp_size, x.shape[0]
        if cp == 1:
            return x
        chunk = -(-n // cp) if n else 0
        lo, hi = split_range(n, cp, self.layout.attn_cp_rank)
        padded = x.new_zeros(chunk, x.shape[1])
        padded[:hi - lo] = x[lo:hi]
        out = x.new_empty(cp * chunk, x.shape[1])
        self.comms.all_gather(out, padded, "cp")
        return out[:n]

    def _full(self, x: torch.Tensor, moe: SparseMoe, batch: ForwardBatch) -> torch.Tensor:
        lay = self.layout
        shared = moe.shared(x) if moe.shared is not None else None
        if lay.ep_size == 1:
            ids, weights = moe.route(x)
            out = moe.experts(x, ids, weights, self.dense)
        else:
            # Every rank holds E/ep experts: all ranks see all tokens, each adds its experts' share.
            counts = [batch.dp_num_tokens[r // lay.group_size] for r in range(lay.world)]
            width = max(counts)
            padded = x.new_zeros(width, x.shape[1])
            padded[:x.shape[0]] = x
            everything = x.new_empty(lay.world * width, x.shape[1])
            self.comms.all_gather(everything, padded, "world")
            ids, weights = moe.route(everything)
            rows = torch.arange(width, device=x.device)
            valid = torch.cat([rows < c for c in counts])  # no host-to-device copy: CUDA-graph safe
            ids = torch.where(valid[:, None], ids, torch.full_like(ids, -1))
            out_all = moe.experts(everything, ids, weights, self.dense)
            self.comms.all_reduce(out_all)
            out = out_all[lay.rank * width:lay.rank * width + x.shape[0]]
        return out if shared is None else out + shared
