"""What a scenario needs from the machine, what the machine has, and whether one satisfies the other."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hardware:
    """A scenario's needs on one target: GPU count, minimum memory per GPU, accepted archs (sm90...)."""

    gpus: int = 0
    min_gpu_memory_gib: float = 0.0
    arch: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gpu:
    """One visible GPU as pynvml reports it."""

    index: int
    name: str
    memory_gib: float
    arch: str


@dataclass(frozen=True)
class HostHardware:
    """The machine the harness runs on: CPU always, GPUs when pynvml can see them."""

    cpu_model: str
    cpu_count: int
    gpus: tuple[Gpu, ...] = ()
    gpu_probe_error: str | None = None
    driver_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu": {"model": self.cpu_model, "count": self.cpu_count},
            "gpus": [asdict(gpu) for gpu in self.gpus],
            "gpu_probe_error": self.gpu_probe_error,
            "driver_version": self.driver_version,
        }


@dataclass(frozen=True)
class _NvmlProbe:
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    error: str | None = None
    driver_version: str | None = None


def detect_host() -> HostHardware:
    """Probe CPU and GPUs once; a missing pynvml or driver means no GPUs, with the reason kept."""
    probe = _probe_nvml()
    return HostHardware(
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        gpus=probe.gpus,
        gpu_probe_error=probe.error,
        driver_version=probe.driver_version,
    )


def unmet_reason(needs: Hardware, host: HostHardware) -> str | None:
    """Why `host` cannot run a scenario needing `needs`, or None when it can."""
    if needs.gpus == 0:
        return None
    fitting = [gpu for gpu in host.gpus if _gpu_fits(gpu, needs)]
    if len(fitting) >= needs.gpus:
        return None
    want = f"{needs.gpus} GPU(s)"
    if needs.min_gpu_memory_gib:
        want += f" with >= {needs.min_gpu_memory_gib:g} GiB"
    if needs.arch:
        want += f" of arch {'/'.join(needs.arch)}"
    if not host.gpus:
        seen = "no GPU visible" + (f" ({host.gpu_probe_error})" if host.gpu_probe_error else "")
    else:
        seen = f"{len(fitting)} of {len(host.gpus)} visible GPU(s) fit: " + ", ".join(
            f"{g.name} {g.memory_gib:.0f} GiB {g.arch}" for g in host.gpus
        )
    return f"needs {want}; {seen}"


def _gpu_fits(gpu: Gpu, needs: Hardware) -> bool:
    if gpu.memory_gib + 0.5 < needs.min_gpu_memory_gib:  # 80 GB cards report ~79.6 GiB
        return False
    return not needs.arch or gpu.arch in needs.arch


def _probe_nvml() -> _NvmlProbe:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return _NvmlProbe(error="pynvml not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError has many subclasses; any of them means "no usable GPU"
        return _NvmlProbe(error=f"nvmlInit failed: {exc}")
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append(
                Gpu(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_gib=round(memory / 2**30, 2),
                    arch=f"sm{major}{minor}",
                )
            )
        driver = pynvml.nvmlSystemGetDriverVersion()
        return _NvmlProbe(
            gpus=tuple(gpus), driver_version=driver.decode() if isinstance(driver, bytes) else str(driver)
        )
    except Exception as exc:
        return _NvmlProbe(error=f"nvml query failed: {exc}")
    finally:
        pynvml.nvmlShutdown()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
