"""Reads a server log: CUDA graph capture progress and memory, and why a startup failed.

The shapes are sglang 0.5.16's (the reference engine prints the same ones when it emulates them):
  Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, bs=[1, 2, 4], avail mem=54.36 GB
  Capturing batches (bs=4 avail_mem=54.33 GB)          (tqdm, rank 0; `Capturing num tokens (num_tokens=N ...)` for prefill)
  Capture target decode CUDA graph end. elapsed=5.98 s, mem usage=0.04 GB, avail mem=54.32 GB.
  torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 234.00 MiB. GPU 0 has a total capacity
      of 79.19 GiB of which 5.38 MiB is free. ...
  Scheduler hit an exception: Traceback (most recent call last): ...
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.store.result import OOM_AT_CAPTURE

FATAL_MARKER = "Scheduler hit an exception"

_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 10**3, "MB": 10**6,
          "GB": 10**9, "TB": 10**12}
_CAPTURE_BEGIN = re.compile(
    r"Capture (?P<name>\w+ \w+) (?:CUDA|CPU|NPU|XPU) graph(?: \([^)]*\))? begin\..*?"
    r"(?:bs=\[(?P<bs>[\d, ]*)\]|num_tokens=\[(?P<num_tokens>[\d, ]*)\])"
)
_CAPTURE_END = re.compile(
    r"Capture (?P<name>\w+ \w+) (?:CUDA|CPU|NPU|XPU) graph(?: \([^)]*\))? end\. elapsed=(?P<elapsed>[\d.]+) s, "
    r"mem usage=(?P<usage>[\d.]+) GB, avail mem=(?P<avail>[\d.]+) GB"
)
_CAPTURING = re.compile(r"Capturing (?:batches \(bs=(?P<bs>\d+)|num tokens \(num_tokens=(?P<num_tokens>\d+))")
_OOM = re.compile(r"(OutOfMemoryError|CUDA out of memory|out of memory)", re.IGNORECASE)
_OOM_MESSAGE = re.compile(r"(?:Error|Exception): |out of memory", re.IGNORECASE)
_TRIED = re.compile(r"Tried to allocate (?P<n>[\d.]+) (?P<unit>[KMGT]?i?B)")
_FREE = re.compile(r"of which (?P<n>[\d.]+) (?P<unit>[KMGT]?i?B) is free")
# Frames and messages that place an OOM inside CUDA graph setup/capture rather than the KV pool.
_CAPTURE_FRAMES = (
    "capture_cuda_graphs", "init_cuda_graphs", "init_all_cuda_graphs", "cuda_graph_runner",
    "CudaGraphRunner", "capture_decode_graph", "capture_prefill_graph", "Capture cuda graph failed",
    "cuda_graph_buffer_registry", "Capturing batches", "Capturing num tokens",
)
# Startup milestones (sglang 0.5.16's lines; the reference engine prints the same), in the order they occur.
_MILESTONES = (
    ("weights loading", re.compile(r"Load weight begin")),
    ("weights loaded", re.compile(r"Load weight end")),
    ("KV pool allocated", re.compile(r"KV Cache is allocated|Memory pool end")),
    ("ready (log)", re.compile(r"The server is fired up and ready to roll")),
)
_ELAPSED = re.compile(r"elapsed=([\d.]+) s")
_EXCEPTION_LINE = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception|Interrupt)\b:?.*$", re.MULTILINE)


@dataclass(frozen=True)
class CapturePhase:
    """One finished graph capture (`target decode`, `target prefill`, ...)."""

    name: str
    elapsed_s: float
    mem_usage_gb: float
    avail_mem_gb: float


@dataclass(frozen=True)
class CaptureInfo:
    """What the log says about CUDA graph capture; batch_size/num_tokens are the last being captured."""

    batch_size: int | None = None
    num_tokens: int | None = None
    capture_bs: tuple[int, ...] = ()
    requested_bytes: int | None = None
    free_bytes: int | None = None
    oom: bool = False
    phases: tuple[CapturePhase, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["capture_bs"] = list(self.capture_bs)
        data["phases"] = [asdict(phase) for phase in self.phases]
        return data


@dataclass(frozen=True)
class Diagnosis:
    """A failed startup's outcome (one of harness.store.result.STARTUP_OUTCOMES) and a one-line reason."""

    outcome: str
    message: str


def parse_capture(log: str) -> CaptureInfo:
    """Capture phases, the batch being captured when the log ends or an OOM hit, and OOM sizes."""
    lines = re.split(r"[\r\n]+", log)
    batch_size = num_tokens = None
    capture_bs: tuple[int, ...] = ()
    phases = []
    oom_index = _oom_line_index(lines)
    for index, line in enumerate(lines):
        if oom_index is not None and index > oom_index:
            break
        if begin := _CAPTURE_BEGIN.search(line):
            numbers = begin.group("bs") or begin.group("num_tokens") or ""
            capture_bs = tuple(int(n) for n in re.findall(r"\d+", numbers))
            batch_size = num_tokens = None
        elif progress := _CAPTURING.search(line):
            if progress.group("bs"):
                batch_size = int(progress.group("bs"))
            else:
                num_tokens = int(progress.group("num_tokens"))
        elif end := _CAPTURE_END.search(line):
            phases.append(
                CapturePhase(
                    name=end.group("name"),
                    elapsed_s=float(end.group("elapsed")),
                    mem_usage_gb=float(end.group("usage")),
                    avail_mem_gb=float(end.group("avail")),
                )
            )
    oom_text = lines[oom_index] if oom_index is not None else ""
    if oom_index is not None and batch_size is None and num_tokens is None and capture_bs:
        batch_size = max(capture_bs)  # OOM while registering buffers, which are sized for the largest bs
    return CaptureInfo(
        batch_size=batch_size,
        num_tokens=num_tokens,
        capture_bs=capture_bs,
        requested_bytes=_size(_TRIED.search(oom_text)),
        free_bytes=_size(_FREE.search(oom_text)),
        oom=oom_index is not None and _is_capture_oom(lines, oom_index),
        phases=tuple(phases),
    )


@dataclass(frozen=True)
class Milestone:
    """A startup line the harness saw appear, at_s after launch (the log is read every poll, ~0.1 s)."""

    name: str
    at_s: float
    elapsed_s: float | None = None  # the line's own `elapsed=` (capture end lines), when it has one


def milestone(line: str, at_s: float) -> Milestone | None:
    """The milestone a log line marks (weights, KV pool, each graph capture begin/end, ready), or None."""
    if begin := _CAPTURE_BEGIN.search(line):
        return Milestone(f"capture {begin.group('name')} begin", at_s)
    if end := _CAPTURE_END.search(line):
        return Milestone(f"capture {end.group('name')} end", at_s, float(end.group("elapsed")))
    for name, pattern in _MILESTONES:
        if pattern.search(line):
            elapsed = _ELAPSED.search(line)
            return Milestone(name, at_s, float(elapsed.group(1)) if elapsed else None)
    return None


def diagnose(log: str, returncode: int | None, timed_out: bool, timeout_s: float) -> Diagnosis:
    """Classify a startup that did not become healthy, from the exit code and the log."""
    capture = parse_capture(log)
    if capture.oom:
        where = f"batch size {capture.batch_size}" if capture.batch_size is not None else (
            f"num_tokens {capture.num_tokens}" if capture.num_tokens is not None else "unknown batch")
        sizes = ""
        if capture.requested_bytes is not None:
            sizes = f": tried to allocate {capture.requested_bytes / 2**20:.2f} MiB"
            if capture.free_bytes is not None:
                sizes += f", {capture.free_bytes / 2**20:.2f} MiB free"
        return Diagnosis(OOM_AT_CAPTURE, f"OOM during CUDA graph capture at {where}{sizes}")
    exception = last_exception_line(log) or last_line(log)
    if returncode is not None or FATAL_MARKER in log:
        how = f"exited with code {returncode}" if returncode is not None else f"logged '{FATAL_MARKER}'"
        return Diagnosis("crash", f"server {how}" + (f": {exception}" if exception else ""))
    if timed_out:
        return Diagnosis("timeout", f"server not healthy within {timeout_s:g} s")
    return Diagnosis("crash", "server stopped answering during startup")


def last_exception_line(log: str) -> str | None:
    """The last `SomethingError: message` line, trimmed, or None."""
    matches = _EXCEPTION_LINE.findall(log)
    return matches[-1].strip()[:300] if matches else None


def last_line(log: str) -> str | None:
    """The last non-empty log line, trimmed (argparse errors and the like have no exception line)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", log) if line.strip()]
    return lines[-1][:300] if lines else None


def _oom_line_index(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        # The message line, not a source line such as `raise torch.OutOfMemoryError(` in the traceback.
        if _OOM.search(line) and ("Tried to allocate" in line or _OOM_MESSAGE.search(line)):
            return index
    return None


def _is_capture_oom(lines: list[str], oom_index: int) -> bool:
    # The traceback that ends in the OOM line starts at the nearest "Traceback" above it (sglang logs
    # the whole chained traceback in one record, so a wrapped OOM keeps the capture frames).
    start = oom_index
    while start > 0 and "Traceback (most recent call last)" not in lines[start]:
        start -= 1
    block = "\n".join(lines[start: oom_index + 3])
    return any(frame in block for frame in _CAPTURE_FRAMES)


def _size(match: re.Match[str] | None) -> int | None:
    if match is None:
        return None
    unit = match.group("unit")
    return int(float(match.group("n")) * _UNITS.get(unit, 1))
