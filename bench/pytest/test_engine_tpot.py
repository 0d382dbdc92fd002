"""Reference engine on this machine: BS=1 TPOT of the default (baseline) server and its startup time.

TPOT: the benchmarked value is one 64-token decode request (128 prompt tokens) against the session's
baseline server (bench/pytest/conftest.py); its TPOT/TTFT medians, as the harness client defines them, go to
extra_info. Startup: one `python -m reference_impl.engine` launch until /health answers 200.
Acceptance (issue 4): TPOT under 50 ms and healthy within 60 s on the 2-core CPU.
Run: `.venv/bin/python -m pytest bench/pytest/test_engine_tpot.py --benchmark-only`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from bs1_requests import median_ms, timed_bs1_requests

from harness.measure.client import StreamingClient
from harness.serve.server import free_port

REPO = Path(__file__).resolve().parents[2]
INPUT_LEN = 128
OUTPUT_LEN = 64
ROUNDS = 10
WARMUP_ROUNDS = 2
TPOT_GOAL_MS = 50.0
STARTUP_GOAL_S = 60.0


def test_bs1_tpot(benchmark, client: StreamingClient) -> None:
    measured = timed_bs1_requests(benchmark, client, INPUT_LEN, OUTPUT_LEN, ROUNDS, WARMUP_ROUNDS)
    tpot = median_ms(measured, "tpot_ms")
    ttft = median_ms(measured, "ttft_ms")
    benchmark.extra_info.update({"input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "tpot_ms_median": tpot,
                                 "ttft_ms_median": ttft, "tpot_goal_ms": TPOT_GOAL_MS,
                                 "load_average_1m": os.getloadavg()[0]})
    assert tpot < TPOT_GOAL_MS, f"BS=1 TPOT {tpot:.1f} ms (goal < {TPOT_GOAL_MS} ms)"


def _start_until_healthy(tmp: Path) -> float:
    port = free_port("127.0.0.1")
    log = open(tmp / f"startup-{port}.log", "wb")  # noqa: SIM115
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "reference_impl.engine", "--model-path",
                             str(REPO / "harness" / "models" / "tiny-qwen3-moe"), "--port", str(port)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.perf_counter() - started < 2 * STARTUP_GOAL_S:
            assert proc.poll() is None, (tmp / f"startup-{port}.log").read_text()[-2000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:  # refused while starting, or slow to answer under load
                pass
            time.sleep(0.05)
        raise AssertionError("engine not healthy")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def test_startup_to_healthy(benchmark, tmp_path: Path) -> None:
    seconds: list[float] = []
    benchmark.pedantic(lambda: seconds.append(_start_until_healthy(tmp_path)), rounds=3, iterations=1)
    benchmark.extra_info.update({"startup_s": seconds, "startup_goal_s": STARTUP_GOAL_S})
    assert max(seconds) < STARTUP_GOAL_S
