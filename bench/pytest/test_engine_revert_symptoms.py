"""How big each live revert symptom is on this machine (fixed vs reverted reference engine, side by side).

Each benchmark starts the fixed and the reverted engine at once and alternates BS=1 requests between
them, so drift on a shared CPU hits both alike; the benchmarked value is one reverted request and the
medians and their ratio go to extra_info. Run:
`.venv/bin/python -m pytest bench/pytest/test_engine_revert_symptoms.py --benchmark-only`.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from harness.measure.client import RequestSample, StreamingClient, prompt_ids
from harness.serve.server import free_port

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "harness" / "models" / "tiny-qwen3-moe")
TP4_A2A = ["--model-path", TINY, "--tp-size", "4", "--ep-size", "4", "--moe-a2a-backend", "flashinfer",
           "--cuda-graph-max-bs", "4", "--max-running-requests", "4"]
PAIRS = 8


@contextmanager
def engine(args: list[str], log: Path) -> Iterator[str]:
    port = free_port("127.0.0.1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reference_impl.engine", "--port", str(port), *args],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                try:
                    if requests.get(url + "/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.2)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _alternate(benchmark, fixed_url: str, reverted_url: str, input_len: int,
               output_len: int) -> tuple[list[RequestSample], list[RequestSample]]:
    fixed, reverted = [], []
    with StreamingClient(fixed_url, 120.0) as a, StreamingClient(reverted_url, 120.0) as b:
        for i in range(2):  # warm-up
            a.generate(i, prompt_ids(input_len, vocab_size=1000, seed=0), output_len)
            b.generate(i, prompt_ids(input_len, vocab_size=1000, seed=0), output_len)

        def pair() -> None:
            fixed.append(a.generate(len(fixed), prompt_ids(input_len, vocab_size=1000, seed=0), output_len))
            reverted.append(b.generate(len(reverted), prompt_ids(input_len, vocab_size=1000, seed=0), output_len))

        benchmark.pedantic(pair, rounds=PAIRS, iterations=1)
    assert all(s.ok for s in fixed + reverted), [s.error for s in fixed + reverted if not s.ok]
    return fixed, reverted


def _summary(name: str, fixed: list[float], reverted: list[float]) -> dict[str, float]:
    f, r = statistics.median(fixed), statistics.median(reverted)
    return {f"{name}_fixed_median": f, f"{name}_reverted_median": r, f"{name}_ratio": r / f,
            "load_average_1m": os.getloadavg()[0]}


def test_disable_attn_tp_gather_tpot(benchmark, tmp_path: Path) -> None:
    """tp4/ep4 A2A, BS=1: the reverted engine pads to 4 tokens, syncs counts and gathers into a buffer."""
    base = [*TP4_A2A, "--disable-attn-tp-gather"]
    with engine(base, tmp_path / "fixed.log") as fixed_url, \
            engine([*base, "--revert-fix", "disable-attn-tp-gather"], tmp_path / "reverted.log") as reverted_url:
        fixed, reverted = _alternate(benchmark, fixed_url, reverted_url, 32, 16)
    info = _summary("tpot_ms", [s.tpot_ms for s in fixed], [s.tpot_ms for s in reverted])
    benchmark.extra_info.update(info)
    assert info["tpot_ms_ratio"] > 1.0


def test_sp_runtime_max_tokens_ttft(benchmark, tmp_path: Path) -> None:
    """tp4/ep4 A2A, a 512-token prefill: the reverted dispatch geometry is 512 rows per rank, not 128."""
    with engine(TP4_A2A, tmp_path / "fixed.log") as fixed_url, \
            engine([*TP4_A2A, "--revert-fix", "sp-runtime-max-tokens"], tmp_path / "reverted.log") as reverted_url:
        fixed, reverted = _alternate(benchmark, fixed_url, reverted_url, 512, 2)
    info = _summary("ttft_ms", [s.ttft_ms for s in fixed], [s.ttft_ms for s in reverted])
    benchmark.extra_info.update(info)
    assert info["ttft_ms_ratio"] > 1.0
