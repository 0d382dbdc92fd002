"""Log parsing: capture phases, OOM during capture vs other OOMs and crashes."""

from __future__ import annotations

from harness.serve.server_log import diagnose, last_exception_line, parse_capture

KV_POOL_OOM = """\
[2026-11-23 10:00:01 TP0] Load weight end. mem usage=0.25 GB
[2026-11-23 10:00:02 TP0] Scheduler hit an exception: Traceback (most recent call last):
  File "/site/sglang/srt/model_executor/model_runner.py", line 690, in initialize
    self.init_memory_pools()
  File "/site/sglang/srt/model_executor/model_runner_components/kv_cache_configurator.py", line 88, in alloc_memory_pool
    self.kv_pool = MHATokenToKVPool(
  File "/site/sglang/srt/mem_cache/memory_pool.py", line 512, in _create_buffers
    torch.zeros(shape, dtype=dtype, device=device)
  File "/site/torch/cuda/memory.py", line 12, in _alloc
    raise torch.OutOfMemoryError(
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 9.77 GiB. GPU 0 has a total capacity of 79.19 GiB of which 2.10 GiB is free.
"""

WRAPPED_CAPTURE_OOM = """\
Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, bs=[1, 2, 4, 8], avail mem=1.00 GB
Capturing batches (bs=8 avail_mem=0.90 GB):   0%|   | 0/4\rCapturing batches (bs=4 avail_mem=0.20 GB):  25%|
Scheduler hit an exception: Traceback (most recent call last):
  File "/site/sglang/srt/model_executor/runner/decode_cuda_graph_runner.py", line 406, in __init__
    self.capture()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity of 79.19 GiB of which 512.00 MiB is free.

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/site/sglang/srt/model_executor/runner/decode_cuda_graph_runner.py", line 409, in __init__
    raise Exception(
Exception: Capture cuda graph failed: CUDA out of memory. Tried to allocate 1.50 GiB.
"""


def test_capture_phases_are_parsed():
    log = ("Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, bs=[1, 2, 4], avail mem=54.36 GB\n"
           "Capture target decode CUDA graph end. elapsed=5.98 s, mem usage=0.04 GB, avail mem=54.32 GB.\n"
           "Capture target prefill CUDA graph end. elapsed=85.10 s, mem usage=1.20 GB, avail mem=53.12 GB.\n")
    capture = parse_capture(log)
    assert not capture.oom
    assert capture.capture_bs == (1, 2, 4)
    assert [(p.name, p.elapsed_s, p.mem_usage_gb, p.avail_mem_gb) for p in capture.phases] == [
        ("target decode", 5.98, 0.04, 54.32), ("target prefill", 85.10, 1.20, 53.12)]
    assert capture.to_json()["phases"][0]["name"] == "target decode"


def test_kv_pool_oom_is_a_crash_not_a_capture_oom():
    capture = parse_capture(KV_POOL_OOM)
    assert not capture.oom
    assert capture.requested_bytes == int(9.77 * 2**30)  # the message line, not `raise ...OutOfMemoryError(`
    assert capture.free_bytes == int(2.10 * 2**30)
    diagnosis = diagnose(KV_POOL_OOM, returncode=None, timed_out=False, timeout_s=60)
    assert diagnosis.outcome == "crash"
    assert "OutOfMemoryError" in diagnosis.message


def test_wrapped_capture_oom_takes_the_last_batch_being_captured():
    capture = parse_capture(WRAPPED_CAPTURE_OOM)
    assert capture.oom
    assert capture.batch_size == 4  # the tqdm line after \r, the batch the OOM hit
    assert capture.requested_bytes == int(1.5 * 2**30)
    assert capture.free_bytes == 512 * 2**20
    diagnosis = diagnose(WRAPPED_CAPTURE_OOM, returncode=-9, timed_out=False, timeout_s=60)
    assert diagnosis.outcome == "oom_during_cuda_graph_capture"
    assert diagnosis.message == ("OOM during CUDA graph capture at batch size 4: tried to allocate "
                                 "1536.00 MiB, 512.00 MiB free")


def test_oom_while_registering_buffers_names_the_largest_batch():
    log = WRAPPED_CAPTURE_OOM.replace("Capturing batches (bs=8 avail_mem=0.90 GB):   0%|   | 0/4\r"
                                      "Capturing batches (bs=4 avail_mem=0.20 GB):  25%|\n", "")
    assert parse_capture(log).batch_size == 8


def test_timeout_and_exit_codes():
    assert diagnose("loading...\n", None, True, 12).outcome == "timeout"
    assert diagnose("loading...\n", None, True, 12).message == "server not healthy within 12 s"
    crashed = diagnose("usage: x\nx: error: unrecognized arguments: --bogus\n", 2, False, 12)
    assert crashed.outcome == "crash"
    assert crashed.message == "server exited with code 2: x: error: unrecognized arguments: --bogus"


def test_last_exception_line():
    assert last_exception_line("a\nValueError: bad\nb\nRuntimeError: worse\n") == "RuntimeError: worse"
    assert last_exception_line("nothing here\n") is None
