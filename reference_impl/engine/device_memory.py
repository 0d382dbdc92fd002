"""Device memory: real CUDA allocations, or on CPU real tensors charged against a simulated capacity.

On CPU there is no device to run out of, so the engine keeps an honest ledger: every long-lived
tensor (weights, KV cache, A2A workspace, gathered buffer, graph-pool stand-in) is a real torch
allocation whose nbytes is charged against `capacity`; going over raises torch.OutOfMemoryError
worded like PyTorch's CUDA allocator, so the same log classifier reads both targets.
"""

from __future__ import annotations

import torch

from reference_impl.engine.engine_config import CPU_DEFAULT_GIB, GIB

MIB = 1 << 20


class DeviceMemory:
    """Allocates named tensors and reports total/free bytes the way sglang reads them."""

    def __init__(self, device: torch.device, capacity_gib: float | None) -> None:
        self.device = device
        self.used = 0
        self.by_name: dict[str, int] = {}
        if device.type == "cuda":
            _free, total = torch.cuda.mem_get_info(device)
            if capacity_gib is not None:
                # A real cap: the caching allocator itself raises OutOfMemoryError past it.
                torch.cuda.set_per_process_memory_fraction(min(1.0, capacity_gib * GIB / total), device)
                total = min(total, int(capacity_gib * GIB))
            self.capacity = total
        else:
            self.capacity = int((capacity_gib if capacity_gib is not None else CPU_DEFAULT_GIB) * GIB)

    def total_bytes(self) -> int:
        return self.capacity

    def free_bytes(self) -> int:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            reserved = torch.cuda.memory_reserved(self.device)
            return max(0, min(free, self.capacity - reserved))
        return self.capacity - self.used

    def allocated_bytes(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return self.used

    def empty(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A new tensor; on CPU charged to the ledger first so an overrun allocates nothing."""
        nbytes = _numel(shape) * torch.empty((), dtype=dtype).element_size()
        if self.device.type != "cuda":
            self.charge(name, nbytes)
        return torch.empty(shape, dtype=dtype, device=self.device)

    def charge(self, name: str, nbytes: int) -> None:
        """Account for bytes already held (weights built before the ledger saw them) or about to be."""
        if self.device.type == "cuda":
            return
        free = self.capacity - self.used
        if nbytes > free:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {nbytes / MIB:.2f} MiB. GPU 0 has a total capacity "
                f"of {self.capacity / GIB:.2f} GiB of which {free / MIB:.2f} MiB is free. "
                f"Of the allocated memory {self.used / GIB:.2f} GiB is allocated by PyTorch "
                f"(simulated device of the reference engine on CPU: {name})")
        self.used += nbytes
        self.by_name[name] = self.by_name.get(name, 0) + nbytes


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n
