"""Token-slot KV cache: one K and one V tensor per layer; slot_pool.SlotPool hands the slots out."""

from __future__ import annotations

import torch

from reference_impl.engine.device_memory import DeviceMemory
from reference_impl.engine.model_spec import ModelSpec


class KvCache:
    """Slot 0 is a scratch slot: padded rows of a captured decode batch write and read there."""

    def __init__(self, spec: ModelSpec, num_slots: int, memory: DeviceMemory, dtype: torch.dtype) -> None:
        shape = (spec.num_hidden_layers, num_slots, spec.num_key_value_heads, spec.head_dim)
        self.k = memory.empty("kv_cache_k", shape, dtype)
        self.v = memory.empty("kv_cache_v", shape, dtype)
        self.num_slots = num_slots

    @staticmethod
    def bytes_per_slot(spec: ModelSpec, dtype: torch.dtype) -> int:
        elem = torch.empty((), dtype=dtype).element_size()
        return 2 * spec.num_hidden_layers * spec.num_key_value_heads * spec.head_dim * elem

    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k[layer].index_copy_(0, slots, k)
        self.v[layer].index_copy_(0, slots, v)

    def gather(self, layer: int, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k[layer][slots], self.v[layer][slots]

