"""The typed Result: one definition of each derived metric, the schema version and its upgrade path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.store.atomic import atomic_write_text
from harness.store.result import (
    OOM_AT_CAPTURE,
    RESULT_FILE,
    SCHEMA_VERSION,
    Result,
    ResultError,
    read_result,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = sorted(p for p in (ROOT / "results").rglob("*.json")
                   if p.name == RESULT_FILE or p.name == "oom-result.json")


def _obj(**fields: Any) -> dict[str, Any]:
    return {"schema_version": 1, "scenario": "s", "status": "ok", "startup": {"outcome": "ok", "capture": {}},
            **fields}


@pytest.mark.parametrize(("startup", "records"), [
    ({"outcome": OOM_AT_CAPTURE, "capture": {"oom": True}}, []),
    ({"outcome": "ok", "capture": {"oom": True}}, []),
    ({"outcome": "ok", "capture": {"oom": False}}, [{"kind": "capture_oom", "batch_size": 4}]),
    ({"outcome": "crash", "capture": {"oom": False}}, [{"kind": "capture_oom", "batch_size": 4}]),
])
def test_capture_oom_is_any_of_outcome_log_and_record(startup: dict, records: list) -> None:
    result = Result.from_json(_obj(startup=startup, instrumentation={"records": records}))
    assert result.capture_oom


def test_no_signal_no_oom_and_the_other_derived_metrics() -> None:
    records = [{"kind": "dispatcher_init", "rank": r, "workspace_size_per_rank": size} for r, size in ((0, 9), (1, 12))]
    records += [{"kind": "cuda_graph_capture", "rank": 0, "mem_free_before": 100, "mem_free_after": 70},
                {"kind": "cuda_graph_capture", "rank": 0, "mem_free_before": 70, "mem_free_after": 60},
                {"kind": "cuda_graph_capture", "rank": 1, "mem_free_before": None, "mem_free_after": None}]
    verdicts = [{"name": "a", "passed": True}, {"name": "b", "passed": False}, {"name": "c", "passed": None}]
    result = Result.from_json(_obj(instrumentation={"records": records}, oracle={"ok": False, "verdicts": verdicts}))
    assert not result.capture_oom
    assert (result.workspace_bytes, result.capture_mem_bytes, result.oracle_failures) == (12, 40, 1)
    assert result.oracle_passed == {"a": True, "b": False}  # c was not checked in this run
    bare = Result.from_json(_obj())
    assert (bare.workspace_bytes, bare.capture_mem_bytes, bare.oracle_failures) == (None, None, None)


def test_measured_column_skips_failed_requests_and_keeps_pairs() -> None:
    samples = [{"index": 0, "ok": True, "tpot_ms": 2.0, "pair": 0}, {"index": 1, "ok": False, "tpot_ms": None, "pair": 1},
               {"index": 2, "ok": True, "tpot_ms": 3.0, "pair": 5}]
    pairing = {"design": "paired", "side": "base", "start_pair": 0, "order": "abba"}
    column = Result.from_json(_obj(samples=samples, pairing=pairing)).column("tpot_ms")
    assert column.values == (2.0, 3.0) and column.pairs == (0, 5)
    with pytest.raises(ResultError, match=r"x\.json: samples\[0\]\.tpot_ms: expected a finite number"):
        Result.from_json(_obj(samples=[{"ok": True, "tpot_ms": -1}]), "x.json").column("tpot_ms")


def test_upgrade_runs_each_step_in_order_and_refuses_what_it_cannot_read() -> None:
    steps = {1: lambda o: {**o, "renamed": o["old"]}, 2: lambda o: {**o, "twice": o["renamed"] * 2}}
    lifted = upgrade({"schema_version": 1, "old": 3}, steps=steps, current=3)
    assert lifted == {"schema_version": 3, "old": 3, "renamed": 3, "twice": 6}
    with pytest.raises(ResultError, match="schema_version 1: no upgrade to 2"):
        upgrade({"schema_version": 1}, steps={}, current=2)
    with pytest.raises(ResultError, match=f"schema_version 99, this harness reads {SCHEMA_VERSION} and older"):
        upgrade({"schema_version": 99})
    with pytest.raises(ResultError, match="schema_version: expected an integer >= 1, got None"):
        upgrade({})


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_result_reads(path: Path) -> None:
    """Results from every stage of version 1 (before telemetry, pairing, decode_step records ...) still read."""
    result = read_result(path)
    assert result.scenario and result.file == str(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert result.capture_oom == ((raw.get("startup") or {}).get("outcome") == OOM_AT_CAPTURE)


def test_committed_results_cover_old_and_new_shapes() -> None:
    keys = [set(json.loads(p.read_text(encoding="utf-8"))) for p in COMMITTED]
    assert any("telemetry" not in k and "pairing" not in k for k in keys)  # the oldest shape
    assert any("pairing" in k and "telemetry" in k for k in keys)  # the newest


def test_atomic_text_write_is_readable_by_others_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "gate.md"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n" and [p.name for p in tmp_path.iterdir()] == ["gate.md"]
    assert path.stat().st_mode & 0o044  # the gate's own writer made 0600 files (mkstemp)
