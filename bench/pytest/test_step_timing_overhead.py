"""Step timing overhead: the probe's per-step cost, and BS=1 TPOT with vs without decode_step records.

Two measurements, reported in extra_info and not asserted (issue 22, item 2):
- the hook's own cost per decode step: `Probe.decode_begin` + `decode_end` + writing the previous step's
  record, on this CPU with the host clock (on a GPU two CUDA event records and one query replace the
  clock reads);
- TPOT of two reference-engine servers, both instrumented, one with HARNESS_STEP_TIMING=0; requests
  alternate between them (and which goes first), as in test_instrument_overhead.py;
  HARNESS_STEP_OVERHEAD_AA=1 times neither (the noise floor of the paired ratio).
Run: `.venv/bin/python -m pytest bench/pytest/test_step_timing_overhead.py --benchmark-only`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.config import RunConfig, server_argv
from harness.instrument.launch import instrument_env
from harness.instrument.reader import load_records
from harness.instrument.sglang_hooks import Probe
from harness.measure.client import RequestSample, StreamingClient, prompt_ids
from harness.scenarios.catalog import Scenario, load_scenario
from harness.serve.server import LaunchSpec, Server, free_port
from reference_impl.contract.step_timer import ENV_STEP_TIMING

HOST = "127.0.0.1"
INPUT_LEN = 32
OUTPUT_LEN = int(os.environ.get("HARNESS_STEP_OVERHEAD_OUTPUT_LEN", "32"))
PAIRS = int(os.environ.get("HARNESS_STEP_OVERHEAD_PAIRS", "20"))
WARMUP_PAIRS = 2
# A/A calibration: the second server runs without step timing too, so the ratio shows the noise floor.
AA = os.environ.get("HARNESS_STEP_OVERHEAD_AA") == "1"


class _Decode:
    def is_decode(self) -> bool:
        return True


def test_probe_cost_per_decode_step(benchmark, tmp_path: Path) -> None:
    probe = Probe(str(tmp_path / "records"), "sglang", 16, target_version="bench")
    runner = SimpleNamespace(device="cpu", is_draft_worker=False)
    batch = SimpleNamespace(forward_mode=_Decode(), rids=["0123456789abcdef0123456789abcdef"], batch_size=1)

    def step() -> None:
        timed = probe.decode_begin(runner, batch)
        assert timed is not None
        probe.decode_end(timed)

    benchmark.pedantic(step, rounds=2000, warmup_rounds=50, iterations=1)
    probe.close()
    written = load_records(tmp_path / "records").of_kind("decode_step")
    assert len(written) == 2050
    benchmark.extra_info.update({"us_per_step_median": benchmark.stats.stats.median * 1e6,
                                 "us_per_step_mean": benchmark.stats.stats.mean * 1e6,
                                 "records_written": len(written), "clock": "host"})


def _launch(scenario: Scenario, out: Path, env: dict[str, str]) -> LaunchSpec:
    config = RunConfig(out_dir=out, target="reference")
    port = free_port(HOST)
    return LaunchSpec(argv=tuple(server_argv(scenario, config, port)), env=tuple(env.items()), host=HOST,
                      port=port, log_path=out / "server.log", startup_timeout_s=config.startup_deadline_s(),
                      stop_grace_s=config.stop_grace_s)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, Path, Path]]:
    """(untimed server, timed server, their records dirs); both instrumented, stopped with their groups."""
    scenario = load_scenario("baseline")
    dirs = [tmp_path_factory.mktemp(name) for name in ("untimed", "timed")]
    envs = [{**instrument_env(d / "records", "reference"), ENV_STEP_TIMING: flag}
            for d, flag in zip(dirs, ("0", "0" if AA else "1"), strict=True)]
    with contextlib.ExitStack() as stack:
        started = []
        for directory, env in zip(dirs, envs, strict=True):
            server = stack.enter_context(Server(_launch(scenario, directory, env)))
            startup = server.wait_ready()
            if startup.outcome != "ok":
                pytest.fail(f"server did not start ({startup.outcome}): {startup.message}\n{server.read_log()[-2000:]}")
            started.append(server)
        yield started[0], started[1], dirs[0] / "records", dirs[1] / "records"
    for server in started:
        assert not server.stop().survivors


def test_step_timing_bs1_tpot_overhead(benchmark, servers: tuple[Server, Server, Path, Path]) -> None:
    untimed, timed, untimed_records, timed_records = servers
    input_ids = prompt_ids(INPUT_LEN, vocab_size=1000, seed=0)
    plain: list[RequestSample] = []
    with_steps: list[RequestSample] = []
    with StreamingClient(untimed.spec.base_url, token_timeout_s=60.0) as plain_client, \
            StreamingClient(timed.spec.base_url, token_timeout_s=60.0) as timed_client:

        def pair() -> RequestSample:
            # Alternate which server goes first: the one that just finished may still be busy.
            first_plain = len(plain) % 2 == 0
            if first_plain:
                plain.append(plain_client.generate(len(plain), input_ids, OUTPUT_LEN))
            with_steps.append(timed_client.generate(len(with_steps), input_ids, OUTPUT_LEN))
            if not first_plain:
                plain.append(plain_client.generate(len(plain), input_ids, OUTPUT_LEN))
            return with_steps[-1]

        benchmark.pedantic(pair, rounds=PAIRS, warmup_rounds=WARMUP_PAIRS, iterations=1)

    measured = list(zip(plain[WARMUP_PAIRS:], with_steps[WARMUP_PAIRS:], strict=True))
    assert all(p.ok and t.ok for p, t in measured), [s.error for pr in measured for s in pr if not s.ok]
    ratios = [t.tpot_ms / p.tpot_ms for p, t in measured if p.tpot_ms and t.tpot_ms]
    assert load_records(untimed_records).of_kind("decode_step") == ()
    steps = load_records(timed_records).of_kind("decode_step")
    assert len(steps) == (0 if AA else (PAIRS + WARMUP_PAIRS) * (OUTPUT_LEN - 1))
    benchmark.extra_info.update({
        "target": "reference", "aa_calibration": AA, "input_len": INPUT_LEN, "output_len": OUTPUT_LEN, "pairs": len(measured),
        "tpot_ms_median_untimed": statistics.median(p.tpot_ms for p, _ in measured),
        "tpot_ms_median_timed": statistics.median(t.tpot_ms for _, t in measured),
        "tpot_overhead_median_paired_ratio": statistics.median(ratios) - 1.0,
        "decode_step_records": len(steps),
        "device_ms_median": statistics.median(r["device_ms"] for r in steps) if steps else None,
    })
