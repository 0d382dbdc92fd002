"""GPU-memory leak check after a server group is killed (harness/serve/gpu_leak.py).

On a CPU box NVML is absent and the check must skip with the reason. The attribution logic runs on
a real server group with NVML's view injected (pids still listed after the kill = the driver did not
free them); the GPU test reads the real NVML view of a process holding CUDA memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from reliability_helpers import wait_for

from harness.serve.gpu_leak import GpuProcess, NvmlUnavailable, check_leaks, nvml_processes


def nvml_works() -> bool:
    try:
        nvml_processes()
    except NvmlUnavailable:
        return False
    return True


def test_without_nvml_the_check_is_skipped_with_the_reason():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        check = check_leaks([sleeper.pid], settle_s=0.0)
    finally:
        sleeper.kill()
        sleeper.wait()
    if nvml_works():
        assert check.checked and check.leaked == ()  # a CPU-only process holds no GPU memory
    else:
        assert check.checked is False
        assert "pynvml" in check.skip_reason or "NVML" in check.skip_reason
        assert check.failure() is None and check.to_json()["leaked"] == []


def test_killed_group_still_listed_by_nvml_is_an_infrastructure_failure(fake_server):
    server = fake_server("--fake-children", "2")
    assert server.wait_ready().outcome == "ok"
    wait_for(lambda: len(server.pids) == 3, 5, "the launcher and its two children")
    pids = server.pids
    assert server.stop().survivors == ()
    unrelated = GpuProcess(pid=os.getpid(), gpu_index=1, used_bytes=2**30)

    def driver_keeps_memory() -> list[GpuProcess]:
        return [unrelated, *(GpuProcess(pid, 0, 512 * 2**20) for pid in sorted(pids))]

    check = check_leaks(pids, driver_keeps_memory, settle_s=0.3)
    assert check.checked and {p.pid for p in check.leaked} == set(pids)
    failure = check.failure()
    assert failure is not None
    assert failure["stage"] == "shutdown" and failure["kind"] == "gpu_memory_leak"
    assert failure["message"].startswith("infrastructure failure: ")
    assert f"pid {min(pids)} on GPU 0 (512 MiB)" in failure["message"]
    assert str(os.getpid()) not in failure["message"]


def test_memory_the_driver_frees_late_is_not_a_leak(fake_server):
    server = fake_server()
    assert server.wait_ready().outcome == "ok"
    pids = server.pids
    server.stop()
    polls: list[int] = []

    def frees_after_two_polls() -> list[GpuProcess]:
        polls.append(1)
        return [GpuProcess(pid, 0, None) for pid in pids] if len(polls) <= 2 else []

    check = check_leaks(pids, frees_after_two_polls, settle_s=5.0)
    assert check.checked and check.leaked == () and len(polls) == 3


@pytest.mark.gpu
def test_nvml_sees_a_process_holding_cuda_memory_and_not_after_its_kill():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or not nvml_works():
        pytest.skip("needs a CUDA GPU and NVML")
    code = ("import sys, time, torch\nx = torch.empty(256 * 2**20, dtype=torch.uint8, device='cuda')\n"
            "torch.cuda.synchronize(); print('ready', flush=True); time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        live = check_leaks([holder.pid], settle_s=0.0)
        assert live.checked and [p.pid for p in live.leaked] == [holder.pid]
        used = live.leaked[0].used_bytes
        assert used is None or used >= 256 * 2**20
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert check_leaks([holder.pid]).leaked == ()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
