"""GPU catalog: total device memory as the CUDA driver reports it (nvidia-smi's MiB total)."""

from __future__ import annotations

from reference_impl.inputs import GpuSpec

MIB = 1 << 20

# nvidia-smi "Total" of each part (MiB); sglang sizes everything from this total, not the marketing GB.
GPU_MEMORY_MIB: dict[str, int] = {
    "H100": 81559,  # H100 SXM5 80GB HBM3
    "H200": 143771,  # H200 SXM 141GB HBM3e
    "B200": 183359,  # B200 180GB HBM3e as exposed by the driver
}


class UnknownGpuError(ValueError):
    """A GPU name outside the catalog."""


def gpu_memory_bytes(gpu: GpuSpec) -> int | None:
    """Total bytes: memory_bytes when given, else the catalog entry for name, else None."""
    if gpu.memory_bytes is not None:
        return gpu.memory_bytes
    if gpu.name is None:
        return None
    key = gpu.name.strip().upper()
    if key not in GPU_MEMORY_MIB:
        raise UnknownGpuError(f"gpu.name: unknown GPU {gpu.name!r}; known: {', '.join(GPU_MEMORY_MIB)}")
    return GPU_MEMORY_MIB[key] * MIB
