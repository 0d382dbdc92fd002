"""EP all-to-all dispatch/combine through a preallocated workspace laid out as FlashInfer's MoeAlltoAll.

Workspace per rank = aux | dispatch payload [ep, max_num_tokens, dispatch_bytes] | combine payload
[ep, max_num_tokens, combine_bytes], each region padded to 128 bytes; sizes come from the oracle.
A dispatch uses a fixed geometry of runtime_max_tokens_per_rank rows per source rank (the oracle's
rule for the active FixSet); a geometry past max_num_tokens would write beyond the payload region,
so it raises instead, loudly.
"""

from __future__ import annotations

import torch

from reference_impl.a2a import A2AGeometry
from reference_impl.engine.comms import Comms
from reference_impl.engine.device_memory import DeviceMemory
from reference_impl.engine.forward_batch import ForwardBatch
from reference_impl.engine.model import Experts
from reference_impl.engine.plan import EnginePlan
from reference_impl.engine.rank_layout import RankLayout
from reference_impl.engine.records import Records
from reference_impl.versions import flashinfer_for_sglang
from reference_impl.workspace import aux_data_size, pad_up


class WorkspaceOverflowError(RuntimeError):
    """A dispatch geometry larger than the workspace's max_num_tokens."""


class GeometryError(AssertionError):
    """A geometry sglang's dispatch() asserts against (the oracle's geometry_errors)."""


class A2ADispatcher:
    def __init__(self, plan: EnginePlan, layout: RankLayout, comms: Comms, memory: DeviceMemory,
                 records: Records, hidden: int, top_k: int) -> None:
        assert plan.geometry is not None
        g: A2AGeometry = plan.geometry
        self.plan, self.layout, self.comms, self.records = plan, layout, comms, records
        self.ep, self.hidden, self.top_k = g.ep_size, hidden, top_k
        self.max_num_tokens = g.max_num_tokens
        self.dispatch_bytes = 2 * hidden + 8 * top_k  # bf16 hidden, int32 ids, fp32 weights
        self.combine_bytes = 2 * hidden
        if (self.dispatch_bytes, self.combine_bytes) != (g.dispatch_bytes_per_token, g.combine_bytes_per_token):
            raise ValueError(f"oracle payloads {g.dispatch_bytes_per_token}/{g.combine_bytes_per_token} B/token "
                             f"differ from the engine's bf16 payloads {self.dispatch_bytes}/{self.combine_bytes}")
        self.workspace = memory.empty("moe_a2a_workspace", (g.workspace_bytes_per_rank,), torch.uint8)
        rows = self.ep * self.max_num_tokens
        aux = aux_data_size(self.ep, self.max_num_tokens, flashinfer_for_sglang(plan.oracle_input.sglang_version))
        d_end = aux + pad_up(rows * self.dispatch_bytes)
        self.dispatch_region = self.workspace[aux:aux + rows * self.dispatch_bytes]
        self.combine_region = self.workspace[d_end:d_end + rows * self.combine_bytes]
        if d_end + pad_up(rows * self.combine_bytes) != self.workspace.numel():
            raise ValueError("workspace layout does not add up to the oracle's workspace_bytes_per_rank")
        records.write("dispatcher_init", ep_size=self.ep, ep_rank=layout.ep_rank,
                      max_num_tokens=self.max_num_tokens, dispatch_payload_bytes_per_token=self.dispatch_bytes,
                      combine_payload_bytes_per_token=self.combine_bytes,
                      workspace_size_per_rank=int(self.workspace.numel()),
                      payload_workspace_tokens=self.dispatch_region.numel() // self.dispatch_bytes)

    def run(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, experts: Experts,
            batch: ForwardBatch, local_counts: list[int], dense: bool) -> torch.Tensor:
        """Dispatch this rank's tokens to every EP rank, run local experts, combine; returns [m, H]."""
        m = x.shape[0]
        dp_global = batch.global_num_tokens
        geometry = [self.plan.runtime_max_tokens(dp_global, c) for c in local_counts]
        r = geometry[self.layout.rank] if self.ep > 1 else geometry[0]
        if not batch.quiet:
            self.records.dispatch(batch.capturing, runtime_max_tokens_per_rank=r, local_num_tokens=m,
                                  dp_global_num_tokens=dp_global)
        errors = self.plan.geometry_errors(r, m, dp_global)
        if errors:
            raise GeometryError("; ".join(errors))
        worst = max(geometry)
        if worst > self.max_num_tokens:
            raise WorkspaceOverflowError(
                f"MoeAlltoAll workspace overflow: runtime_max_tokens_per_rank={worst} > max_num_tokens="
                f"{self.max_num_tokens} (payload region holds ep_size x max_num_tokens = "
                f"{self.ep * self.max_num_tokens} rows of {self.dispatch_bytes} B)")
        if self.ep == 1:
            geometry = [r]
        payload = self._pack(x, ids, weights, r)  # [r, dispatch_bytes]
        send = payload.unsqueeze(0).expand(self.ep, r, self.dispatch_bytes).reshape(-1)
        recv_rows = sum(geometry)
        recv = self.dispatch_region[:recv_rows * self.dispatch_bytes]
        self.comms.all_to_all(recv, send, [g * self.dispatch_bytes for g in geometry],
                              [r * self.dispatch_bytes] * self.ep)
        x_recv, ids_recv, w_recv = self._unpack(recv.view(recv_rows, self.dispatch_bytes))
        out = experts(x_recv.to(x.dtype), ids_recv, w_recv, dense)
        back = out.to(torch.bfloat16).contiguous().view(torch.uint8).reshape(-1)
        combined = self.combine_region[:self.ep * r * self.combine_bytes]
        self.comms.all_to_all(combined, back, [r * self.combine_bytes] * self.ep,
                              [g * self.combine_bytes for g in geometry])
        parts = combined.view(self.ep, r, self.combine_bytes).view(torch.bfloat16)
        return parts.float().sum(0)[:m].to(x.dtype)

    def _pack(self, x: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor, rows: int) -> torch.Tensor:
        m, k = x.shape[0], self.top_k
        hidden = torch.zeros(rows, self.hidden, dtype=torch.bfloat16, device=x.device)
        hidden[:m] = x.to(torch.bfloat16)
        ids_p = torch.full((rows, k), -1, dtype=torch.int32, device=x.device)  # padding: no expert
        ids_p[:m] = ids
        w_p = torch.zeros(rows, k, dtype=torch.float32, device=x.device)
        w_p[:m] = weights.float()
        return torch.cat([hidden.view(torch.uint8), ids_p.view(torch.uint8), w_p.view(torch.uint8)], dim=1)

    def _unpack(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h2, k4 = 2 * self.hidden, 4 * self.top_k
        x = rows[:, :h2].contiguous().view(torch.bfloat16)
        ids = rows[:, h2:h2 + k4].contiguous().view(torch.int32)
        w = rows[:, h2 + k4:h2 + 2 * k4].contiguous().view(torch.float32)
        return x, ids, w
