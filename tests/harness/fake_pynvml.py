"""A pynvml test double: nvidia-ml-py needs a driver and a GPU, neither exists on this machine."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any


class FakeNVMLError(Exception):
    pass


class FakePynvml:
    """Stands in for pynvml (nvidia-ml-py needs a driver and a GPU, neither exists on this machine).

    GPU i reports SM clock sm[i][k] on its k-th sample (the last value repeats), memory clock 2619 MHz,
    power 300.5 W, temperature 40 + i C, and the reason mask reasons[i][k].
    """

    NVMLError = FakeNVMLError

    def __init__(self, sm: list[list[int]], reasons: list[list[int]], procs: dict[int, list[int]] | None = None,
                 init_error: str | None = None, no_power: bool = False, old_api: bool = False) -> None:
        self.sm, self.reason_masks, self.procs = sm, reasons, procs or {}
        self.init_error, self.no_power = init_error, no_power
        self.inits = self.shutdowns = 0
        self.samples = [0] * len(sm)
        self.sampled = threading.Event()
        if old_api:  # nvidia-ml-py before 12.535 has only the throttle name
            self.nvmlDeviceGetCurrentClocksThrottleReasons = self._reasons
        else:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._reasons

    def nvmlInit(self) -> None:
        if self.init_error:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.sm)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"NVIDIA H200"

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-0000000{handle}-aaaa"

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return [SimpleNamespace(pid=p, usedGpuMemory=1) for p in self.procs.get(handle, [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: int) -> list[Any]:
        raise FakeNVMLError("Not Supported")

    def nvmlDeviceGetClockInfo(self, handle: int, kind: int) -> int:
        if kind == 1:  # NVML_CLOCK_SM: the first read of a sample
            series = self.sm[handle]
            return series[min(self.samples[handle], len(series) - 1)]
        return 2619

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if self.no_power:
            raise FakeNVMLError("Not Supported")
        return 300500

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 40 + handle

    def _reasons(self, handle: int) -> int:
        # The last read of a sample: count it, and tell the test when every GPU has one more.
        series = self.reason_masks[handle]
        mask = series[min(self.samples[handle], len(series) - 1)]
        self.samples[handle] += 1
        self.sampled.set()
        return mask
