"""GPU-memory leak check after a server group is killed: any of its pids still on a GPU (pynvml)?

A process that survives its group's SIGKILL (stuck in the driver, or escaped the group) keeps its
GPU memory, and every later scenario on that GPU measures or OOMs against it: an infrastructure
failure, not an outcome of the scenario. Without pynvml or a driver the check is skipped, with
the reason recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

# The driver frees a killed process's memory asynchronously; look again for this long before
# calling it a leak.
DEFAULT_SETTLE_S = 5.0
_POLL_S = 0.25


class NvmlUnavailable(HarnessError, RuntimeError):
    """pynvml is not installed, or NVML cannot start (no driver, no GPU)."""


@dataclass(frozen=True)
class GpuProcess:
    """One process NVML reports on a GPU."""

    pid: int
    gpu_index: int
    used_bytes: int | None


@dataclass(frozen=True)
class LeakCheck:
    """Result of the check: skipped (with why), or the server's processes still holding GPU memory."""

    checked: bool
    skip_reason: str | None = None
    leaked: tuple[GpuProcess, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "skip_reason": self.skip_reason,
                "leaked": [{"pid": p.pid, "gpu": p.gpu_index, "used_bytes": p.used_bytes} for p in self.leaked]}

    def failure(self) -> dict[str, str] | None:
        """The result's `failure` entry when memory leaked, else None."""
        if not self.leaked:
            return None
        held = ", ".join(f"pid {p.pid} on GPU {p.gpu_index}" + (f" ({p.used_bytes / 2**20:.0f} MiB)"
                                                               if p.used_bytes is not None else "")
                         for p in self.leaked)
        return {"stage": "shutdown", "kind": "gpu_memory_leak",
                "message": f"infrastructure failure: server processes still hold GPU memory after SIGKILL: {held}"}


def nvml_processes() -> list[GpuProcess]:
    """Every compute and graphics process on every GPU; raises NvmlUnavailable without NVML."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise NvmlUnavailable("pynvml (nvidia-ml-py) is not installed") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML unavailable: {exc}") from None
    try:
        found = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for query in (pynvml.nvmlDeviceGetComputeRunningProcesses, pynvml.nvmlDeviceGetGraphicsRunningProcesses):
                for info in query(handle):
                    used = info.usedGpuMemory
                    found.append(GpuProcess(int(info.pid), index, int(used) if isinstance(used, int) else None))
        return found
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML query failed: {exc}") from None
    finally:
        pynvml.nvmlShutdown()


def check_leaks(
    pids: Iterable[int],
    list_processes: Callable[[], list[GpuProcess]] = nvml_processes,
    settle_s: float = DEFAULT_SETTLE_S,
) -> LeakCheck:
    """Which of `pids` (a killed server's processes) NVML still shows on a GPU after `settle_s`."""
    wanted = set(pids)
    deadline = time.monotonic() + settle_s
    while True:
        try:
            leaked = tuple(p for p in list_processes() if p.pid in wanted)
        except NvmlUnavailable as exc:
            return LeakCheck(checked=False, skip_reason=str(exc))
        if not leaked or time.monotonic() >= deadline:
            return LeakCheck(checked=True, leaked=leaked)
        time.sleep(_POLL_S)
