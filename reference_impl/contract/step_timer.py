"""Per decode step: the forward's device time and the host rest of the step, as decode_step records (stdlib only).

A step's wall time runs from its start to the start of the next forward, and counts only when that
forward is a decode step of the same requests (otherwise wall_ms and host_ms are null); host_ms =
wall_ms - device_ms. On CUDA two events bracket the forward (forward_ms) and, when the step replays a
CUDA graph, two more bracket the replay alone: device_ms is then the graph's time (region
"graph_replay"), which leaves out the host's input staging and launch work that a BS=1 step waits on
(measured on an H200: events around the whole forward followed TPOT with correlation 1.00); otherwise
device_ms is the forward's (region "forward"). Events are read once the device has passed them
(Event.query, so the step never waits on the device); without a device the forward's own wall
time stands in (clock "host"). A step is written once both its device time and its successor are
known. Records are encoded by hand and written in batches (at most WRITE_EVERY steps or MAX_AGE_S
old, and at every other forward and flush) to keep the per-step cost small.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .delay_switch import Delay
from .records import SCHEMA_VERSION

ENV_STEP_TIMING = "HARNESS_STEP_TIMING"
CLOCK_CUDA = "cuda_event"
CLOCK_HOST = "host"
WRITE_EVERY = 16
MAX_AGE_S = 0.05


def step_timing_enabled(environ: Any = os.environ) -> bool:
    """On unless HARNESS_STEP_TIMING is 0/off/false/no."""
    return str(environ.get(ENV_STEP_TIMING, "1")).strip().lower() not in ("0", "off", "false", "no")


class Step:
    """One decode step in flight: who is in it, when it started, and its device time once known."""

    __slots__ = ("batch_size", "closed", "delay", "device_ms", "ended", "events", "forward_ms", "forward_start",
                 "graph_events", "rids", "start", "ts", "wall_ms")

    def __init__(self, rids: tuple[str, ...], batch_size: int, start: float, delay: Delay | None) -> None:
        self.rids, self.batch_size, self.start, self.delay = rids, batch_size, start, delay
        self.ts = time.time()
        self.forward_start = start
        self.events: tuple[Any, Any] | None = None
        self.graph_events: tuple[Any, Any] | None = None
        self.ended = False
        self.device_ms: float | None = None
        self.forward_ms: float | None = None
        self.wall_ms: float | None = None
        self.closed = False


class StepTimer:
    """Times the decode steps of one process.

    `sink(lines)` appends encoded records (RecordWriter.write_lines), `cuda` is torch.cuda or None,
    `rank()` the rank the records carry.
    """

    def __init__(self, sink: Callable[[list[str]], None], cuda: Any | None = None,
                 rank: Callable[[], int] = lambda: 0) -> None:
        self._sink, self._cuda, self._rank = sink, cuda, rank
        self.clock = CLOCK_CUDA if cuda is not None else CLOCK_HOST
        self._pending: deque[Step] = deque()
        self._last: Step | None = None
        self._free_events: list[Any] = []
        self._done: list[Step] = []  # timed steps not written yet
        self._done_since = 0.0

    def begin(self, rids: Sequence[str], batch_size: int, delay: Delay | None = None) -> Step:
        """A decode step's forward starts now (call right before its first device work)."""
        now = time.perf_counter()
        key = tuple(rids)
        self._close(now, key)
        self._drain(now, wait=False)
        step = Step(key, batch_size, now, delay)
        self._pending.append(step)
        self._last = step
        if self._cuda is not None:
            step.events = (self._event(), self._event())
            step.events[0].record()
        else:
            step.forward_start = time.perf_counter()
        return step

    def graph_begin(self, step: Step) -> None:
        """A CUDA graph replay inside the step starts (the first one opens the step's graph region)."""
        if step.events is not None and step.graph_events is None:
            step.graph_events = (self._event(), self._event())
            step.graph_events[0].record()

    def graph_end(self, step: Step) -> None:
        """A graph replay was enqueued; the region ends after the step's last replay."""
        if step.graph_events is not None:
            step.graph_events[1].record()

    def end(self, step: Step) -> None:
        """The step's forward has been enqueued (CUDA) or has run (no device)."""
        if step.events is not None:
            step.events[1].record()
        else:
            step.device_ms = step.forward_ms = (time.perf_counter() - step.forward_start) * 1e3
        step.ended = True

    def other(self) -> None:
        """A forward that is not a timed decode step starts: the last step's wall time stays unknown."""
        self._close(None, ())
        self._drain(time.perf_counter(), wait=False)
        self._write_out()

    def flush(self, wait: bool = False) -> None:
        """Write every finished step (`wait`: wait for the device first; only where the host is idle anyway)."""
        self._close(None, ())
        self._drain(time.perf_counter(), wait)
        self._write_out()

    def _close(self, now: float | None, rids: tuple[str, ...]) -> None:
        last = self._last
        if last is None or last.closed:
            return
        last.closed = True
        if now is not None and rids == last.rids:
            last.wall_ms = (now - last.start) * 1e3

    def _drain(self, now: float, wait: bool) -> None:
        pending = self._pending
        while pending:
            step = pending[0]
            if not step.closed:
                break
            if step.ended and step.events is not None and step.device_ms is None:
                start, end = step.events
                if wait:
                    end.synchronize()
                elif not end.query():
                    break  # still on the device; read it at a later step
                step.forward_ms = step.device_ms = start.elapsed_time(end)
                self._free_events += step.events
                if step.graph_events is not None:  # recorded before `end`, so already passed
                    step.device_ms = step.graph_events[0].elapsed_time(step.graph_events[1])
                    self._free_events += step.graph_events
            pending.popleft()
            if step.ended:  # a forward that raised has no time to report
                if not self._done:
                    self._done_since = now
                self._done.append(step)
        if len(self._done) >= WRITE_EVERY or (self._done and now - self._done_since > MAX_AGE_S):
            self._write_out()

    def _write_out(self) -> None:
        if not self._done:
            return
        steps, self._done = self._done, []
        head = (f'{{"schema":{SCHEMA_VERSION},"kind":"decode_step","pid":{os.getpid()},"rank":{int(self._rank())},'
                f'"t":{time.time()!r},')
        clock = json.dumps(self.clock)
        rids_json: dict[tuple[str, ...], str] = {}
        lines = []
        for step in steps:
            rids = rids_json.get(step.rids)
            if rids is None:
                rids = rids_json[step.rids] = json.dumps(list(step.rids))
            device, wall, delay = step.device_ms, step.wall_ms, step.delay
            host = wall - device if wall is not None and device is not None else None
            region = '"graph_replay"' if step.graph_events is not None else '"forward"'
            lines.append(f'{head}"rids":{rids},"batch_size":{int(step.batch_size)},"device_ms":{_num(device)},'
                         f'"forward_ms":{_num(step.forward_ms)},"region":{region},'
                         f'"host_ms":{_num(host)},"wall_ms":{_num(wall)},"clock":{clock},"ts":{step.ts!r},'
                         f'"inject_kind":{json.dumps(delay.kind) if delay else "null"},'
                         f'"inject_us":{int(delay.us) if delay else 0}}}')
        self._sink(lines)

    def _event(self) -> Any:
        if self._free_events:
            return self._free_events.pop()
        assert self._cuda is not None
        return self._cuda.Event(enable_timing=True)


def _num(value: float | None) -> str:
    """A JSON number rounded to the nanosecond (times here are finite), or null."""
    return "null" if value is None else repr(round(float(value), 6))
