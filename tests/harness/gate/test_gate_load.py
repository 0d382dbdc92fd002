"""Bad result files: one clear error naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gate_synthetic import result_obj

from harness.gate.errors import GateInputError
from harness.gate.load import load_result, load_side

METRICS = ("tpot_ms", "ttft_ms")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run" / "s" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


def _good() -> dict:
    return result_obj("s", tpot=np.array([10.0, 11.0, 12.0]), workspace=100, oracle={"x": True},
                      commit_time="2026-05-01T00:00:00Z")


def test_good_file_loads_measured_samples_only(tmp_path: Path) -> None:
    run = load_result(_write(tmp_path, json.dumps(_good())), METRICS)
    assert run.values("tpot_ms").tolist() == [10.0, 11.0, 12.0]  # the failed request is dropped
    assert run.result.workspace_bytes == 100 and run.result.oracle_passed == {"x": True}
    assert run.result.commit == "abc1234" and run.result.order_time == 1777593600.0


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda o: "", "empty result file"),
    (lambda o: "{not json", "not valid JSON"),
    (lambda o: "[1, 2]", "expected a JSON object"),
    (lambda o: json.dumps({k: v for k, v in o.items() if k != "scenario"}), "scenario: missing"),
    (lambda o: json.dumps({**o, "status": "great"}), "status: expected one of"),
    (lambda o: json.dumps({**o, "startup": {"outcome": "meh"}}), "startup.outcome: expected one of"),
    (lambda o: json.dumps({**o, "samples": [{"tpot_ms": "fast"}]}), r"samples\[0\].tpot_ms: expected a finite"),
    (lambda o: json.dumps({**o, "samples": [{"tpot_ms": -1}]}), r"samples\[0\].tpot_ms"),
    (lambda o: json.dumps({**o, "samples": []}), "status ok but samples"),
    (lambda o: json.dumps({**o, "oracle": {"verdicts": [{"name": "x"}]}}), r"oracle.verdicts\[0\]"),
    (lambda o: json.dumps({**o, "target": {"commit_time": "yesterday"}}), "target.commit_time"),
    (lambda o: json.dumps({k: v for k, v in o.items() if k != "hardware"}), "'hardware' is a required property"),
    (lambda o: json.dumps({**o, "schema_version": 2}), "schema_version"),
    (lambda o: json.dumps({**o, "instrumentation": {"records": [
        {"kind": "dispatcher_init", "workspace_size_per_rank": "big"}]}}), "workspace_size_per_rank"),
])
def test_bad_file_names_file_and_field(tmp_path: Path, mutate, message: str) -> None:
    path = _write(tmp_path, mutate(_good()))
    with pytest.raises(GateInputError, match=message) as info:
        load_result(path, METRICS)
    assert str(path) in str(info.value)


def test_missing_directory_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(GateInputError, match="not found"):
        load_side(tmp_path / "nope", METRICS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GateInputError, match=r"no <scenario>/result\.json"):
        load_side(tmp_path / "empty", METRICS)


def test_rounds_with_different_scenarios_are_refused(write_run) -> None:
    write_run("side/round-00", {"a": result_obj("a", tpot=np.ones(3))})
    write_run("side/round-01", {"b": result_obj("b", tpot=np.ones(3))})
    with pytest.raises(GateInputError, match=r"round-01: scenarios differ"):
        load_side(write_run("side", {}), METRICS)


def test_unchecked_oracle_verdict_is_not_compared(tmp_path: Path) -> None:
    obj = result_obj("s", tpot=np.ones(3), oracle={"checked": False, "unchecked": None})
    run = load_result(_write(tmp_path, json.dumps(obj)), METRICS)
    assert run.result.oracle_passed == {"checked": False}


def _paired(side: str = "base", start: int = 0) -> dict:
    from gate_synthetic import paired_obj

    return paired_obj("s", side, start, tpot=np.array([10.0, 11.0, 12.0]))


def test_paired_result_keeps_each_value_with_its_pair(tmp_path: Path) -> None:
    obj = _paired()
    obj["samples"][1]["pair"] = 7  # pairs need not be contiguous; the failed request's pair 3 is skipped
    run = load_result(_write(tmp_path, json.dumps(obj)), METRICS)
    pairing = run.result.pairing
    assert pairing is not None and (pairing.side, pairing.start_pair) == ("base", 0)
    assert run.paired_values("tpot_ms") == {0: 10.0, 7: 11.0, 2: 12.0}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda o: {**o, "pairing": {**o["pairing"], "side": "middle"}}, "pairing.side: expected 'base' or 'head'"),
    (lambda o: {**o, "pairing": {**o["pairing"], "start_pair": -1}}, "pairing.start_pair: expected an integer"),
    (lambda o: {**o, "pairing": {**o["pairing"], "order": "aabb"}}, "pairing.order: expected one of"),
    (lambda o: {**o, "pairing": {**o["pairing"], "design": "solo"}}, "pairing.design: expected 'paired'"),
    (lambda o: {**o, "samples": [{**o["samples"][0], "pair": None}, *o["samples"][1:]]},
     r"samples\[0\].pair: expected an integer >= 0 \(pairing is set\), got None"),
    (lambda o: {**o, "samples": [*o["samples"][:2], {**o["samples"][2], "pair": 0}, *o["samples"][3:]]},
     r"samples\[2\].pair: expected a pair index not used before"),
])
def test_bad_pairing_names_the_field(tmp_path: Path, mutate, message: str) -> None:
    path = _write(tmp_path, json.dumps(mutate(_paired())))
    with pytest.raises(GateInputError, match=message) as info:
        load_result(path, METRICS)
    assert str(path) in str(info.value)


def test_paired_rounds_may_hold_different_scenarios(write_run) -> None:
    # The sequential rule starts a second server pair only for the scenario it could not decide.
    from gate_synthetic import paired_obj

    write_run("side/round-00", {"a": paired_obj("a", "base", 0, tpot=np.ones(3)),
                                "b": paired_obj("b", "base", 0, tpot=np.ones(3))})
    write_run("side/round-01", {"b": paired_obj("b", "base", 1, tpot=np.ones(3))})
    side = load_side(write_run("side", {}), METRICS)
    assert len(side.runs["a"]) == 1 and [r.result.pairing.start_pair for r in side.runs["b"]] == [0, 1]
