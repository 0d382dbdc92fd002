"""The probe's decode_gpu_ms region: CUDA graph replays inside a decode step, with the GPU-side delay inside it.

CUDA cannot exist on this machine, so torch.cuda is a double whose device clock (ms) the test advances:
events read that clock, `_sleep` and a graph replay advance it.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.instrument import sglang_hooks
from harness.instrument.reader import load_records
from harness.instrument.sglang_hooks import Probe
from reference_impl.contract.delay_switch import DelaySwitch

CYCLES_PER_US = 1000.0
GRAPH_MS = 0.5


class _Event:
    def __init__(self, cuda: _Cuda) -> None:
        self.cuda, self.at = cuda, 0.0

    def record(self) -> None:
        self.at = self.cuda.now

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: _Event) -> float:
        return end.at - self.at


class _Cuda:
    """torch.cuda: Event, _sleep (cycles at CYCLES_PER_US) and a CUDAGraph whose replay takes GRAPH_MS."""

    def __init__(self) -> None:
        self.now = 0.0
        cuda = self

        class CUDAGraph:
            def replay(self) -> None:
                cuda.now += GRAPH_MS

        self.CUDAGraph = CUDAGraph

    def Event(self, enable_timing: bool = False) -> _Event:
        return _Event(self)

    def _sleep(self, cycles: int) -> None:
        self.now += cycles / CYCLES_PER_US / 1e3


def _batch(rid: str, decode: bool = True) -> SimpleNamespace:
    return SimpleNamespace(rids=[rid], batch_size=1, forward_mode=SimpleNamespace(is_decode=lambda: decode))


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> _Cuda:
    fake = _Cuda()
    monkeypatch.setattr(sglang_hooks, "_cuda_of", lambda runner: fake)
    monkeypatch.setattr(sglang_hooks, "_stream_capturing", lambda: False)
    return fake


def test_device_time_is_the_graph_replay_and_holds_the_gpu_delay(tmp_path: Path, cuda: _Cuda) -> None:
    delay = tmp_path / "delay"
    delay.write_text("gpu 200")
    probe = Probe(str(tmp_path / "records"), "sglang", 16, delay_switch=DelaySwitch(str(delay), poll_s=0.0))
    runner = SimpleNamespace(device="cuda:0", is_draft_worker=False)
    graph = cuda.CUDAGraph()

    def step(rid: str, replay: bool) -> None:
        begun = probe.decode_begin(runner, _batch(rid))
        assert begun is not None
        cuda.now += 0.3  # the host stages the inputs
        if replay:
            graph.replay()
        else:
            cuda.now += 0.6  # an eager forward's kernels
        cuda.now += 0.2  # sampling
        probe.decode_end(begun)

    step("r1", replay=True)
    step("r1", replay=True)
    step("r1", replay=False)
    graph.replay()  # outside any decode step (e.g. a prefill graph): passes through untimed
    probe.decode_begin(runner, _batch("r2", decode=False))
    graph.replay()
    probe.close()
    loaded = load_records(tmp_path / "records")
    assert loaded.errors == ()
    assert [r["target"] for r in loaded.of_kind("hook_installed")] == ["decode_graph_replay"]
    steps = loaded.of_kind("decode_step")
    # The 0.2 ms GPU delay sits inside the replay region (0.5 + 0.2); the eager step keeps the forward's time.
    assert [(r["region"], round(r["device_ms"], 6), round(r["forward_ms"], 6)) for r in steps] == [
        ("graph_replay", 0.7, 1.2), ("graph_replay", 0.7, 1.2), ("forward", 1.3, 1.3)]
    assert [r["inject_kind"] for r in steps] == ["gpu"] * 3
    # The third step is followed by a prefill: no wall time for it.
    assert [r["wall_ms"] is None for r in steps] == [False, False, True]
