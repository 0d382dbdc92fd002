"""Fault catalog, server rows: one real harness run over scenarios whose fake server misbehaves on purpose.

The run keeps going past every failure; each row then checks its classification in the stored
result, that the server's process group is gone, and that no process of the run outlived it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_server_helpers import FAKE_LAUNCHER
from reliability_helpers import MARK_ENV, survivors, write_scenario
from rich.console import Console

from harness.config import RunConfig
from harness.run import run_all
from harness.scenarios.catalog import load_scenario
from harness.serve.server import group_members
from harness.store.result import RESULT_FILE
from harness.store.results import load_result

# scenario name -> fake server flags (each becomes --fake-<key> <value>)
FAULTS: dict[str, dict[str, str | int | float]] = {
    "healthy-control": {},
    "never-healthy": {"mode": "never_healthy"},
    "exits-during-startup": {"mode": "crash_on_start"},
    "oom-at-capture": {"mode": "oom_at_capture"},
    "crash-mid-stream": {"mode": "die_mid_stream", "cut_after": 2},
    "stream-stalls": {"mode": "stall", "cut_after": 2},
    "http-500": {"mode": "http_500"},
    "malformed-sse": {"mode": "malformed_sse"},
    "truncated-stream": {"mode": "cut_stream", "cut_after": 2},
}
STARTUP_TIMEOUT_S = 4.0
TOKEN_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, dict[str, Any]], str]]:
    """Every fault scenario in one run (as a nightly meets them); yields the stored results and the mark."""
    base = tmp_path_factory.mktemp("faults")
    paths = [write_scenario(base, name, flags) for name, flags in FAULTS.items()]
    scenarios = [load_scenario(path) for path in paths]
    config = RunConfig(out_dir=base / "run", launcher=FAKE_LAUNCHER,
                       startup_timeout_s=STARTUP_TIMEOUT_S, token_timeout_s=TOKEN_TIMEOUT_S, stop_grace_s=3.0,
                       lock_dir=base / "locks")
    mark = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MARK_ENV, mark)
        run_all(config, scenarios, ["harness", "run", *map(str, paths)], Console(quiet=True))
    results = {s.name: load_result(config.out_dir / s.name / RESULT_FILE) for s in scenarios}
    yield results, mark
    assert survivors(mark) == []


def check_clean(result: dict[str, Any], mark: str) -> None:
    """The scenario's server group is gone, its shutdown left no survivor, no marked process lives."""
    pgid = result["server"]["pid"]
    assert isinstance(pgid, int)
    assert group_members(pgid) == []
    assert result["server"]["shutdown"]["survivors"] == []
    assert survivors(mark) == []


def test_control_scenario_measures_normally_between_faults(fault_run):
    results, mark = fault_run
    result = results["healthy-control"]
    assert result["status"] == "ok" and result["failure"] is None
    assert result["summary"]["tpot_ms"]["n"] == 2
    leak = result["server"]["gpu_leak"]  # skipped with the reason on a CPU box, clean on a GPU box
    assert leak["leaked"] == [] and (leak["checked"] or "NVML" in leak["skip_reason"] or "pynvml" in leak["skip_reason"])
    check_clean(result, mark)


def test_never_healthy_is_a_startup_timeout_at_the_deadline(fault_run):
    results, mark = fault_run
    result = results["never-healthy"]
    assert result["status"] == "failed"
    assert result["startup"]["outcome"] == "timeout"
    assert result["failure"]["stage"] == "startup" and result["failure"]["kind"] == "timeout"
    # Never before the deadline; the upper bound only shows the wait ends (not a speed claim).
    assert STARTUP_TIMEOUT_S <= result["startup"]["elapsed_s"] < STARTUP_TIMEOUT_S + 30
    check_clean(result, mark)


def test_exit_during_startup_is_a_crash_naming_the_exception(fault_run):
    results, mark = fault_run
    result = results["exits-during-startup"]
    assert result["startup"]["outcome"] == "crash"
    assert result["startup"]["returncode"] == 3
    assert "AssertionError" in result["failure"]["message"]
    check_clean(result, mark)


def test_oom_during_cuda_graph_capture_is_a_recorded_outcome(fault_run):
    results, mark = fault_run
    result = results["oom-at-capture"]
    assert result["status"] == "failed"
    assert result["startup"]["outcome"] == "oom_during_cuda_graph_capture"
    assert result["startup"]["capture"]["batch_size"] == 256
    assert result["failure"]["kind"] == "oom_during_cuda_graph_capture"
    check_clean(result, mark)  # the launcher hung after its scheduler died; the group was killed


def test_crash_mid_stream_fails_the_request_as_a_cut_stream(fault_run):
    results, mark = fault_run
    result = results["crash-mid-stream"]
    assert result["startup"]["outcome"] == "ok"
    assert result["failure"]["stage"] == "request"
    assert result["failure"]["kind"] in ("stream_cut", "connection")
    assert result["samples"][0]["completion_tokens"] == 2
    check_clean(result, mark)


def test_stream_stall_hits_the_per_token_deadline(fault_run):
    results, mark = fault_run
    result = results["stream-stalls"]
    assert result["failure"]["stage"] == "request" and result["failure"]["kind"] == "timeout"
    sample = result["samples"][0]
    assert sample["completion_tokens"] == 2 and sample["ok"] is False
    assert f"no data for {TOKEN_TIMEOUT_S:g} s" in sample["error"]
    check_clean(result, mark)


def test_http_500_fails_the_request_with_its_status(fault_run):
    results, mark = fault_run
    result = results["http-500"]
    assert result["failure"]["kind"] == "http_status"
    assert result["samples"][0]["http_status"] == 500
    check_clean(result, mark)


def test_malformed_sse_json_is_named_as_such(fault_run):
    results, mark = fault_run
    result = results["malformed-sse"]
    assert result["failure"]["kind"] == "malformed_sse"
    assert "not JSON" in result["failure"]["message"]
    check_clean(result, mark)


def test_truncated_stream_before_done_is_a_cut_stream(fault_run):
    results, mark = fault_run
    result = results["truncated-stream"]
    assert result["failure"]["kind"] == "stream_cut"
    sample = result["samples"][0]
    assert sample["ok"] is False and sample["completion_tokens"] == 2  # cut after two tokens, no [DONE]
    check_clean(result, mark)


def test_every_fault_left_a_loadable_result_and_a_finished_manifest(fault_run):
    results, _mark = fault_run
    assert set(results) == set(FAULTS)
    statuses = {name: r["status"] for name, r in results.items()}
    assert statuses == {name: "ok" if name == "healthy-control" else "failed" for name in FAULTS}
    run_dir = Path(next(iter(results.values()))["scenario_detail"]["path"]).parent / "run"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {entry["state"] for entry in manifest["scenarios"].values()} == {"done"}
    assert list((run_dir.parent / "locks").glob("*.lock")) == []
