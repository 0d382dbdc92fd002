"""Instrumentation overhead: BS=1 TPOT of an instrumented vs a plain reference-engine server.

Both servers run at once and requests alternate between them (plain, instrumented, plain, ...), so
drift on a shared machine hits both alike. The benchmarked value is one instrumented request; the
comparison (medians and their ratio) goes to extra_info, and the goal is an overhead under 1%.
Run: `.venv/bin/python -m pytest bench/pytest/test_instrument_overhead.py --benchmark-only`.
On a GPU box with sglang: `HARNESS_OVERHEAD_TARGET=sglang HARNESS_OVERHEAD_EXTRA_ARGS="--mem-fraction-static
0.25 ..." python3 -m pytest bench/pytest/test_instrument_overhead.py -p no:cacheprovider` (both servers share the GPU).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import RunConfig, server_argv
from harness.instrument.launch import instrument_env
from harness.instrument.reader import load_records
from harness.measure.client import RequestSample, StreamingClient, prompt_ids
from harness.scenarios.catalog import Scenario, load_scenario
from harness.serve.server import LaunchSpec, Server, free_port

HOST = "127.0.0.1"
INPUT_LEN = 32
OUTPUT_LEN = int(os.environ.get("HARNESS_OVERHEAD_OUTPUT_LEN", "64"))
PAIRS = int(os.environ.get("HARNESS_OVERHEAD_PAIRS", "30"))
WARMUP_PAIRS = 3
OVERHEAD_GOAL = 0.01


TARGET = os.environ.get("HARNESS_OVERHEAD_TARGET", "reference")
EXTRA_ARGS = tuple(shlex.split(os.environ.get("HARNESS_OVERHEAD_EXTRA_ARGS", "")))
# A/A calibration: the second server runs without instrumentation too, so the ratio shows the noise floor.
AA = os.environ.get("HARNESS_OVERHEAD_AA") == "1"
# Start the instrumented server first instead of second (servers started at different times can differ).
INSTRUMENTED_FIRST = os.environ.get("HARNESS_OVERHEAD_INSTRUMENTED_FIRST") == "1"


def _launch(scenario: Scenario, out: Path, env: dict[str, str]) -> LaunchSpec:
    config = RunConfig(out_dir=out, target=TARGET, extra_server_args=EXTRA_ARGS)
    port = free_port(HOST)
    return LaunchSpec(argv=tuple(server_argv(scenario, config, port)), env=tuple(env.items()), host=HOST,
                      port=port, log_path=out / "server.log", startup_timeout_s=config.startup_deadline_s(),
                      stop_grace_s=config.stop_grace_s)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, Path]]:
    """(plain server, instrumented server, its records dir), both stopped with their process groups."""
    scenario = load_scenario("baseline")
    plain_out = tmp_path_factory.mktemp("plain")
    inst_out = tmp_path_factory.mktemp("instrumented")
    records = inst_out / "records"
    plain_spec = _launch(scenario, plain_out, {"HARNESS_INSTRUMENT_DIR": ""})
    inst_env = {"HARNESS_INSTRUMENT_DIR": ""} if AA else instrument_env(records, TARGET)
    inst_spec = _launch(scenario, inst_out, inst_env)
    with contextlib.ExitStack() as stack:
        # One after the other: sglang sizes its memory pool from what is free when it starts.
        started = []
        for spec in (inst_spec, plain_spec) if INSTRUMENTED_FIRST else (plain_spec, inst_spec):
            server = stack.enter_context(Server(spec))
            startup = server.wait_ready()
            if startup.outcome != "ok":
                pytest.fail(f"{TARGET} server did not start ({startup.outcome}): {startup.message}\n"
                            f"{server.read_log()[-2000:]}")
            started.append(server)
        plain, instrumented = started[::-1] if INSTRUMENTED_FIRST else started
        yield plain, instrumented, records
    for server in (plain, instrumented):
        shutdown = server.stop()
        assert not shutdown.survivors, f"server processes survived: {shutdown.survivors}"


def test_instrumented_bs1_tpot_overhead(benchmark, servers: tuple[Server, Server, Path]) -> None:
    plain, instrumented, records = servers
    input_ids = prompt_ids(INPUT_LEN, vocab_size=1000, seed=0)
    plain_samples: list[RequestSample] = []
    inst_samples: list[RequestSample] = []
    with StreamingClient(plain.spec.base_url, token_timeout_s=60.0) as plain_client, \
            StreamingClient(instrumented.spec.base_url, token_timeout_s=60.0) as inst_client:

        def plain_request() -> None:
            plain_samples.append(plain_client.generate(len(plain_samples), input_ids, OUTPUT_LEN))

        def inst_request() -> RequestSample:
            inst_samples.append(inst_client.generate(len(inst_samples), input_ids, OUTPUT_LEN))
            return inst_samples[-1]

        def pair() -> RequestSample:
            # Alternate which server goes first: the one that just finished may still be busy.
            if len(plain_samples) % 2 == 0:
                plain_request()
                return inst_request()
            sample = inst_request()
            plain_request()
            return sample

        benchmark.pedantic(pair, rounds=PAIRS, warmup_rounds=WARMUP_PAIRS, iterations=1)

    measured = list(zip(plain_samples[WARMUP_PAIRS:], inst_samples[WARMUP_PAIRS:], strict=True))
    failed = [s.error for pair_ in measured for s in pair_ if not s.ok]
    assert not failed, failed
    plain_tpot = [p.tpot_ms for p, _ in measured]
    inst_tpot = [i.tpot_ms for _, i in measured]
    assert None not in plain_tpot and None not in inst_tpot
    ratios = [i / p for p, i in zip(plain_tpot, inst_tpot, strict=True)]
    overhead = statistics.median(ratios) - 1.0

    loaded = load_records(records)
    if not AA:
        assert loaded.errors == ()
        assert loaded.of_kind("cuda_graph_capture") or loaded.of_kind("attn_tp_gather"), "server wrote no records"
    benchmark.extra_info.update({
        "target": TARGET, "aa_calibration": AA, "instrumented_started_first": INSTRUMENTED_FIRST, "input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "batch_size": 1, "pairs": len(measured),
        "tpot_ms_median_plain": statistics.median(plain_tpot),
        "tpot_ms_median_instrumented": statistics.median(inst_tpot),
        "tpot_overhead_median_paired_ratio": overhead,
        "records_written": len(loaded.records),
    })
    assert overhead < OVERHEAD_GOAL, (
        f"instrumented BS=1 TPOT is {overhead:+.2%} vs plain (goal < {OVERHEAD_GOAL:.0%}); "
        f"medians {statistics.median(inst_tpot):.3f} vs {statistics.median(plain_tpot):.3f} ms")
