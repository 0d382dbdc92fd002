"""A small MoE decoder (GQA attention with RoPE and QK-norm, top-k routed experts) in plain torch."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from reference_impl.engine.forward_batch import ForwardBatch, ForwardMode
from reference_impl.engine.kv_cache import KvCache
from reference_impl.engine.model_spec import ModelSpec
from reference_impl.engine.weights import WeightFactory


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * weight


class Rope:
    """Rotary tables precomputed for the context length (neox layout, as Qwen3 uses)."""

    def __init__(self, head_dim: int, theta: float, max_positions: int, device: torch.device) -> None:
        inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_positions, dtype=torch.float32), inv)
        self.cos = freqs.cos().to(device)
        self.sin = freqs.sin().to(device)

    def apply(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


class Attention(nn.Module):
    """Full attention on every rank of an attention group (replicated; tokens move in the MLP path)."""

    def __init__(self, spec: ModelSpec, layer_id: int, w: WeightFactory, rope: Rope) -> None:
        super().__init__()
        p, h, hd = f"layers.{layer_id}.attn.", spec.hidden_size, spec.head_dim
        self.layer_id, self.rope, self.eps = layer_id, rope, spec.rms_norm_eps
        self.nh, self.nkv, self.hd = spec.num_attention_heads, spec.num_key_value_heads, hd
        self.qkv = w.normal(p + "qkv", (self.nh + 2 * self.nkv) * hd, h)
        self.o = w.normal(p + "o", h, self.nh * hd)
        self.q_norm, self.k_norm = w.ones(hd), w.ones(hd)

    def forward(self, x: torch.Tensor, batch: ForwardBatch, kv: KvCache) -> torch.Tensor:
        n = x.shape[0]
        q, k, v = F.linear(x, self.qkv).split([self.nh * self.hd, self.nkv * self.hd, self.nkv * self.hd], -1)
        q = self.rope.apply(rms_norm(q.view(n, self.nh, self.hd), self.q_norm, self.eps), batch.positions)
        k = self.rope.apply(rms_norm(k.view(n, self.nkv, self.hd), self.k_norm, self.eps), batch.positions)
        v = v.view(n, self.nkv, self.hd)
        kv.write(self.layer_id, batch.out_slots, k, v)
        out = self._decode(q, batch, kv) if batch.mode is ForwardMode.DECODE else self._extend(q, batch, kv)
        return F.linear(out.reshape(n, self.nh * self.hd), self.o)

    def _decode(self, q: torch.Tensor, batch: ForwardBatch, kv: KvCache) -> torch.Tensor:
        assert batch.block_table is not None and batch.seq_lens is not None
        k, v = kv.gather(self.layer_id, batch.block_table)  # [B, W, nkv, hd]
        width = batch.block_table.shape[1]
        mask = torch.arange(width, device=q.device)[None, :] < batch.seq_lens[:, None]
        out = F.scaled_dot_product_attention(
            q.unsqueeze(2), k.transpose(1, 2), v.transpose(1, 2),
            attn_mask=mask[:, None, None, :], enable_gqa=self.nh != self.nkv)
        return out.squeeze(2)

    def _extend(self, q: torch.Tensor, batch: ForwardBatch, kv: KvCache) -> torch.Tensor:
        outs, start = [], 0
        for length, prefix, slots in zip(batch.seg_lens, batch.seg_prefix_lens, batch.seg_kv_slots, strict=True):
            k, v = kv.gather(self.layer_id, slots)  # [S, nkv, hd]
            if prefix == 0:  # plain causal: lets SDPA pick its fused kernel, no mask tensor
                mask, causal = None, True
            else:
                qi = torch.arange(length, device=q.device)[:, None] + prefix
                mask, causal = torch.arange(prefix + length, device=q.device)[None, :] <= qi, False
            o = F.scaled_dot_product_attention(
                q[start:start + length].transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                attn_mask=mask, is_causal=causal, enable_gqa=self.nh != self.nkv)
            outs.append(o.transpose(0, 1))
            start += length
        return torch.cat(outs) if outs else q


class DenseMlp(nn.Module):
    def __init__(self, name: str, hidden: int, inter: int, w: WeightFactory) -> None:
        super().__init__()
        self.w13 = w.normal(name + ".w13", 2 * inter, hidden)
        self.w2 = w.normal(name + ".w2", hidden, inter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(x, self.w13).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.w2)


class Experts(nn.Module):
    """This rank's slice of routed experts, [first, first + count) of num_experts."""

    def __init__(self, spec: ModelSpec, layer_id: int, first: int, count: int, w: WeightFactory) -> None:
        super().__init__()
        self.first, self.count = first, count
        p, h, i = f"layers.{layer_id}.experts.", spec.hidden_size, spec.moe_intermediate_size
        self.w13 = torch.stack([w.normal(f"{p}{e}.w13", 2 * i, h) for e in range(first, first + count)])
        self.w2 = torch.stack([w.normal(f"{p}{e}.w2", h, i) for e in range(first, first + count)])

    def forward(self, x: torch.Tensor, topk_ids: torch.Tensor, topk_weights: torch.Tensor,
                dense: bool) -> torch.Tensor:
        """Weighted sum of the local experts each row was routed to; other ids (padding) add nothing."""
        local = topk_ids.long() - self.first
        valid = (local >= 0) & (local < self.count)
        if dense:  # static shapes for CUDA graphs: every local expert over every row
            weights = torch.zeros(x.shape[0], self.count, device=x.device, dtype=torch.float32)
            weights.scatter_add_(1, local.clamp(0, self.count - 1), topk_weights.float() * valid)
            gate, up = torch.einsum("mh,eih->emi", x, self.w13).chunk(2, dim=-1)
            y = torch.einsum("emi,ehi->emh", F.silu(gate) * up, self.w2)
            return torch.einsum("me,emh->mh", weights.to(x.dtype), y)
        out = torch.zeros_like(x)
        rows, slots = valid.nonzero(as_tuple=True)
        experts = local[rows, slots]
        for e in experts.unique().tolist():
            sel = experts == e
            r = rows[sel]
            gate, up = F.linear(x[r], self.w13[e]).chunk(2, dim=-1)
            y = F.linear(F.silu(gate) * up, self.w2[e])
            out.index_add_(0, r, y * topk_weights[r, slots[sel]].unsqueeze(1).to(y.dtype))
        return out


class SparseMoe(nn.Module):
    """Router (softmax top-k) + local experts + optional shared experts; tokens move via MlpPath."""

    def __init__(self, spec: ModelSpec, layer_id: int, first: int, count: int, w: WeightFactory) -> None:
        super().__init__()
        self.top_k, self.norm_topk = spec.num_experts_per_tok, spec.norm_topk_prob
        self.gate = w.normal(f"layers.{layer_id}.router", spec.num_experts, spec.hidden_size)
        self.experts = Experts(spec, layer_id, first, count, w)
        self.shared = (DenseMlp(f"layers.{layer_id}.shared", spec.hidden_size,
                                spec.moe_intermediate_size * spec.num_shared_experts, w)
                       if spec.num_shared_experts else None)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(F.linear(x, self.gate).float(), dim=-1)
        weights, ids = probs.topk(self.top_k, dim=-1)
        if self.norm_topk:
            weights = weights / weights.sum(-1, keepdim=True)
        return ids.to(torch.int32), weights


class MlpPath(Protocol):
    """Moves a layer's tokens through the MoE (scatter, dispatch, experts, combine, gather)."""

    def sparse(self, layer_id: int, x: torch.Tensor, moe: SparseMoe, batch: ForwardBatch) -> torch.Tensor: ...


class DecoderLayer(nn.Module):
    def __init__(self, spec: ModelSpec, layer_id: int, experts: tuple[int, int], w: WeightFactory,
                 rope: Rope) -> None:
        super().__init__()
        self.layer_id, self.eps = layer_id, spec.rms_norm_eps
        self.attn = Attention(spec, layer_id, w, rope)
        self.norm1, self.norm2 = w.ones(spec.hidden_size), w.ones(spec.hidden_size)
        self.moe = SparseMoe(spec, layer_id, *experts, w) if spec.is_sparse_layer(layer_id) else None
        self.dense = (None if self.moe is not None
                      else DenseMlp(f"layers.{layer_id}.mlp", spec.hidden_size, spec.intermediate_size, w))

    def forward(self, x: torch.Tensor, batch: ForwardBatch, kv: KvCache, path: MlpPath) -> torch.Tensor:
        x = x + self.attn(rms_norm(x, self.norm1, self.eps), batch, kv)
        y = rms_norm(x, self.norm2, self.eps)
        if self.moe is None:
            assert self.dense is not None
            return x + self.dense(y)
        return x + path.sparse(self.layer_id, y, self.moe, batch)


class MoeModel(nn.Module):
    """Embedding, decoder layers, final norm and LM head; returns last-token logits per request."""

    def __init__(self, spec: ModelSpec, experts: tuple[int, int], w: WeightFactory, max_positions: int) -> None:
        super().__init__()
        self.spec = spec
        rope = Rope(spec.head_dim, spec.rope_theta, max_positions, w.device)
        self.embed = w.normal("embed", spec.vocab_size, spec.hidden_size, std=1.0)
        self.layers = nn.ModuleList(DecoderLayer(spec, i, experts, w, rope) for i in range(spec.num_hidden_layers))
        self.norm = w.ones(spec.hidden_size)
        self.lm_head = w.normal("lm_head", spec.vocab_size, spec.hidden_size)

    def forward(self, batch: ForwardBatch, kv: KvCache, path: MlpPath, last_index: torch.Tensor) -> torch.Tensor:
        x = self.embed[batch.input_ids]
        for layer in self.layers:
            x = layer(x, batch, kv, path)
        x = rms_norm(x[last_index], self.norm, self.spec.rms_norm_eps)
        return F.linear(x, self.lm_head)
