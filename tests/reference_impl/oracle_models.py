"""Model shapes shared by the oracle tests (a plain module: conftest names clash across test dirs)."""

from __future__ import annotations

from reference_impl.inputs import ModelConfig

# DeepSeek-V3 shape (hidden 7168, top-8 of 256 routed experts): the model of the five-fixes numbers.
DEEPSEEK_V3 = ModelConfig(hidden_size=7168, num_experts_per_tok=8, num_experts=256, num_hidden_layers=61,
                          moe_intermediate_size=2048, intermediate_size=18432, num_attention_heads=128,
                          num_key_value_heads=128, head_dim=192, vocab_size=129280, first_k_dense_replace=3)
# harness/models/tiny-qwen3-moe/config.json
TINY_QWEN3_MOE = ModelConfig(hidden_size=1024, num_experts_per_tok=4, num_experts=16, num_hidden_layers=4,
                             moe_intermediate_size=256, intermediate_size=2048, num_attention_heads=8,
                             num_key_value_heads=4, head_dim=128, vocab_size=32000)
