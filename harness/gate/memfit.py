"""Whether base and head servers fit on the GPUs together, and each one's --mem-fraction-static share.

sglang (0.5.16's kv_cache_configurator) sizes its static memory from what is FREE when it starts:
it keeps `free * (1 - f)` as slack for activations and graphs and takes the rest. A server alone
would take `alone * free`. Two co-resident servers, whichever starts first, take f * free and
f * (1 - f) * free; with f = 1 - sqrt(1 - alone) they take together what one took alone and leave
the same slack, `(1 - alone) * free`, for both. They fit when that share is at least MIN_SHARE and
each server gets at least the scenario's min_gpu_memory_gib; otherwise the gate starts the servers
one after the other (the alternating design) and says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.scenarios.catalog import Scenario

GIB = 1 << 30
MIN_SHARE = 0.05  # below this a server's KV pool holds almost nothing
MEM_FLAG = "--mem-fraction-static"
# Two sglang servers started together race: one's KV pool may be allocated between the other's
# "free before the weights" reading and its KV sizing, which then leaves it nothing (seen on an H200:
# "Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.16"). So each
# keeps its own fraction and caps its pool in tokens instead: whichever sizes last still sees room.
KV_TOKENS_FLAG = "--max-total-tokens"
PAIRED_KV_TOKENS = 65536


@dataclass(frozen=True)
class DeviceMemory:
    """One GPU's total and currently free memory, as NVML reports it."""

    index: int
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class Fit:
    """The design the memory allows: paired (co-resident) or not, why, and the share to pass."""

    paired: bool
    reason: str
    mem_fraction_static: float | None = None  # the share of free memory each server may take; None: no GPU

    def server_args(self) -> tuple[str, ...]:
        """Flags appended to both servers: a KV pool cap in tokens (see PAIRED_KV_TOKENS)."""
        return (KV_TOKENS_FLAG, str(PAIRED_KV_TOKENS)) if self.paired and self.mem_fraction_static else ()


def decide_fit(*, uses_gpu: bool, gpus_needed: int, min_gpu_memory_gib: float, alone: float,
               devices: Sequence[DeviceMemory]) -> Fit:
    """The decision for one scenario; `alone` is the static fraction one server alone would take."""
    if not uses_gpu:
        return Fit(True, "CPU servers: no device memory to share")
    if not devices:
        return Fit(True, "no GPU visible: both sides skip the scenario")
    used = devices[:max(gpus_needed, 1)]
    share = paired_fraction(alone)
    shares = []
    for device in used:
        # The later of the two servers gets the smaller part: f * (1 - f) of the free memory, plus its
        # half of the slack both keep.
        per_server_gib = (share * (1.0 - share) + (1.0 - alone) / 2.0) * device.free_bytes / GIB
        if share < MIN_SHARE or per_server_gib < min_gpu_memory_gib:
            return Fit(False, f"GPU {device.index}: {device.free_bytes / GIB:.1f} of "
                              f"{device.total_bytes / GIB:.1f} GiB free; two servers would get {MEM_FLAG} "
                              f"{max(share, 0.0):.2f} each ({max(per_server_gib, 0.0):.1f} GiB for the later "
                              f"one with its part of the slack), below the share {MIN_SHARE} or the scenario's "
                              f"{min_gpu_memory_gib:g} GiB: alternating server starts instead")
        shares.append(share)
    share = min(shares)
    return Fit(True, f"two servers per GPU, {KV_TOKENS_FLAG} {PAIRED_KV_TOKENS} each (room for {MEM_FLAG} "
                     f"{share:.2f} each; alone: {alone:.3f}; "
                     f"GPU {used[0].index}: {used[0].free_bytes / GIB:.1f} of {used[0].total_bytes / GIB:.1f} "
                     f"GiB free)", share)


def paired_fraction(alone: float) -> float:
    """Each co-resident server's --mem-fraction-static: together they take what one took `alone`."""
    return math.floor((1.0 - math.sqrt(max(0.0, 1.0 - alone))) * 100.0 + 1e-9) / 100.0


def combine(fits: Sequence[Fit]) -> Fit:
    """One design for the whole gate: paired only when every scenario fits, with the smallest share."""
    if not fits:
        return Fit(True, "no scenario")
    refused = [f for f in fits if not f.paired]
    if refused:
        return refused[0]
    shares = [f.mem_fraction_static for f in fits if f.mem_fraction_static is not None]
    return replace(fits[0], mem_fraction_static=min(shares)) if shares else fits[0]


def uses_gpu(target: str, cmd: Sequence[str]) -> bool:
    """sglang always; the reference engine only with --device cuda."""
    if target == "sglang":
        return True
    return any(a == "--device=cuda" or (a == "--device" and b == "cuda") for a, b in zip(cmd, [*cmd[1:], ""], strict=True))


def alone_fraction(scenario: Scenario, cmds: Sequence[Sequence[str]], total_bytes: int) -> float:
    """--mem-fraction-static from the commands or the scenario, else sglang's default for this GPU size."""
    for cmd in cmds:
        for i, arg in enumerate(cmd):
            if arg == MEM_FLAG and i + 1 < len(cmd):
                return float(cmd[i + 1])
            if arg.startswith(MEM_FLAG + "="):
                return float(arg.split("=", 1)[1])
    given = dict(scenario.server_args).get("mem_fraction_static")
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        return float(given)
    from harness.check.oracle_check import oracle_input
    from reference_impl.inputs import GpuSpec
    from reference_impl.resolve import resolve

    resolved = resolve(replace(oracle_input(scenario), gpu=GpuSpec(memory_bytes=total_bytes)))
    return float(resolved.mem_fraction_static or 0.88)


def probe_devices() -> tuple[DeviceMemory, ...]:
    """Every visible GPU's total and free memory; () without NVML (no GPU, or pynvml not installed)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:  # any NVMLError means no usable GPU
        return ()
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            devices.append(DeviceMemory(index, int(info.total), int(info.free)))
        return tuple(devices)
    except Exception:
        return ()
    finally:
        pynvml.nvmlShutdown()
