"""Per decode step: the forward's device time and the host rest of the step, as decode_step records (stdlib only).

A step's wall time runs from its start to the start of the next forward, and counts only when that
forward is a decode step of the same requests (otherwise wall_ms and host_ms are null); host_ms =
wall_ms - device_ms. On CUDA two events bracket the forward and are read once the device has passed
them (Event.query, so the step never waits on the device); without a device the forward's own wall
time stands in (clock "host"). A step is written once both its device time and its successor are known.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .delay_switch import Delay

ENV_STEP_TIMING = "HARNESS_STEP_TIMING"
CLOCK_CUDA = "cuda_event"
CLOCK_HOST = "host"


def step_timing_enabled(environ: Any = os.environ) -> bool:
    """On unless HARNESS_STEP_TIMING is 0/off/false/no."""
    return str(environ.get(ENV_STEP_TIMING, "1")).strip().lower() not in ("0", "off", "false", "no")


class Step:
    """One decode step in flight: who is in it, when it started, and its device time once known."""

    __slots__ = ("batch_size", "closed", "delay", "device_ms", "ended", "events", "forward_start", "rids",
                 "start", "ts", "wall_ms")

    def __init__(self, rids: tuple[str, ...], batch_size: int, start: float, delay: Delay | None) -> None:
        self.rids, self.batch_size, self.start, self.delay = rids, batch_size, start, delay
        self.ts = time.time()
        self.forward_start = start
        self.events: tuple[Any, Any] | None = None
        self.ended = False
        self.device_ms: float | None = None
        self.wall_ms: float | None = None
        self.closed = False


class StepTimer:
    """Times decode steps of one process; `write(kind, **fields)` is the records writer, `cuda` torch.cuda or None."""

    def __init__(self, write: Callable[..., None], cuda: Any | None = None) -> None:
        self._write = write
        self._cuda = cuda
        self.clock = CLOCK_CUDA if cuda is not None else CLOCK_HOST
        self._pending: deque[Step] = deque()
        self._last: Step | None = None
        self._free_events: list[Any] = []

    def begin(self, rids: Sequence[str], batch_size: int, delay: Delay | None = None) -> Step:
        """A decode step's forward starts now (call right before its first device work)."""
        now = time.perf_counter()
        key = tuple(rids)
        self._close(now, key)
        self._drain(wait=False)
        step = Step(key, batch_size, now, delay)
        self._pending.append(step)
        self._last = step
        if self._cuda is not None:
            step.events = (self._event(), self._event())
            step.events[0].record()
        else:
            step.forward_start = time.perf_counter()
        return step

    def end(self, step: Step) -> None:
        """The step's forward has been enqueued (CUDA) or has run (no device)."""
        if step.events is not None:
            step.events[1].record()
        else:
            step.device_ms = (time.perf_counter() - step.forward_start) * 1e3
        step.ended = True

    def other(self) -> None:
        """A forward that is not a timed decode step starts: the last step's wall time stays unknown."""
        self._close(None, ())
        self._drain(wait=False)

    def flush(self, wait: bool = False) -> None:
        """Write every finished step (`wait`: wait for the device first; only where the host is idle anyway)."""
        self._close(None, ())
        self._drain(wait)

    def _close(self, now: float | None, rids: tuple[str, ...]) -> None:
        last = self._last
        if last is None or last.closed:
            return
        last.closed = True
        if now is not None and rids == last.rids:
            last.wall_ms = (now - last.start) * 1e3

    def _drain(self, wait: bool) -> None:
        pending = self._pending
        while pending:
            step = pending[0]
            if not step.closed:
                return
            if step.ended and step.events is not None and step.device_ms is None:
                start, end = step.events
                if wait:
                    end.synchronize()
                elif not end.query():
                    return  # still on the device; read it at a later step
                step.device_ms = start.elapsed_time(end)
                self._free_events += step.events
            pending.popleft()
            if step.ended:  # a forward that raised has no time to report
                self._emit(step)

    def _emit(self, step: Step) -> None:
        device, wall = step.device_ms, step.wall_ms
        delay = step.delay
        self._write("decode_step", rids=list(step.rids), batch_size=step.batch_size,
                    device_ms=round(device, 6) if device is not None else None,
                    host_ms=round(wall - device, 6) if wall is not None and device is not None else None,
                    wall_ms=round(wall, 6) if wall is not None else None, clock=self.clock, ts=step.ts,
                    inject_kind=delay.kind if delay else None, inject_us=delay.us if delay else 0)

    def _event(self) -> Any:
        if self._free_events:
            return self._free_events.pop()
        assert self._cuda is not None
        return self._cuda.Event(enable_timing=True)
