"""GPU telemetry: the NVML path through a pynvml test double (no GPU here), the no-GPU path for real."""

from __future__ import annotations

import time

import pytest
from fake_pynvml import FakePynvml

from harness.measure.telemetry import (
    FIELDS,
    Device,
    GpuSeries,
    TelemetrySampler,
    decode_reasons,
    import_pynvml,
    summarize,
)


def _wait_for(fake: FakePynvml, samples: int, gpus: tuple[int, ...] = (0,)) -> None:
    deadline = time.monotonic() + 30.0  # a bound on a hang, not a speed claim
    while min(fake.samples[g] for g in gpus) < samples:
        assert time.monotonic() < deadline, f"sampler took no {samples} samples in 30 s: {fake.samples}"
        fake.sampled.wait(0.05)
        fake.sampled.clear()


def _sampler(fake: FakePynvml, pids: tuple[int, ...] = (), visible: str | None = None) -> TelemetrySampler:
    return TelemetrySampler(0.001, lambda: pids, visible, load_nvml=lambda: fake)


def test_server_gpus_are_sampled_with_phases_fields_and_decoded_reasons():
    fake = FakePynvml(sm=[[1000], [1980, 1980, 1755], [1000]], reasons=[[0], [0x1, 0x0, 0x4 | 0x1], [0]],
                      procs={1: [4242], 2: [999]})
    with _sampler(fake, pids=(4242, 4243)) as sampler:
        _wait_for(fake, 1, gpus=(1,))
        sampler.set_phase("measure")
        _wait_for(fake, 4, gpus=(1,))
        sampler.note_requests("measure", [(7, sampler.origin_ns + 2_000_000, 5.5), (8, sampler.origin_ns, None)])
    data = sampler.to_json()
    assert fake.inits == fake.shutdowns == 1
    assert data["available"] is True and data["selection"] == "GPUs holding a server process"
    (gpu,) = data["gpus"]  # only GPU 1 holds a server pid
    assert (gpu["gpu"], gpu["name"], gpu["uuid"]) == (1, "NVIDIA H200", "GPU-00000001-aaaa")
    n = len(gpu["t_ms"])
    assert n >= 4 and all(len(gpu[k]) == n for k in ("phase", "sm_clock_mhz", "mem_clock_mhz", "power_w",
                                                    "temperature_c", "reasons"))
    assert gpu["t_ms"] == sorted(gpu["t_ms"]) and gpu["t_ms"][0] >= 0
    assert gpu["phase"][0] == "warmup" and gpu["phase"][-1] == "measure"
    assert gpu["phase"] == sorted(gpu["phase"], key=["warmup", "measure"].index)  # one switch, never back
    assert gpu["sm_clock_mhz"][:3] == [1980.0, 1980.0, 1755.0]
    assert set(gpu["mem_clock_mhz"]) == {2619.0} and set(gpu["power_w"]) == {300.5}
    assert set(gpu["temperature_c"]) == {41.0}
    assert gpu["reasons"][:3] == [["gpu_idle"], [], ["gpu_idle", "sw_power_cap"]]
    assert data["requests"] == [{"phase": "measure", "index": 7, "start_ms": 2.0, "end_ms": 7.5},
                                {"phase": "measure", "index": 8, "start_ms": 0.0, "end_ms": None}]
    # The summary covers the measured samples only: recompute it from the stored columns.
    measured = [k for k, p in enumerate(gpu["phase"]) if p == "measure"]
    summary = data["summary"]
    assert summary["phase"] == "measure" and summary["samples"] == len(measured) and summary["gpus"] == [1]
    clocks = [gpu["sm_clock_mhz"][k] for k in measured]
    assert summary["sm_clock_mhz"]["min"] == min(clocks) and summary["sm_clock_mhz"]["max"] == max(clocks)
    throttled = [k for k in measured if set(gpu["reasons"][k]) - {"gpu_idle"}]
    assert summary["throttled_share"] == len(throttled) / len(measured)
    assert data["errors"] == []


def test_summary_of_hand_built_series():
    def series(index: int, phases: list[str], sm: list[float | None], reasons: list[list[str] | None]) -> GpuSeries:
        s = GpuSeries(Device(index, index, None, None))
        s.t_ms, s.phase, s.reasons = [float(k) for k in range(len(phases))], phases, reasons
        s.values = {name: [None] * len(phases) for name in FIELDS}
        s.values["sm_clock_mhz"] = sm
        s.values["power_w"] = [100.0] * len(phases)
        return s

    a = series(0, ["warmup", "measure", "measure", "measure"], [900.0, 1980.0, None, 1700.0],
               [["sw_power_cap"], [], ["gpu_idle"], ["hw_slowdown", "gpu_idle"]])
    b = series(1, ["warmup", "measure"], [900.0, 1900.0], [[], None])
    summary = summarize([a, b])
    assert summary["phase"] == "measure" and summary["samples"] == 4 and summary["gpus"] == [0, 1]
    assert summary["sm_clock_mhz"] == {"min": 1700.0, "median": 1900.0, "max": 1980.0}
    assert summary["temperature_c"] == {"min": None, "median": None, "max": None}
    assert summary["throttled_share"] == 1 / 3  # 3 measured samples with a reason read; one hw_slowdown
    assert summary["reasons_seen"] == {"gpu_idle": 2, "hw_slowdown": 1}
    # A run that failed in warm-up has no measured sample: the summary covers all of them.
    assert summarize([series(0, ["warmup"], [1000.0], [[]])])["phase"] == "all"


def test_decode_reasons_names_every_bit():
    assert decode_reasons(0) == ()
    assert decode_reasons(0x1 | 0x40 | 0x200) == ("gpu_idle", "hw_thermal_slowdown", "board_limit")
    assert decode_reasons(0x1000 | 0x8) == ("hw_slowdown", "bit_0x1000")


def test_gpu_choice_falls_back_to_cuda_visible_devices_then_all():
    fake = FakePynvml(sm=[[1], [2], [3]], reasons=[[0]] * 3)
    with _sampler(fake, pids=(1,), visible="2,GPU-00000000") as sampler:
        _wait_for(fake, 1, gpus=(2, 0))
    data = sampler.to_json()
    assert [g["gpu"] for g in data["gpus"]] == [2, 0]
    assert data["selection"].startswith("CUDA_VISIBLE_DEVICES=2,GPU-00000000")
    fake = FakePynvml(sm=[[1], [2]], reasons=[[0]] * 2)
    with _sampler(fake) as sampler:
        _wait_for(fake, 1, gpus=(0, 1))
    assert [g["gpu"] for g in sampler.to_json()["gpus"]] == [0, 1]
    assert sampler.to_json()["selection"].startswith("all GPUs")


def test_an_unsupported_field_is_none_and_named_once_and_old_pynvml_works():
    fake = FakePynvml(sm=[[1500]], reasons=[[0x4]], no_power=True, old_api=True)
    with _sampler(fake) as sampler:
        _wait_for(fake, 3)
    data = sampler.to_json()
    assert set(data["gpus"][0]["power_w"]) == {None}
    assert data["errors"] == ["gpu 0 power_w: Not Supported"]
    assert data["summary"]["power_w"] == {"min": None, "median": None, "max": None}
    assert data["summary"]["reasons_seen"] == {"sw_power_cap": data["summary"]["samples"]}


def test_nvml_that_cannot_start_is_recorded_not_raised():
    fake = FakePynvml(sm=[[1]], reasons=[[0]], init_error="Driver Not Loaded")
    with _sampler(fake) as sampler:
        pass
    assert sampler.to_json() == {"available": False, "reason": "NVML unavailable: Driver Not Loaded",
                                 "interval_s": 0.001}
    fake = FakePynvml(sm=[], reasons=[])
    with _sampler(fake) as sampler:
        pass
    assert sampler.to_json()["reason"] == "NVML device query failed: NVML sees no GPU"
    assert fake.shutdowns == 1
    with TelemetrySampler(0, lambda: (), load_nvml=lambda: fake) as sampler:
        pass
    assert sampler.to_json()["reason"].startswith("disabled")


def test_no_gpu_here_for_real():
    # The real pynvml (or its absence) on this GPU-less machine: unavailable, with the reason, no exception.
    with TelemetrySampler(0.1, lambda: ()) as sampler:
        sampler.set_phase("measure")
    data = sampler.to_json()
    assert data["available"] is False
    try:
        import_pynvml()
    except Exception as exc:
        assert data["reason"] == str(exc) and "pynvml" in data["reason"]
    else:  # nvidia-ml-py installed without a driver: nvmlInit fails
        assert data["reason"].startswith("NVML unavailable: ")
    with pytest.raises(ValueError, match="phase"):
        sampler.set_phase("cooldown")
