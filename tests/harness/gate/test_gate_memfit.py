"""Whether two servers fit on the GPUs together: the share each gets, or why the gate alternates instead."""

from __future__ import annotations

import pytest

from harness.gate.memfit import (
    GIB,
    DeviceMemory,
    Fit,
    alone_fraction,
    combine,
    decide_fit,
    paired_fraction,
    uses_gpu,
)
from harness.scenarios.catalog import load_scenario

H200 = int(140.4 * GIB)  # what NVML reports for an H200 SXM


def _fit(free_gib: float, total: int = H200, alone: float = 0.929, min_gib: float = 16.0, gpus: int = 1) -> Fit:
    devices = [DeviceMemory(i, total, int(free_gib * GIB)) for i in range(max(gpus, 1))]
    return decide_fit(uses_gpu=True, gpus_needed=gpus, min_gpu_memory_gib=min_gib, alone=alone, devices=devices)


def test_cpu_servers_always_pair() -> None:
    fit = decide_fit(uses_gpu=False, gpus_needed=0, min_gpu_memory_gib=0.0, alone=1.0, devices=())
    assert fit == Fit(True, "CPU servers: no device memory to share", None)


def test_an_empty_h200_takes_two_servers_that_together_take_what_one_took() -> None:
    fit = _fit(139.0)
    # sglang takes f of what is free when it starts: f + f (1 - f) = 0.929 gives f = 1 - sqrt(0.071) = 0.733.
    assert fit.paired and fit.mem_fraction_static == 0.73
    assert "--mem-fraction-static 0.73 each" in fit.reason
    # What is passed is a KV pool cap: two servers started together race for the free memory.
    assert fit.server_args() == ("--max-total-tokens", "65536")
    # The GPU-suite fraction: 0.3 alone -> 0.16 each (15.6% + 13.2% of the free memory).
    assert paired_fraction(0.3) == 0.16


def test_a_busy_or_small_gpu_falls_back_to_alternating_and_says_why() -> None:
    busy = _fit(30.0)  # another process holds 110 GiB
    assert not busy.paired and busy.mem_fraction_static is None
    assert "GPU 0: 30.0 of 140.4 GiB free" in busy.reason and "alternating server starts instead" in busy.reason
    small = _fit(23.5, total=24 * GIB, alone=0.724)  # a 24 GiB card: 11.7 GiB each < the scenario's 16 GiB
    assert not small.paired and "the scenario's 16 GiB" in small.reason


def test_every_gpu_of_the_scenario_must_fit() -> None:
    devices = [DeviceMemory(0, H200, 139 * GIB), DeviceMemory(1, H200, 20 * GIB)]
    fit = decide_fit(uses_gpu=True, gpus_needed=2, min_gpu_memory_gib=16.0, alone=0.929, devices=devices)
    assert not fit.paired and fit.reason.startswith("GPU 1:")
    one = decide_fit(uses_gpu=True, gpus_needed=1, min_gpu_memory_gib=16.0, alone=0.929, devices=devices)
    assert one.paired  # a one-GPU scenario only uses GPU 0


def test_one_design_for_the_gate_the_smallest_share() -> None:
    assert combine([Fit(True, "a", 0.42), Fit(True, "b", 0.30)]).mem_fraction_static == 0.30
    refused = Fit(False, "GPU 0: too full")
    assert combine([Fit(True, "a", 0.42), refused]) is refused


def test_which_commands_use_a_gpu() -> None:
    assert uses_gpu("sglang", ("python", "-m", "sglang.launch_server"))
    assert not uses_gpu("reference", ("python", "-m", "reference_impl.engine"))
    assert uses_gpu("reference", ("python", "-m", "reference_impl.engine", "--device", "cuda"))
    assert uses_gpu("reference", ("python", "-m", "reference_impl.engine", "--device=cuda"))


def test_alone_fraction_from_the_command_the_scenario_or_sglang_default() -> None:
    baseline = load_scenario("baseline")
    assert alone_fraction(baseline, [("x", "--mem-fraction-static", "0.8")], H200) == 0.8
    assert alone_fraction(baseline, [("x",), ("y", "--mem-fraction-static=0.7")], H200) == 0.7
    # sglang's default for the baseline on an H200: (gpu - max(reserved, 10 GiB)) / gpu.
    assert alone_fraction(baseline, [], H200) == pytest.approx(1 - 10 / 140.4, abs=0.001)
