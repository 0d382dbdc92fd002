"""Per-rank GPU memory budget at CUDA graph capture time -> headroom and predicted capture OOM.

Model (sglang 0.5.16, kv_cache_configurator._profile_available_bytes):
  static   = total * mem_fraction_static          (weights + KV pool; KV takes what weights leave)
  slack    = total * (1 - mem_fraction_static)    (what capture and activations may use)
  headroom = slack - graph pool - capture activations - A2A workspace
Assumptions, written down because sglang does not log them:
  * free memory before model load equals the GPU total (nothing else on the device);
  * the FlashInfer A2A workspace (MNNVL memory from cuMemCreate, allocated in the dispatcher's
    __init__) is charged to the slack, not to the static pool. That is the only placement under
    which #25907's report holds: 16384 tokens/rank OOMed during CUDA graph capture on 4xB200 while
    4096 did not, with the KV pool already sized. `MemoryAssumptions.workspace_in_slack=False`
    charges it to the static pool instead (it then shrinks the KV pool and never causes a capture OOM);
  * the graph pool is sglang's own reserve estimate (reserve_for_graph_mb: 2 MiB per decode batch
    size slot, plus the DP-attention padding terms); prefill CUDA graphs are off;
  * capture activations: the largest decode graph (cuda_graph_max_bs tokens) holding bf16 hidden,
    attention and MoE intermediates plus fp32 logits (an upper-bound sketch, not a profile);
  * weights are bf16 unless model.weight_bytes_per_param says otherwise, sharded as sglang shards them.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.a2a import a2a_geometry
from reference_impl.inputs import ModelConfig, OracleInput, ServerArgs
from reference_impl.parallel import attn_tp_size
from reference_impl.resolve import ResolvedArgs, reserve_for_graph_mib, resolve

MIB = 1 << 20
BF16 = 2
FP32 = 4


@dataclass(frozen=True)
class MemoryAssumptions:
    """Switches for the parts of the budget sglang leaves implicit."""

    workspace_in_slack: bool = True
    weight_bytes_per_param: float = BF16


@dataclass(frozen=True)
class CaptureBudget:
    """Per-rank bytes at CUDA graph capture; headroom < 0 means capture runs out of memory."""

    total_bytes: int
    mem_fraction_static: float
    static_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    a2a_workspace_bytes: int
    graph_pool_bytes: int
    activation_bytes: int
    headroom_bytes: int

    @property
    def weights_exceed_static(self) -> bool:
        """sglang refuses to start ('Loaded weights ... exceed the static budget') before capture."""
        return self.kv_cache_bytes <= 0

    @property
    def predicted_capture_oom(self) -> bool:
        return self.headroom_bytes < 0


def weights_bytes_per_rank(model: ModelConfig, args: ServerArgs, bytes_per_param: float = BF16) -> int:
    """Parameters one rank holds: embeddings and attention split over attention TP, experts over EP x MoE-TP."""
    hidden = model.hidden_size
    head_dim = model.head_dim or (hidden // model.num_attention_heads if model.num_attention_heads else 0)
    q_out = model.num_attention_heads * head_dim
    kv_out = (model.num_key_value_heads or model.num_attention_heads) * head_dim
    attention = 2 * hidden * q_out + 2 * hidden * kv_out
    moe_layers = model.num_hidden_layers - model.first_k_dense_replace
    dense_layers = model.first_k_dense_replace
    moe_tp = max(1, args.tp_size // max(1, args.ep_size) // max(1, args.moe_dp_size))
    experts = model.num_experts * 3 * hidden * model.moe_intermediate_size / (max(1, args.ep_size) * moe_tp)
    dense_tp = args.moe_dense_tp_size or args.tp_size
    dense = 3 * hidden * model.intermediate_size / dense_tp
    embeddings = 2 * model.vocab_size * hidden / args.tp_size
    params = (model.num_hidden_layers * attention / attn_tp_size(args) + moe_layers * experts
              + dense_layers * dense + embeddings)
    return int(params * bytes_per_param)


def capture_activation_bytes(model: ModelConfig, max_bs: int) -> int:
    """Largest decode graph's live tensors: hidden/residual/attention, top-k MoE intermediates, fp32 logits."""
    per_token = (4 * model.hidden_size * BF16
                 + model.num_experts_per_tok * 2 * model.moe_intermediate_size * BF16
                 + model.vocab_size * FP32)
    return max_bs * per_token


def capture_budget(inp: OracleInput, resolved: ResolvedArgs | None = None,
                   assumptions: MemoryAssumptions | None = None) -> CaptureBudget | None:
    """The budget breakdown for one input; None when the GPU memory is unknown."""
    assumptions = assumptions or MemoryAssumptions()
    resolved = resolved or resolve(inp)
    total = resolved.gpu_memory_bytes
    mfs = resolved.mem_fraction_static
    if total is None or mfs is None:
        return None
    args = resolved.server_args
    geometry = a2a_geometry(inp, resolved)
    workspace = geometry.workspace_bytes_per_rank if geometry is not None else 0
    static = int(total * mfs)
    weights = weights_bytes_per_rank(inp.model, args, assumptions.weight_bytes_per_param)
    kv = static - weights - (0 if assumptions.workspace_in_slack else workspace)
    graph_pool = int(reserve_for_graph_mib(args, resolved.cuda_graph_max_bs) * MIB)
    activations = capture_activation_bytes(inp.model, resolved.cuda_graph_max_bs)
    headroom = (total - static) - graph_pool - activations - (workspace if assumptions.workspace_in_slack else 0)
    return CaptureBudget(total, mfs, static, weights, kv, workspace, graph_pool, activations, headroom)
