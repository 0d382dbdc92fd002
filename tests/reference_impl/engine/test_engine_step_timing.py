"""decode_step records of the live engine: one per decode step, the request's rid, and the run-time delay switch.

One engine serves every level of the delay file in turn (issue 22, item 5). The asserts are on records
and on lower bounds measured with the clock the delay itself waits on, never on this machine's speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reference_impl.contract.delay_switch import POLL_S
from reference_impl.engine.cli import parse_config

PROMPT = [5, 6, 7, 8]


@pytest.fixture(scope="module")
def engine(engine_process: Any, micro_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("step-timing")
    started = engine_process(["--model-path", str(micro_model)], workdir,
                             {"HARNESS_INJECT_DELAY_FILE": str(workdir / "delay")})
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def _generate(engine: Any, rid: str, new_tokens: int) -> dict[str, Any]:
    body = {"input_ids": PROMPT, "rid": rid, "stream": False,
            "sampling_params": {"max_new_tokens": new_tokens, "ignore_eos": True, "temperature": 0}}
    response = requests.post(engine.url + "/generate", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _steps(engine: Any, rid: str) -> list[dict[str, Any]]:
    return [r for r in engine.records("decode_step") if rid in r["rids"]]


def _set_delay(engine: Any, text: str) -> None:
    (engine.workdir / "delay").write_text(text)
    time.sleep(4 * POLL_S)  # the engine looks at the file at most every POLL_S: the next request sees it


def test_one_record_per_decode_step_written_before_the_response(engine: Any) -> None:
    out = _generate(engine, "plain", 5)
    assert out["meta_info"]["id"] == "plain"
    steps = _steps(engine, "plain")  # read at once: the last step is flushed before the final token goes out
    # The first token comes from the prefill; each of the other four from one decode step.
    assert len(steps) == 4
    assert all((r["rids"], r["batch_size"], r["clock"], r["rank"]) == (["plain"], 1, "host", 0) for r in steps)
    assert all((r["inject_kind"], r["inject_us"]) == (None, 0) for r in steps)
    *inner, last = steps
    assert (last["wall_ms"], last["host_ms"]) == (None, None)
    for r in inner:
        assert r["wall_ms"] >= r["device_ms"] >= 0
        assert abs(r["host_ms"] - (r["wall_ms"] - r["device_ms"])) < 1e-5
    assert [r["ts"] for r in steps] == sorted(r["ts"] for r in steps)


def test_delay_levels_switch_at_run_time(engine: Any) -> None:
    _set_delay(engine, "gpu 3000")
    _generate(engine, "gpu-3000", 4)
    _set_delay(engine, "host 2000")
    _generate(engine, "host-2000", 4)
    _set_delay(engine, "off")
    _generate(engine, "off-again", 3)
    gpu, host, off = (_steps(engine, rid) for rid in ("gpu-3000", "host-2000", "off-again"))
    assert [(r["inject_kind"], r["inject_us"]) for r in gpu] == [("gpu", 3000)] * 3
    assert [(r["inject_kind"], r["inject_us"]) for r in host] == [("host", 2000)] * 3
    assert [(r["inject_kind"], r["inject_us"]) for r in off] == [(None, 0)] * 2
    # On the CPU a `gpu` delay busy-waits inside the timed forward; a `host` delay runs before the next
    # step's forward, so it lands in the host part of the step before it.
    assert all(r["device_ms"] >= 3.0 for r in gpu)
    assert all(r["host_ms"] >= 2.0 for r in host[:-1])


def test_switches_come_from_the_environment() -> None:
    argv = ["--model-path", "m"]
    default = parse_config(argv, environ={})
    assert (default.step_timing, default.inject_delay_file) == (True, None)
    config = parse_config(argv, environ={"HARNESS_STEP_TIMING": "0", "HARNESS_INJECT_DELAY_FILE": "/tmp/d"})
    assert (config.step_timing, config.inject_delay_file) == (False, "/tmp/d")
    assert json.loads(json.dumps(config.resolved()))["inject_delay_file"] == "/tmp/d"
