"""Result store: statistics, atomic writes that never tear or clobber, schema validation, loading errors."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.store.atomic import atomic_write_json
from harness.store.result import ResultError
from harness.store.results import load_result, summarize, validate, write_result


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=50))
def test_summarize_agrees_with_numpy_and_statistics(values):
    summary = summarize(values)
    assert summary["n"] == len(values)
    assert summary["median"] == pytest.approx(statistics.median(values))
    assert summary["p90"] == pytest.approx(float(np.percentile(values, 90)))
    assert summary["p99"] == pytest.approx(float(np.percentile(values, 99)))
    assert summary["mean"] == pytest.approx(statistics.fmean(values))
    assert summary["stdev"] == pytest.approx(statistics.stdev(values) if len(values) > 1 else 0.0, abs=1e-9)


def test_summarize_skips_missing_values_and_handles_none_at_all():
    assert summarize([None, 2.0, None, 4.0])["median"] == 3.0
    assert summarize([None]) == {"median": None, "p90": None, "p99": None, "mean": None, "stdev": None, "n": 0}


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"v": 1})
    atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.stat().st_mode & 0o044  # readable by others, like any file the user writes (umask 022)


def test_a_failed_write_keeps_the_earlier_file(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"v": float("nan")})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_invalid_results_are_refused_by_field(tmp_path, valid_result):
    broken = {**valid_result, "status": "fine"}
    with pytest.raises(ResultError, match=r"status: 'fine' is not one of"):
        write_result(tmp_path, broken)
    assert not (tmp_path / "result.json").exists()
    missing = {k: v for k, v in valid_result.items() if k != "summary"}
    with pytest.raises(ResultError, match="'summary' is a required property"):
        validate(missing)


def test_write_then_load_round_trips_and_nan_becomes_null(tmp_path, valid_result):
    valid_result["samples"][0]["tpot_ms"] = float("nan")
    path = write_result(tmp_path, valid_result)
    loaded = load_result(path)
    assert loaded["samples"][0]["tpot_ms"] is None
    assert loaded["summary"]["ttft_ms"]["median"] == valid_result["summary"]["ttft_ms"]["median"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{\"schema_version\": 1, \"scen", "not valid JSON"), ("[]", "expected a JSON object"),
     ("{\"schema_version\": 99}", "schema_version 99")],
)
def test_corrupt_results_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "result.json"
    path.write_text(content)
    with pytest.raises(ResultError, match=message) as info:
        load_result(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
