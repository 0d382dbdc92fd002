"""The model shape read from an HF-style config.json (Qwen3-MoE; DeepSeek-V3 tolerated)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reference_impl.inputs import ModelConfig


class ModelSpecError(ValueError):
    """A config.json that cannot describe a MoE decoder; the message names the file and field."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine's decoder needs to build its layers."""

    model_type: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    num_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    intermediate_size: int
    first_k_dense_replace: int
    num_shared_experts: int
    norm_topk_prob: bool
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    eos_token_id: int | None

    def is_sparse_layer(self, layer_id: int) -> bool:
        return layer_id >= self.first_k_dense_replace

    def oracle_config(self) -> ModelConfig:
        return ModelConfig(
            hidden_size=self.hidden_size,
            num_experts_per_tok=self.num_experts_per_tok,
            num_experts=self.num_experts,
            num_hidden_layers=self.num_hidden_layers,
            moe_intermediate_size=self.moe_intermediate_size,
            intermediate_size=self.intermediate_size,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            vocab_size=self.vocab_size,
            first_k_dense_replace=self.first_k_dense_replace,
        )


def load_model_spec(model_path: str | Path) -> ModelSpec:
    """Read `<model_path>/config.json`; raises ModelSpecError naming the file and the field."""
    path = Path(model_path) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSpecError(f"{path}: no such file (--model-path must be a directory with config.json)") from None
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelSpecError(f"{path}: expected a JSON object")

    def positive(*names: str, default: int | None = None) -> int:
        for name in names:
            if name in raw and raw[name] is not None:
                value = raw[name]
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    raise ModelSpecError(f"{path}: {name}: expected a positive integer, got {value!r}")
                return value
        if default is None:
            raise ModelSpecError(f"{path}: {names[0]}: missing")
        return default

    hidden = positive("hidden_size")
    heads = positive("num_attention_heads")
    eos = raw.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    # DeepSeek's MLA is modelled as plain multi-head attention of the same head count.
    head_dim = positive("head_dim", default=hidden // heads)
    spec = ModelSpec(
        model_type=str(raw.get("model_type", "unknown")),
        hidden_size=hidden,
        num_hidden_layers=positive("num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=positive("num_key_value_heads", default=heads),
        head_dim=head_dim,
        vocab_size=positive("vocab_size"),
        num_experts=positive("num_experts", "n_routed_experts"),
        num_experts_per_tok=positive("num_experts_per_tok"),
        moe_intermediate_size=positive("moe_intermediate_size"),
        intermediate_size=positive("intermediate_size", default=positive("moe_intermediate_size")),
        first_k_dense_replace=int(raw.get("first_k_dense_replace") or 0),
        num_shared_experts=int(raw.get("n_shared_experts") or 0),
        norm_topk_prob=bool(raw.get("norm_topk_prob", True)),
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        max_position_embeddings=positive("max_position_embeddings", default=4096),
        eos_token_id=eos if isinstance(eos, int) else None,
    )
    if spec.num_experts_per_tok > spec.num_experts:
        raise ModelSpecError(f"{path}: num_experts_per_tok: {spec.num_experts_per_tok} > num_experts {spec.num_experts}")
    if spec.num_attention_heads % spec.num_key_value_heads:
        raise ModelSpecError(f"{path}: num_key_value_heads: must divide num_attention_heads")
    return spec
