"""GPU noise telemetry: SM/memory clocks, power, temperature and throttle reasons sampled (NVML) during a run.

A sampler thread reads every GPU the server uses every `interval_s` through the warm-up (samples tagged
`warmup`) and the measured requests (`measure`), on the client's clock (time.perf_counter_ns, the clock
of RequestSample.send_ns), so each sample lines up with the requests beside it (`requests` holds their
windows on the same clock). Without pynvml or a driver it records why and the run goes on.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from harness.errors import HarnessError

DEFAULT_INTERVAL_S = 0.1
PHASES = ("warmup", "measure")
FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c")
# nvml.h's clocks-event (formerly "throttle") reason bits; the names are nvmlClocksEventReason* in snake case.
REASON_BITS = (
    (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"), (0x8, "hw_slowdown"),
    (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"), (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"), (0x100, "display_clock_setting"), (0x200, "board_limit"),
    (0x400, "reliability"),
)
# At BS=1 the GPU idles between decode steps: idle is not a clock held down.
NOT_THROTTLE = frozenset({"gpu_idle"})
# NVML's constants (nvml.h), so a test double need not define them.
_CLOCK_SM, _CLOCK_MEM, _TEMPERATURE_GPU = 1, 2, 0


class NvmlUnavailable(HarnessError, RuntimeError):
    """pynvml is not installed, or NVML cannot start or sees no GPU."""


def import_pynvml() -> ModuleType:
    """The real pynvml module (nvidia-ml-py, the `gpu` extra); NvmlUnavailable without it."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise NvmlUnavailable("pynvml (nvidia-ml-py, the harness's `gpu` extra) is not installed") from None
    return pynvml


def decode_reasons(mask: int) -> tuple[str, ...]:
    """NVML's reason bitmask as names; an unknown bit is kept as `bit_0x...`."""
    names = [name for bit, name in REASON_BITS if mask & bit]
    known = 0
    for bit, _ in REASON_BITS:
        known |= bit
    rest = mask & ~known
    names += [f"bit_{1 << k:#x}" for k in range(rest.bit_length()) if rest >> k & 1]
    return tuple(names)


@dataclass(frozen=True)
class Device:
    """One sampled GPU: NVML index, handle, name and UUID."""

    index: int
    handle: Any
    name: str | None
    uuid: str | None


@dataclass
class GpuSeries:
    """One GPU's samples, column by column (appended by the sampler thread only)."""

    device: Device
    t_ms: list[float] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=lambda: {f: [] for f in FIELDS})
    reasons: list[list[str] | None] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"gpu": self.device.index, "name": self.device.name, "uuid": self.device.uuid,
                "t_ms": self.t_ms, "phase": self.phase, **self.values, "reasons": self.reasons}


@dataclass(frozen=True)
class RequestWindow:
    """When one request ran, in ms on the telemetry's clock (end None when it failed before [DONE])."""

    phase: str
    index: int
    start_ms: float
    end_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "index": self.index, "start_ms": self.start_ms, "end_ms": self.end_ms}


class TelemetrySampler:
    """Samples the server's GPUs in a thread between start() and stop(); to_json() is result.json's `telemetry`."""

    def __init__(self, interval_s: float, server_pids: Callable[[], Iterable[int]],
                 visible_devices: str | None = None,
                 load_nvml: Callable[[], ModuleType] = import_pynvml,
                 clock_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self.interval_s = interval_s
        self._server_pids = server_pids
        self._visible = visible_devices
        self._load_nvml = load_nvml
        self._clock_ns = clock_ns
        self._nvml: ModuleType | None = None
        self._reason: str | None = "not started"
        self._selection = ""
        self._series: list[GpuSeries] = []
        self._requests: list[RequestWindow] = []
        self._errors: dict[str, str] = {}
        self._phase = PHASES[0]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.origin_ns = 0
        self._origin_unix_s = 0.0

    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Open NVML and start sampling; any NVML problem is recorded (never raised)."""
        self.origin_ns = self._clock_ns()
        self._origin_unix_s = time.time()
        if self.interval_s <= 0:
            self._reason = "disabled (--telemetry-interval 0)"
            return
        try:
            nvml = self._load_nvml()
        except NvmlUnavailable as exc:
            self._reason = str(exc)
            return
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self._reason = f"NVML unavailable: {exc}"
            return
        try:
            devices, self._selection = self._select(nvml)
        except (nvml.NVMLError, NvmlUnavailable) as exc:
            self._reason = f"NVML device query failed: {exc}"
            nvml.nvmlShutdown()
            return
        self._nvml, self._reason = nvml, None
        self._series = [GpuSeries(d) for d in devices]
        self._thread = threading.Thread(target=self._run, name="harness-telemetry", daemon=True)
        self._thread.start()

    def set_phase(self, phase: str) -> None:
        """Tag the following samples (and requests) with `phase` (warmup or measure)."""
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r}: expected one of {PHASES}")
        self._phase = phase

    def note_requests(self, phase: str, windows: Iterable[tuple[int, int, float | None]]) -> None:
        """Record request windows as (index, send perf_counter_ns, e2e ms or None)."""
        for index, send_ns, e2e_ms in windows:
            start = (send_ns - self.origin_ns) / 1e6
            self._requests.append(RequestWindow(phase, index, start, None if e2e_ms is None else start + e2e_ms))

    def stop(self) -> None:
        """Stop the thread and close NVML (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                self._errors.setdefault("shutdown", str(exc))
            self._nvml = None

    def to_json(self) -> dict[str, Any]:
        """result.json's `telemetry`: either {available: false, reason} or the series and their summary."""
        if self._reason is not None:
            return {"available": False, "reason": self._reason, "interval_s": self.interval_s}
        return {
            "available": True,
            "interval_s": self.interval_s,
            "clock": "perf_counter",
            "origin_unix_s": self._origin_unix_s,
            "selection": self._selection,
            "gpus": [s.to_json() for s in self._series],
            "requests": [r.to_json() for r in self._requests],
            "errors": [f"{key}: {message}" for key, message in sorted(self._errors.items())],
            "summary": summarize(self._series),
        }

    # ---- inside the sampler thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            self._sample_once()
            if self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started))):
                return

    def _sample_once(self) -> None:
        nvml = self._nvml
        assert nvml is not None
        for series in self._series:
            handle = series.device.handle
            series.t_ms.append((self._clock_ns() - self.origin_ns) / 1e6)
            series.phase.append(self._phase)
            reads: tuple[tuple[str, Callable[[], float]], ...] = (
                ("sm_clock_mhz", lambda h=handle: nvml.nvmlDeviceGetClockInfo(h, _CLOCK_SM)),
                ("mem_clock_mhz", lambda h=handle: nvml.nvmlDeviceGetClockInfo(h, _CLOCK_MEM)),
                ("power_w", lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),  # NVML: milliwatts
                ("temperature_c", lambda h=handle: nvml.nvmlDeviceGetTemperature(h, _TEMPERATURE_GPU)),
            )
            for name, read in reads:
                series.values[name].append(self._read(series.device, name, read))
            mask = self._read(series.device, "reasons", lambda h=handle: _reason_mask(nvml, h))
            series.reasons.append(None if mask is None else list(decode_reasons(int(mask))))

    def _read(self, device: Device, name: str, read: Callable[[], float]) -> float | None:
        # One field a GPU does not support (power on some boards) must not cost the others.
        assert self._nvml is not None
        try:
            return float(read())
        except self._nvml.NVMLError as exc:
            self._errors.setdefault(f"gpu {device.index} {name}", str(exc))
            return None

    # ---- which GPUs ---------------------------------------------------------------------------

    def _select(self, nvml: ModuleType) -> tuple[list[Device], str]:
        count = int(nvml.nvmlDeviceGetCount())
        if count == 0:
            raise NvmlUnavailable("NVML sees no GPU")
        devices = [_device(nvml, i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        pids = set(self._server_pids())
        used = [d for d in devices if pids & _pids_on(nvml, d.handle)]
        if used:
            return used, "GPUs holding a server process"
        visible = _visible(devices, self._visible)
        if visible:
            return visible, f"CUDA_VISIBLE_DEVICES={self._visible} (no server process seen on a GPU)"
        return devices, "all GPUs (no server process seen on a GPU)"


def _reason_mask(nvml: ModuleType, handle: Any) -> int:
    # nvidia-ml-py 12.535+ calls them clock events; older releases only have the throttle name.
    read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) \
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(read(handle))


def _device(nvml: ModuleType, index: int, handle: Any) -> Device:
    name = uuid = None
    try:
        name = _text(nvml.nvmlDeviceGetName(handle))
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    except nvml.NVMLError:
        pass
    return Device(index, handle, name, uuid)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pids_on(nvml: ModuleType, handle: Any) -> set[int]:
    pids: set[int] = set()
    for query in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
        try:
            pids |= {int(p.pid) for p in query(handle)}
        except nvml.NVMLError:
            continue
    return pids


def _visible(devices: Sequence[Device], spec: str | None) -> list[Device]:
    # CUDA_VISIBLE_DEVICES as indices or GPU UUIDs (ordinals assume CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's order).
    if not spec:
        return []
    chosen = []
    for item in (part.strip() for part in spec.split(",")):
        match = [d for d in devices if (item.isdigit() and d.index == int(item))
                 or (d.uuid is not None and item.startswith("GPU-") and d.uuid.startswith(item))]
        chosen += [d for d in match if d not in chosen]
    return chosen


def summarize(series: Sequence[GpuSeries]) -> dict[str, Any]:
    """min/median/max per field, throttled share and reasons seen, over the measured samples of all GPUs.

    Falls back to every sample when none was taken while measuring (a run that failed in warm-up).
    """
    phase = "measure" if any("measure" in s.phase for s in series) else "all"
    keep = [[phase == "all" or p == "measure" for p in s.phase] for s in series]
    summary: dict[str, Any] = {"phase": phase, "samples": sum(sum(k) for k in keep),
                               "gpus": [s.device.index for s in series]}
    for name in FIELDS:
        values = [v for s, k in zip(series, keep, strict=True)
                  for v, kept in zip(s.values[name], k, strict=True) if kept and v is not None]
        summary[name] = ({"min": min(values), "median": statistics.median(values), "max": max(values)}
                         if values else {"min": None, "median": None, "max": None})
    reasons = [r for s, k in zip(series, keep, strict=True) for r, kept in zip(s.reasons, k, strict=True)
               if kept and r is not None]
    seen: dict[str, int] = {}
    for names in reasons:
        for name in names:
            seen[name] = seen.get(name, 0) + 1
    throttled = sum(1 for names in reasons if set(names) - NOT_THROTTLE)
    summary["throttled_share"] = throttled / len(reasons) if reasons else None
    summary["reasons_seen"] = dict(sorted(seen.items()))
    return summary
