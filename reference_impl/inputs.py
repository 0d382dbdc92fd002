"""Typed oracle inputs: sglang server args, model shape, runtime geometry, GPU and fix set."""

from __future__ import annotations

from dataclasses import dataclass, field

from reference_impl.fixset import FixSet

DISPATCH_DTYPES = ("bf16", "nvfp4", "mxfp8")


@dataclass(frozen=True)
class ServerArgs:
    """The subset of sglang's ServerArgs the five fixes read; names are sglang's own."""

    tp_size: int = 1
    dp_size: int = 1
    ep_size: int = 1
    enable_dp_attention: bool = False
    attn_cp_size: int = 1
    moe_dp_size: int = 1
    moe_a2a_backend: str = "none"
    moe_runner_backend: str = "auto"
    moe_dense_tp_size: int | None = None
    enable_dp_lm_head: bool = False
    chunked_prefill_size: int | None = None
    max_running_requests: int | None = None
    disable_attn_tp_gather: bool = False
    cuda_graph_max_bs: int | None = None
    mem_fraction_static: float | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Model shape fields the oracle needs (HF config.json names)."""

    hidden_size: int
    num_experts_per_tok: int
    num_experts: int
    num_hidden_layers: int
    moe_intermediate_size: int = 0
    intermediate_size: int = 0
    num_attention_heads: int = 0
    num_key_value_heads: int = 0
    head_dim: int = 0
    vocab_size: int = 0
    first_k_dense_replace: int = 0


@dataclass(frozen=True)
class Runtime:
    """Per-dispatch token geometry: the scheduler's dp_global list and what this rank holds."""

    dp_global_num_tokens: tuple[int, ...] | None = None
    local_num_tokens: int = 1
    batch_size: int = 1


@dataclass(frozen=True)
class GpuSpec:
    """A GPU by catalog name or raw memory size."""

    name: str | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class OracleInput:
    """Everything `predict` needs; built from JSON by reference_impl.parse."""

    server_args: ServerArgs
    model: ModelConfig
    env: tuple[tuple[str, str], ...] = ()
    dispatch_dtype: str = "bf16"
    runtime: Runtime = field(default_factory=Runtime)
    gpu: GpuSpec = field(default_factory=GpuSpec)
    fixes: FixSet = field(default_factory=FixSet)
    sglang_version: str = "0.5.16"

    def env_value(self, name: str) -> str | None:
        return dict(self.env).get(name)
