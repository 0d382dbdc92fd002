"""StepTimer: which steps get a wall time, when records are written, and that CUDA events are never waited on.

CUDA events cannot exist on this machine, so the CUDA path runs against an event double whose
completion and elapsed times the test sets; the host-clock path runs for real.
"""

from __future__ import annotations

import json
import os
from typing import Any

from harness.instrument.reader import _validate
from reference_impl.contract.delay_switch import Delay
from reference_impl.contract.step_timer import WRITE_EVERY, StepTimer, step_timing_enabled


class _Event:
    def __init__(self, cuda: _Cuda) -> None:
        self.cuda, self.done, self.recorded = cuda, False, 0

    def record(self) -> None:
        self.recorded += 1
        self.done = False
        self.at = self.cuda.now

    def query(self) -> bool:
        return self.done

    def synchronize(self) -> None:
        self.cuda.syncs += 1
        self.done = True

    def elapsed_time(self, end: _Event) -> float:
        # The end event finished means the start did (one stream); an unfinished one would block.
        assert end.done, "elapsed_time on an unfinished event would block"
        return end.at - self.at


class _Cuda:
    """torch.cuda's Event, with a clock (ms) the test advances."""

    def __init__(self) -> None:
        self.now, self.syncs, self.created = 0.0, 0, 0

    def Event(self, enable_timing: bool = False) -> _Event:
        assert enable_timing
        self.created += 1
        return _Event(self)


def _recorder() -> tuple[list[dict[str, Any]], Any]:
    """A sink that checks each hand-encoded line is a valid decode_step record, and keeps its fields."""
    written: list[dict[str, Any]] = []

    def write_lines(lines: list[str]) -> None:
        for line in lines:
            record = json.loads(line)
            assert _validate(record) is None, (_validate(record), line)
            assert (record["schema"], record["kind"], record["pid"], record["rank"]) == (1, "decode_step",
                                                                                        os.getpid(), 3)
            written.append(record)

    return written, write_lines


def test_cuda_steps_are_read_when_the_device_has_passed_them() -> None:
    cuda = _Cuda()
    written, write = _recorder()
    timer = StepTimer(write, cuda, rank=lambda: 3)
    steps = []
    for index in range(3):
        step = timer.begin(["a"], 1)
        cuda.now += 0.9 + index / 10  # device time of this step: 0.9, 1.0, 1.1 ms
        timer.end(step)
        steps.append(step)
    # Nothing finished on the device yet: nothing written, nothing waited on.
    assert written == [] and cuda.syncs == 0
    for step in steps[:2]:
        for event in step.events:
            event.done = True
    timer.other()  # a prefill starts: step 3 has no successor of the same request
    assert [round(w["device_ms"], 6) for w in written] == [0.9, 1.0]
    assert cuda.syncs == 0
    assert all(w["clock"] == "cuda_event" and w["wall_ms"] is not None for w in written)
    assert all(abs(w["host_ms"] - (w["wall_ms"] - w["device_ms"])) < 1e-5 for w in written)
    timer.flush(wait=True)  # idle: the last step may be waited for
    assert cuda.syncs == 1
    assert round(written[2]["device_ms"], 6) == 1.1
    assert (written[2]["wall_ms"], written[2]["host_ms"]) == (None, None)
    # Events of read steps are reused: two per step in flight, not two per step ever.
    timer.begin(["b"], 1)
    assert cuda.created == 6


def test_host_clock_wall_time_only_between_steps_of_the_same_requests() -> None:
    written, write = _recorder()
    timer = StepTimer(write, rank=lambda: 3)
    for rids in (["a"], ["a"], ["a", "b"], ["b"]):
        timer.end(timer.begin(rids, len(rids), Delay("host", 25) if rids == ["b"] else None))
    timer.flush()
    assert [(w["rids"], w["batch_size"], w["clock"]) for w in written] == [
        (["a"], 1, "host"), (["a"], 1, "host"), (["a", "b"], 2, "host"), (["b"], 1, "host")]
    assert [w["wall_ms"] is None for w in written] == [False, True, True, True]
    assert all(w["device_ms"] >= 0 for w in written)
    assert [(w["inject_kind"], w["inject_us"]) for w in written] == [(None, 0)] * 3 + [("host", 25)]


def test_a_forward_that_raised_is_not_reported() -> None:
    written, write = _recorder()
    timer = StepTimer(write, rank=lambda: 3)
    timer.begin(["a"], 1)  # its forward raised: end() never came
    timer.end(timer.begin(["a"], 1))
    timer.flush()
    assert len(written) == 1


def test_switch_reads_the_environment() -> None:
    assert step_timing_enabled({}) is True
    assert step_timing_enabled({"HARNESS_STEP_TIMING": "1"}) is True
    for off in ("0", "off", "False", " no "):
        assert step_timing_enabled({"HARNESS_STEP_TIMING": off}) is False


def test_records_are_written_in_batches_and_at_the_next_prefill() -> None:
    written, write = _recorder()
    timer = StepTimer(write, rank=lambda: 3)
    for _ in range(WRITE_EVERY + 3):
        timer.end(timer.begin(["a"], 1))
    # The (WRITE_EVERY+1)-th step closed the WRITE_EVERY-th: one batch is out, the rest waits.
    assert len(written) == WRITE_EVERY
    timer.other()  # the next request's prefill closes the last step and writes the rest
    assert len(written) == WRITE_EVERY + 3
    assert [r["wall_ms"] is None for r in written[-3:]] == [False, False, True]


def test_a_graph_replay_inside_the_step_is_its_device_time() -> None:
    # The host stages inputs (0.3 ms), the graph runs 0.5 ms, the host samples (0.2 ms): device_ms is the
    # replay alone, forward_ms the whole forward; a step without a replay keeps the forward's time.
    cuda = _Cuda()
    written, write = _recorder()
    timer = StepTimer(write, cuda, rank=lambda: 3)
    graphed = timer.begin(["a"], 1)
    cuda.now += 0.3
    timer.graph_begin(graphed)
    cuda.now += 0.5
    timer.graph_end(graphed)
    cuda.now += 0.2
    timer.end(graphed)
    eager = timer.begin(["a"], 1)
    cuda.now += 0.7
    timer.end(eager)
    for step in (graphed, eager):
        for event in (*step.events, *(step.graph_events or ())):
            event.done = True
    timer.flush()
    assert [(w["region"], round(w["device_ms"], 6), round(w["forward_ms"], 6)) for w in written] == [
        ("graph_replay", 0.5, 1.0), ("forward", 0.7, 0.7)]
    # The host part of the step is its wall time (host clock) less the replay alone, not less the forward.
    assert abs(written[0]["host_ms"] - (written[0]["wall_ms"] - 0.5)) < 1e-5
    # A second replay in one step (a graph split in pieces) extends the region to its end.
    step = timer.begin(["b"], 1)
    timer.graph_begin(step)
    cuda.now += 0.4
    timer.graph_end(step)
    first_start = step.graph_events[0]
    timer.graph_begin(step)
    cuda.now += 0.4
    timer.graph_end(step)
    timer.end(step)
    assert step.graph_events[0] is first_start and step.graph_events[1].at - first_start.at == 0.8
